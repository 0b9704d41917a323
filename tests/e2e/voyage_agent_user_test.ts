/**
 * The claude agent under a root captain, through the CLI with the fake
 * Claude Code (which, like the real one, refuses
 * --dangerously-skip-permissions as root): with no
 * OHCOMMODORE_CLAUDE_ALLOW_ROOT the captain runs it as the system user
 * ohcommodore-agent (created when missing), hands it the work tree but not
 * `.git`, and still commits as root. Needs root; skips with a notice
 * otherwise (CI runs as root).
 */
import assert from "node:assert/strict";
import { findExecutable, resolveUser } from "../../lib/voyage/agents.ts";
import { DEFAULT_AGENT_USER } from "../../lib/voyage/agent_user.ts";
import { ohcOk, scratchHome, teardown } from "../helpers/cli.ts";
import { writePlan } from "../helpers/plans.ts";
import { skipCheck } from "../helpers/prereq.ts";
import { filesContaining } from "../helpers/secrets.ts";
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
 * A scratch home the agent user can pass through, the fake claude where it
 * can run it, and a record file it can append to.
 */
async function setup(open: boolean) {
  const home = await scratchHome();
  if (open) await Deno.chmod(home, 0o711);
  const bin = `${home}/bin`;
  await Deno.mkdir(bin, { mode: 0o755 });
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
  return { home, record, env };
}

Deno.test({
  name:
    "claude under a root captain runs as ohcommodore-agent: the work tree is its, .git is not, the captain commits",
  ignore: skip() !== null,
  async fn() {
    const { home, record, env } = await setup(true);
    await using _ = { [Symbol.asyncDispose]: () => teardown(home) };
    const vms = `${home}/vms`;
    await Deno.mkdir(vms, { mode: 0o711 });
    await Deno.chmod(vms, 0o711);
    await ohcOk(home, ["init", "--provider", "local", "--root", vms], { env });

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

    // Both runs were the agent user's, in its own home.
    const agent = resolveUser(DEFAULT_AGENT_USER);
    assert.notEqual(agent.uid, 0);
    const ship = `${vms}/${id}-1`;
    const checkout = `${ship}/voyage-${id}`;
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

    // The tree is the agent's; the top directory and .git the captain's.
    const top = await Deno.stat(checkout);
    assert.equal(top.uid, 0);
    assert.equal(top.gid, agent.gid);
    assert.equal(top.mode! & 0o7777, 0o1775);
    assert.equal((await Deno.stat(`${checkout}/.git`)).uid, 0);
    assert.equal((await Deno.stat(`${checkout}/two.txt`)).uid, agent.uid);
    assert.equal(await exists(`${checkout}/.git/owned`), false);

    // The token file is the agent user's, 0600; no other file is readable.
    const tokenFile = `${ship}/.ohcommodore/secrets/claude_token`;
    const info = await Deno.stat(tokenFile);
    assert.equal(info.uid, agent.uid);
    assert.equal(info.mode! & 0o777, 0o600);
    for (const h of await filesContaining(home, TOKEN)) {
      assert.equal(h.mode, 0o600, h.path);
    }
  },
});

Deno.test({
  name:
    "claude under a root captain: a directory the agent user cannot pass fails the task naming it",
  ignore: skip() !== null,
  async fn() {
    // The local VMs sit in the 0700 scratch home, which the captain must not open.
    const { home, env } = await setup(false);
    await using _ = { [Symbol.asyncDispose]: () => teardown(home) };
    await ohcOk(home, ["init", "--provider", "local"], { env });
    const plan = await writePlan(`${home}/plan`, [{ id: "1", command: "x" }], {
      ships: 1,
    });
    const id = await sailOk(home, [plan, "--agent", "claude"], {
      ...env,
      CLAUDE_CODE_OAUTH_TOKEN: TOKEN,
    });
    const s = await waitVoyage(home, id);
    assert.equal(s.voyage.state, "failed");
    const [t] = await voyageTasks(home, id);
    assert.equal(t.status, "failed");
    assert.match(
      t.error ?? "",
      new RegExp(
        `^the agent user ${DEFAULT_AGENT_USER} cannot reach \\S+: ${home} \\(mode 0700\\), ${home}/.ohcommodore \\(mode 0700\\), ${home}/.ohcommodore/local \\(mode 0700\\) are not searchable for it$`,
      ),
    );
    // Nothing was opened up: not even the ship's own home.
    assert.equal((await Deno.stat(home)).mode! & 0o777, 0o700);
    const ship = `${home}/.ohcommodore/local/${id}-1`;
    assert.equal((await Deno.stat(ship)).mode! & 0o777, 0o700);
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
