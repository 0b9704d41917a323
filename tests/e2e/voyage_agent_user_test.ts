/**
 * The claude agent under a root captain, through the CLI with the fake
 * Claude Code (which, like the real one, refuses
 * --dangerously-skip-permissions as root): with no
 * OHCOMMODORE_CLAUDE_ALLOW_ROOT the captain runs it as the system user
 * ohcommodore-agent (created when missing) in a checkout moved out of its
 * HOME, hands it the work tree but not `.git`, and still commits as root;
 * the agent's token is in the agent's environment only. Needs root; skips
 * with a notice otherwise (CI runs as root). The real client on the same
 * path: voyage_claude_test.ts.
 */
import assert from "node:assert/strict";
import {
  findExecutable,
  resolveUser,
} from "../../lib/voyage/ship/agents/os_user.ts";
import { DEFAULT_AGENT_USER } from "../../lib/voyage/ship/agent_user.ts";
import {
  AGENT_WORK_ROOT,
  agentWorkDir,
} from "../../lib/voyage/ship/agent_workdir.ts";
import { ohcOk, scratchHome, teardown } from "../helpers/cli.ts";
import { writePlan } from "../helpers/plans.ts";
import { skipCheck } from "../helpers/prereq.ts";
import { filesContaining, processesWithEnv } from "../helpers/secrets.ts";
import { until } from "../helpers/wait.ts";
import { sailOk, voyageTasks, waitVoyage } from "../helpers/voyage.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

const skip = skipCheck(
  "voyage tests of claude as a non-root user",
  "OHC_NOTICE_AGENT_USER",
  () => {
    if (Deno.uid() !== 0) return "they need root (the captain switches users)";
    for (const tool of ["useradd", "setpriv", "chown"]) {
      if (!findExecutable(tool)) return `${tool} is not installed`;
    }
    return null;
  },
);

const TOKEN = "sk-ant-oat-agent-user-test-0123456789";

/**
 * A scratch home (0700), the fake claude where the agent user can run it,
 * and a record file it can append to.
 */
async function setup() {
  const home = await scratchHome();
  const bin = await Deno.makeTempDir({ prefix: "ohc-agent-bin-" });
  await Deno.chmod(bin, 0o755);
  await Deno.copyFile(`${root}/tests/fakes/claude`, `${bin}/fake-claude`);
  await Deno.chmod(`${bin}/fake-claude`, 0o755);
  const record = `${bin}/claude.record`;
  await Deno.writeTextFile(record, "");
  await Deno.chmod(record, 0o666);
  // No FAKE_CLAUDE_ALLOW_ROOT: the fake refuses root, as the real one does.
  await Deno.writeTextFile(
    `${bin}/claude`,
    `#!/bin/sh\nFAKE_CLAUDE_RECORD=${record} exec ${bin}/fake-claude "$@"\n`,
    { mode: 0o755 },
  );
  await Deno.chmod(`${bin}/claude`, 0o755);
  const env = {
    OHCOMMODORE_TASK_ATTEMPTS: "1",
    PATH: `${bin}:${Deno.env.get("PATH")}`,
  };
  return {
    home,
    bin,
    record,
    env,
    [Symbol.asyncDispose]: () => Deno.remove(bin, { recursive: true }),
  };
}

Deno.test({
  name:
    "claude under a root captain runs as ohcommodore-agent, outside the 0700 home: the work tree is its, .git is not, the captain commits",
  ignore: skip() !== null,
  async fn() {
    // The local VMs sit in the 0700 scratch home (as in root's own 0700
    // home), which the agent user must neither pass nor be let into.
    await using st = await setup();
    const { home, record, env } = st;
    await using _ = { [Symbol.asyncDispose]: () => teardown(home) };
    await ohcOk(home, ["init", "--provider", "local"], { env });

    const plan = await writePlan(`${home}/plan`, [
      { id: "1", command: "unused" },
      { id: "2", command: "unused", blockedBy: ["1"] },
    ], {
      ships: 1,
      verify: "#!/bin/bash\ntest -f done-1.txt && test -f two.txt\n",
    });
    // Task 2, on the same ship after task 1: the agent can write the tree
    // and read git, but cannot write or replace .git.
    const t2 = JSON.parse(await Deno.readTextFile(`${plan}/tasks/2.json`));
    t2.description = [
      "FAKE: test -f done-1.txt && echo two > two.txt",
      "FAKE: git status --porcelain > /dev/null",
      "FAKE: ! touch .git/owned 2>/dev/null",
      "FAKE: ! mv .git .git-moved 2>/dev/null",
    ].join("\n");
    await Deno.writeTextFile(`${plan}/tasks/2.json`, JSON.stringify(t2));

    const id = await sailOk(home, [plan, "--agent", "claude"], {
      ...env,
      CLAUDE_CODE_OAUTH_TOKEN: TOKEN,
    });
    const s = await waitVoyage(home, id);
    assert.equal(
      s.voyage.state,
      "verified",
      JSON.stringify(await voyageTasks(home, id)),
    );
    await ohcOk(home, ["voyage", "clone", id, "-d", `${home}/result`]);
    assert.equal(await Deno.readTextFile(`${home}/result/two.txt`), "two\n");

    // Both runs were the agent user's, in its own home, in the checkout's
    // real path outside the ship's HOME (~/voyage-<id> links there).
    const agent = resolveUser(DEFAULT_AGENT_USER);
    assert.notEqual(agent.uid, 0);
    const ship = `${home}/.ohcommodore/local/${id}-0`;
    const link = `${ship}/voyage-${id}`;
    assert.ok((await Deno.lstat(link)).isSymlink);
    const checkout = await Deno.realPath(link);
    assert.equal(checkout, `${await agentWorkDir(ship)}/voyage-${id}`);
    assert.ok(checkout.startsWith(`${AGENT_WORK_ROOT}/`));
    const runs = (await Deno.readTextFile(record)).trim().split("\n");
    assert.equal(runs.length, 2, runs.join("\n"));
    for (const run of runs) {
      assert.match(run, new RegExp(` uid=${agent.uid} `));
      assert.match(run, new RegExp(` cwd=${checkout} home=${agent.home} `));
    }
    const onboarding = JSON.parse(
      await Deno.readTextFile(`${agent.home}/.claude.json`),
    );
    assert.equal(onboarding.hasCompletedOnboarding, true);

    // The tree is the agent's; the top directory and .git the captain's,
    // and so is every directory above them.
    const top = await Deno.stat(checkout);
    assert.equal(top.uid, 0);
    assert.equal(top.gid, agent.gid);
    assert.equal(top.mode! & 0o7777, 0o1775);
    assert.equal((await Deno.stat(`${checkout}/.git`)).uid, 0);
    assert.equal((await Deno.stat(`${checkout}/two.txt`)).uid, agent.uid);
    assert.equal(await exists(`${checkout}/.git/owned`), false);
    for (const d of [await agentWorkDir(ship), AGENT_WORK_ROOT]) {
      const info = await Deno.stat(d);
      assert.equal(info.uid, 0, d);
      assert.equal(info.mode! & 0o777, 0o711, d);
    }

    // Nothing of the home was opened up, not even the ship's own HOME.
    for (
      const d of [
        home,
        `${home}/.ohcommodore`,
        `${home}/.ohcommodore/local`,
        ship,
      ]
    ) {
      assert.equal((await Deno.stat(d)).mode! & 0o777, 0o700, d);
    }

    // The token is in the captain's 0600 files only; the agent has none.
    const hits = await filesContaining(home, TOKEN);
    assert.ok(hits.length > 0);
    for (const h of hits) {
      assert.equal(h.mode, 0o600, h.path);
      assert.equal((await Deno.stat(h.path)).uid, 0, h.path);
    }
    assert.deepEqual(await filesContaining(agent.home, TOKEN), []);

    // Sinking the fleet removes the checkouts outside it too.
    await ohcOk(home, ["fleet", "sink", "--force"]);
    assert.equal(await exists(await agentWorkDir(ship)), false);
  },
});

Deno.test({
  name:
    "the agent's token is in the agent's environment only: not in the runner's wrapper, tee, lingering sleep or tmux server",
  ignore: skip() !== null,
  async fn() {
    await using st = await setup();
    const { home, bin, env } = st;
    await using _ = { [Symbol.asyncDispose]: () => teardown(home) };
    await ohcOk(home, ["init", "--provider", "local"], { env });
    const gate = `${bin}/gate`;
    const plan = await writePlan(`${home}/plan`, [{ id: "1", command: "x" }], {
      ships: 1,
    });
    const t1 = JSON.parse(await Deno.readTextFile(`${plan}/tasks/1.json`));
    t1.description =
      `FAKE: while [ ! -e ${gate} ]; do sleep 0.05; done; echo one > one.txt`;
    await Deno.writeTextFile(`${plan}/tasks/1.json`, JSON.stringify(t1));
    const id = await sailOk(home, [plan, "--agent", "claude"], {
      ...env,
      CLAUDE_CODE_OAUTH_TOKEN: TOKEN,
    });

    // While the agent works: who holds the token?
    const holders = await until(
      "the agent to run with its token",
      () => {
        const p = processesWithEnv(TOKEN);
        return p.some((x) => x.cmdline.includes("fake-claude")) && p;
      },
      { timeoutMs: 60_000 },
    );
    for (const p of holders) {
      assert.doesNotMatch(
        p.cmdline,
        /^(\S*\/)?(tee|tmux|sleep \d+$)|run\.sh/,
        p.cmdline,
      );
    }
    await Deno.writeTextFile(gate, "");
    const s = await waitVoyage(home, id);
    assert.equal(s.voyage.state, "verified");
    // The task's window lingers (its wrapper, tee gone, sleep 30): none of
    // it, nor anything else on the machine, holds the token now.
    assert.deepEqual(processesWithEnv(TOKEN), []);
  },
});

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch {
    return false;
  }
}
