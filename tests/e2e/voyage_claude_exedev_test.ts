/**
 * The real Claude Code on exe.dev: the six-task voyage of
 * voyage_claude_test.ts on 2 ships of the exe.dev emulator, through the
 * real CLI and real OpenSSH. The API key and endpoint travel from the
 * laptop's environment through the flagship VM to each ship's agent; the
 * captain there is `exedev` (not root), so claude runs as it. As on exeuntu,
 * where Claude Code is preinstalled, the client is on the VMs' PATH.
 */
import assert from "node:assert/strict";
import { exeDevSkipReason } from "./emulators/exedev.ts";
import { startAnthropic } from "./emulators/anthropic.ts";
import { claudeBinDir, realClaudeSkip } from "../helpers/claude_code.ts";
import {
  CLAUDE_KEY,
  CLAUDE_MODEL,
  COST_PER_TASK,
  SIX_TASKS,
  writeSixTaskPlan,
} from "../helpers/claude_voyage.ts";
import { exeDevFleet } from "../helpers/exedev_fleet.ts";
import { filesContaining, watchArgv } from "../helpers/secrets.ts";
import { sailOk, voyageTasks, waitVoyage } from "../helpers/voyage.ts";

Deno.test({
  name:
    "exedev: real claude sails the 6-task voyage on 2 ships, each task's change landed, cost per attempt kept",
  ignore: exeDevSkipReason() !== null || realClaudeSkip() !== null,
  async fn() {
    await using api = await startAnthropic();
    const bin = await claudeBinDir();
    await using f = await exeDevFleet({
      env: { OHC_OFFLINE: "1" },
      vmEnv: { PATH: `${bin}:/usr/local/bin:/usr/bin:/bin` },
    });
    const plan = await writeSixTaskPlan(`${f.tmp}/plan`, 2);
    const argv = watchArgv(CLAUDE_KEY);
    const id = await sailOk(
      (args) =>
        f.ok(args, {
          env: {
            ANTHROPIC_BASE_URL: api.url,
            ANTHROPIC_API_KEY: CLAUDE_KEY,
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
          },
        }),
      [plan, "--agent", "claude", "--model", CLAUDE_MODEL],
    );
    const ok = (args: string[]) => f.ok(args);
    const s = await waitVoyage(ok, id, 300_000);
    const tasks = await voyageTasks(ok, id);
    assert.equal(s.voyage.state, "verified", JSON.stringify(tasks, null, 1));
    assert.deepEqual((await argv.stop()).leaks, []);

    const vms = (await f.emu.listVms()).map((v) => v.name);
    for (const t of tasks) {
      assert.ok(vms.includes(await f.vmName(t.ship!)), t.ship!);
      assert.equal(t.runs.length, 1);
      assert.equal(t.runs[0].model, CLAUDE_MODEL);
      assert.ok(Math.abs(t.runs[0].cost_usd! - COST_PER_TASK) < 1e-9);
    }
    const dir = `${f.tmp}/result`;
    await f.ok(["voyage", "clone", id, "-d", dir]);
    for (const t of SIX_TASKS) {
      assert.equal(
        await Deno.readTextFile(`${dir}/task-${t.id}.txt`),
        `task ${t.id}: ${t.subject}\n`,
      );
    }
    const turns = api.turns();
    assert.equal(turns.length, 12);
    for (const t of turns) {
      assert.equal(t.model, CLAUDE_MODEL);
      assert.match(t.cwd ?? "", /^\/home\/exedev\/voyage-/);
    }
    // On the VMs the key sits in 0600 files only.
    for (const vm of await f.emu.listVms()) {
      for (const h of await filesContaining(vm.home, CLAUDE_KEY)) {
        assert.equal(h.mode, 0o600, `${vm.name}: ${h.path}`);
      }
    }
    assert.deepEqual(await f.scuttle(), []);
  },
});
