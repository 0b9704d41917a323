/**
 * Voyages with the real Claude Code (the pinned npm release) against the
 * scripted Anthropic API, through the CLI as a user sails them:
 *
 * - on 3 local ships with a root captain: the agent user path for real
 *   (the real client refuses --dangerously-skip-permissions as root), each
 *   task's own change landed and verified, the API key carried by the
 *   agent-environment allow-list (never in argv, only in 0600 files), each
 *   attempt's cost and usage kept;
 * - API failures (persistent 529, 401) as one-line task failure reasons,
 *   and API retries shown in `voyage logs`;
 * - the same voyage on 2 exe.dev emulator ships (voyage_claude_exedev_test.ts).
 *
 * The real-client tests skip with a NOTICE where it is not installed
 * (`deno task agents:install`) and run under CI=true; the agent-user one
 * also needs root.
 */
import assert from "node:assert/strict";
import {
  findExecutable,
  resolveUser,
} from "../../lib/voyage/ship/agents/os_user.ts";
import { DEFAULT_AGENT_USER } from "../../lib/voyage/ship/agent_user.ts";
import { AGENT_WORK_ROOT } from "../../lib/voyage/ship/agent_workdir.ts";
import {
  type Script,
  scriptOf,
  startAnthropic,
} from "./emulators/anthropic.ts";
import { claudeBinDir, realClaudeSkip } from "../helpers/claude_code.ts";
import { ohcOk, scratchHome, teardown } from "../helpers/cli.ts";
import { skipCheck } from "../helpers/prereq.ts";
import { filesContaining, watchArgv } from "../helpers/secrets.ts";
import {
  sailOk,
  type TaskRow,
  voyageTasks,
  waitVoyage,
} from "../helpers/voyage.ts";
import {
  CLAUDE_KEY,
  CLAUDE_MODEL,
  COST_PER_TASK,
  SIX_TASKS,
  writeSixTaskPlan,
} from "../helpers/claude_voyage.ts";

const rootSkip = skipCheck(
  "voyage tests of the real claude as a non-root user",
  "OHC_NOTICE_AGENT_USER",
  () => {
    if (Deno.uid() !== 0) return "they need root (the captain switches users)";
    for (const tool of ["useradd", "setpriv", "chown"]) {
      if (!findExecutable(tool)) return `${tool} is not installed`;
    }
    return null;
  },
);

/** A local fleet (the VMs in the 0700 scratch home) whose PATH has the real claude. */
async function claudeFleet(extra: Record<string, string> = {}) {
  const home = await scratchHome();
  const env = {
    OHCOMMODORE_TASK_ATTEMPTS: "1",
    PATH: `${await claudeBinDir()}:${Deno.env.get("PATH")}`,
    ...extra,
  };
  try {
    await ohcOk(home, ["init", "--provider", "local"], { env });
  } catch (e) {
    await teardown(home);
    throw e;
  }
  return { home, env, [Symbol.asyncDispose]: () => teardown(home) };
}

/** What `sail` needs in its environment to reach the scripted API. */
const apiEnv = (url: string, more: Record<string, string> = {}) => ({
  ANTHROPIC_BASE_URL: url,
  ANTHROPIC_API_KEY: CLAUDE_KEY,
  CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
  ...more,
});

Deno.test({
  name:
    "real claude on 3 local ships, root captain: 6 tasks each land their own change, verified; key only in 0600 files, never in argv; cost per attempt",
  ignore: realClaudeSkip() !== null || rootSkip() !== null,
  async fn() {
    await using api = await startAnthropic();
    await using f = await claudeFleet();
    const plan = await writeSixTaskPlan(`${f.home}/plan`, 3);
    const argv = watchArgv(CLAUDE_KEY);
    const id = await sailOk(f.home, [
      plan,
      "--agent",
      "claude",
      "--model",
      CLAUDE_MODEL,
    ], { ...f.env, ...apiEnv(api.url) });
    const s = await waitVoyage(f.home, id, 240_000);
    const { samples, leaks } = await argv.stop();
    const tasks = await voyageTasks(f.home, id);
    assert.equal(s.voyage.state, "verified", JSON.stringify(tasks, null, 1));
    assert.equal(s.counts.done, 6);
    assert.deepEqual(leaks, []);
    assert.ok(samples > 3, `only ${samples} ps samples`);

    // Every task's change landed, made by the client's Write tool.
    const dir = `${f.home}/result`;
    await ohcOk(f.home, ["voyage", "clone", id, "-d", dir]);
    for (const t of SIX_TASKS) {
      assert.equal(
        await Deno.readTextFile(`${dir}/task-${t.id}.txt`),
        `task ${t.id}: ${t.subject}\n`,
      );
    }
    assertCosts(tasks);
    assert.equal(new Set(tasks.map((t) => t.ship)).size > 1, true);

    // What the client sent: our model and key, the task in the prompt, a
    // working directory outside the captain's home (the agent user's path).
    const turns = api.turns();
    assert.equal(turns.length, 12);
    for (const t of turns) {
      assert.equal(t.model, CLAUDE_MODEL);
      assert.equal(t.auth, "x-api-key");
      assert.ok(t.tools.includes("Write"));
      assert.ok(t.cwd?.startsWith(`${AGENT_WORK_ROOT}/`), t.cwd ?? "");
      assert.match(t.prompt, new RegExp(`^# Task ${t.task?.id}: `, "m"));
    }
    assert.deepEqual(
      [...new Set(turns.map((t) => t.task?.id))].sort(),
      SIX_TASKS.map((t) => t.id),
    );
    // The runs were the agent user's: the files in the checkouts are its.
    const agent = resolveUser(DEFAULT_AGENT_USER);
    const ship = tasks[0].ship!;
    const link = `${f.home}/.ohcommodore/local/${ship}/voyage-${id}`;
    const file = `${await Deno.realPath(link)}/task-${tasks[0].id}.txt`;
    assert.equal((await Deno.stat(file)).uid, agent.uid);

    // The key: in 0600 files of the captain's only; none in the agent's home.
    const hits = await filesContaining(f.home, CLAUDE_KEY);
    assert.ok(hits.length > 0);
    for (const h of hits) assert.equal(h.mode, 0o600, h.path);
    assert.deepEqual(await filesContaining(agent.home, CLAUDE_KEY), []);
  },
});

/** Each task's one attempt holds the client's reported cost and usage. */
export function assertCosts(tasks: TaskRow[]) {
  for (const t of tasks) {
    assert.equal(t.runs.length, 1, JSON.stringify(t));
    const [r] = t.runs;
    assert.equal(r.outcome, "done");
    assert.equal(r.model, CLAUDE_MODEL);
    assert.equal(r.turns, 2);
    assert.equal(r.usage?.input_tokens, 4000);
    assert.equal(r.usage?.output_tokens, 1000);
    assert.ok(Math.abs(r.cost_usd! - COST_PER_TASK) < 1e-9, String(r.cost_usd));
  }
}

Deno.test({
  name:
    "real claude: a persistent 529 and a 401 fail their tasks with one line naming the cause; API retries show in voyage logs",
  ignore: realClaudeSkip() !== null,
  async fn() {
    const script: Script = (c) =>
      c.task?.id === "1"
        ? { fail: 529 }
        : c.task?.id === "2"
        ? { fail: 401 }
        : scriptOf(
          {
            fail: 529,
            times: 1,
            then: { tool: "Write", file: "three.txt", content: "3\n" },
          },
          { text: "Done." },
        )(c);
    await using api = await startAnthropic({ script });
    // As root the claude agent needs a user to run as, or this sandbox flag.
    await using f = await claudeFleet({ OHCOMMODORE_CLAUDE_ALLOW_ROOT: "1" });
    const plan = await writeSixTaskPlan(`${f.home}/plan`, 1, 3);
    const id = await sailOk(
      f.home,
      [plan, "--agent", "claude", "--model", CLAUDE_MODEL],
      // CLAUDE_CODE_MAX_RETRIES travels with the agent's environment.
      { ...f.env, ...apiEnv(api.url, { CLAUDE_CODE_MAX_RETRIES: "1" }) },
    );
    const s = await waitVoyage(f.home, id, 180_000);
    assert.equal(s.voyage.state, "failed");
    const byId = new Map(
      (await voyageTasks(f.home, id)).map((t) => [t.id, t]),
    );
    const t1 = byId.get("1")!, t2 = byId.get("2")!, t3 = byId.get("3")!;
    assert.equal(t1.status, "failed");
    assert.match(
      t1.error!,
      /^the claude agent did not finish task 1: API error 529 \(overloaded_error\): API Error: 529 Overloaded\./,
    );
    assert.equal(t2.status, "failed");
    assert.match(
      t2.error!,
      /^the claude agent did not finish task 2: API error 401 \(authentication_error\): Invalid API key/,
    );
    for (const t of [t1, t2]) {
      assert.doesNotMatch(t.error!, /\n/);
      assert.equal(t.runs[0].outcome, "failed");
      assert.equal(t.runs[0].api_retries, 1);
      assert.equal(t.runs[0].cost_usd, 0);
    }
    assert.equal(t3.status, "done", t3.error ?? "");
    assert.equal(t3.runs[0].api_retries, 1);
    // With OHCOMMODORE_CLAUDE_ALLOW_ROOT=1 the real client ran as the root
    // captain itself (IS_SANDBOX=1), in the ship's own checkout.
    const cwds = new Set(api.turns().map((t) => t.cwd));
    assert.deepEqual(
      [...cwds].map((c) => c?.startsWith(`${f.home}/.ohcommodore/local/`)),
      [...cwds].map(() => true),
    );

    // voyage logs: the client's retries as progress lines, its results.
    const logs = (await ohcOk(f.home, ["voyage", "logs", id])).stdout;
    assert.match(logs, /\] API retry 1\/1 in \d+\.\d s: 529 overloaded$/m);
    assert.match(
      logs,
      /\] API retry 1\/1 in \d+\.\d s: 401 authentication_failed$/m,
    );
    assert.match(logs, /task-3\] tool: Write \S+\/three\.txt$/m);
    assert.match(
      logs,
      /task-1\] result: error \(API error 529\), 1 turns, \$0\.0000: /m,
    );
    assert.match(
      logs,
      /task-3\] claude 2\.\d+\.\d+ started: model claude-opus-5-5, in \//m,
    );
    const raw = (await ohcOk(f.home, ["voyage", "logs", id, "--raw"])).stdout;
    assert.match(raw, /"subtype":"api_retry"/);
  },
});
