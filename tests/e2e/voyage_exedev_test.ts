/**
 * A voyage on exe.dev, end to end: the real CLI on a laptop HOME, real
 * OpenSSH to the exe.dev emulator's VMs, the flagship's captain sessions to
 * its ships over ssh, every task landed, verify run, and the result cloned
 * back to the laptop.
 */
import assert from "node:assert/strict";
import { exeDevSkipReason } from "./emulators/exedev.ts";
import { exeDevFleet } from "../helpers/exedev_fleet.ts";
import {
  DEMO_SAIL,
  sailOk,
  voyageTasks,
  waitVoyage,
} from "../helpers/voyage.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

Deno.test({
  name:
    "exedev: the demo voyage sails on 2 ships over ssh, verifies, and clones to the laptop",
  ignore: exeDevSkipReason() !== null,
  async fn() {
    await using f = await exeDevFleet({ env: { OHC_OFFLINE: "1" } });
    const ok = (args: string[]) => f.ok(args);
    const id = await sailOk(ok, DEMO_SAIL(root, 2));
    const s = await waitVoyage(ok, id, 180_000);
    assert.equal(s.voyage.state, "verified", JSON.stringify(s));
    assert.equal(s.counts.done, 6);

    const tasks = await voyageTasks(ok, id);
    assert.equal(tasks.length, 6);
    assert.ok(tasks.every((t) => t.status === "done" && t.attempts === 1));
    // The ships are emulated exe.dev VMs, and both took work.
    const vms = (await f.emu.listVms()).map((v) => v.name);
    for (const t of tasks) {
      assert.ok(vms.includes(await f.vmName(t.ship!)), t.ship!);
    }
    assert.equal(new Set(tasks.map((t) => t.ship)).size, 2);

    const logs = await f.ok(["voyage", "logs", id, "--tail", "50"]);
    assert.match(logs.stdout, /task/i);

    const dir = `${f.tmp}/result`;
    await f.ok(["voyage", "clone", id, "-d", dir]);
    const report = await Deno.readTextFile(`${dir}/REPORT.md`);
    assert.match(report, /^# Fleet report/);
    const log = await new Deno.Command("git", {
      args: ["-C", dir, "log", "--format=%s"],
    }).output();
    const subjects = new TextDecoder().decode(log.stdout).trim().split("\n");
    assert.ok(
      subjects.filter((l) => /task \d/i.test(l)).length >= 6,
      subjects.join("\n"),
    );

    assert.deepEqual(await f.scuttle(), []);
  },
});
