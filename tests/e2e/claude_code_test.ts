/**
 * The real Claude Code (the pinned npm release, tests/helpers/claude_code.ts)
 * run exactly as a ship runs it (`agentCommand` + the runner), against the
 * scripted Anthropic API (emulators/anthropic.ts): tool calls land in the
 * checkout, its stream-json parses into the outcome a task records, API
 * failures become one-line reasons, retries show as `api_retry` events.
 */
import assert from "node:assert/strict";
import { agentCommand } from "../../lib/voyage/ship/agents/command.ts";
import { type AgentOutcome } from "../../lib/voyage/ship/agents/types.ts";
import { parseClaudeStream } from "../../lib/voyage/ship/agents/claude.ts";
import { buildPrompt } from "../../lib/voyage/ship/prompt.ts";
import { runDirect } from "../../lib/voyage/ship/runner.ts";
import {
  type AnthropicEmulator,
  scriptOf,
  startAnthropic,
  taskFile,
  taskFileText,
} from "./emulators/anthropic.ts";
import { realClaudeBin, realClaudeSkip } from "../helpers/claude_code.ts";

const KEY = "sk-ant-api-claude-code-test-0123456789";
/** Priced by the client: $4 / $20 per million input / output tokens. */
const MODEL = "claude-opus-5-5";

interface Run {
  code: number;
  outcome: AgentOutcome;
  events: Record<string, unknown>[];
  dir: string;
}

/** One task through the real client, as a captain runs it (as itself). */
async function runTask(
  api: AnthropicEmulator,
  o: { id: string; subject: string; env?: Record<string, string> },
): Promise<Run> {
  const dir = await Deno.makeTempDir({ prefix: "ohc-cc-" });
  const checkout = `${dir}/checkout`;
  const home = `${dir}/home`;
  await Deno.mkdir(checkout);
  await Deno.mkdir(home);
  const promptFile = `${dir}/prompt.md`;
  const task = { id: o.id, subject: o.subject, description: `do ${o.id}` };
  await Deno.writeTextFile(
    promptFile,
    buildPrompt({
      objective: "Test the client.",
      task,
      voyageId: "vtest",
      ship: "alpha",
      repoDir: checkout,
    }),
  );
  const inv = agentCommand("claude", {
    voyageId: "vtest",
    ship: "alpha",
    task,
    promptFile,
    checkout,
    claudeBin: realClaudeBin()!,
    model: MODEL,
    allowRoot: true,
    env: {
      PATH: "/usr/bin:/bin",
      HOME: home,
      ANTHROPIC_BASE_URL: api.url,
      ANTHROPIC_API_KEY: KEY,
      CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
      ...o.env,
    },
  });
  const log = `${dir}/task.log`;
  const r = await runDirect({ ...inv, logFile: log });
  const text = await Deno.readTextFile(log);
  const events = text.split("\n").filter((l) => l.startsWith("{")).map((l) =>
    JSON.parse(l)
  );
  return { code: r.code, outcome: parseClaudeStream(text), events, dir };
}

const cleanup = (runs: Run[]) =>
  Promise.all(runs.map((r) => Deno.remove(r.dir, { recursive: true })));

Deno.test({
  name:
    "real Claude Code: our invocation writes the task's own file, and the stream parses into success with the known cost",
  ignore: realClaudeSkip() !== null,
  async fn() {
    await using api = await startAnthropic();
    const run = await runTask(api, { id: "7", subject: "greet the world" });
    try {
      assert.equal(run.code, 0, JSON.stringify(run.outcome));
      assert.equal(
        await Deno.readTextFile(`${run.dir}/checkout/${taskFile("7")}`),
        taskFileText("7", "greet the world"),
      );
      const o = run.outcome;
      assert.equal(o.ok, true, o.error);
      assert.equal(o.subtype, "success");
      assert.equal(o.turns, 2);
      assert.equal(o.model, MODEL);
      // Two turns of 2000 input and 500 output tokens at the model's price.
      assert.equal(o.usage?.input_tokens, 4000);
      assert.equal(o.usage?.output_tokens, 1000);
      assert.ok(Math.abs(o.costUsd! - 0.036) < 1e-9, String(o.costUsd));

      // What the client sent: our model, its tools, our prompt, the key.
      const turns = api.turns();
      assert.equal(turns.length, 2);
      for (const t of turns) {
        assert.equal(t.model, MODEL);
        assert.equal(t.stream, true);
        assert.equal(t.auth, "x-api-key");
        for (const tool of ["Bash", "Edit", "Read", "Write"]) {
          assert.ok(t.tools.includes(tool), `${tool} in ${t.tools}`);
        }
        assert.deepEqual(t.task, { id: "7", subject: "greet the world" });
        assert.match(t.prompt, /^## Your task: greet the world$/m);
        assert.equal(t.cwd, `${run.dir}/checkout`);
        assert.ok(t.system.length > 0);
      }
      assert.deepEqual(turns.map((t) => t.turn), [0, 1]);
      assert.deepEqual(
        run.events.map((e) => `${e.type}${e.subtype ? `/${e.subtype}` : ""}`)
          .filter((t) => t !== "system/init"),
        ["assistant", "user", "assistant", "result/success"],
      );
    } finally {
      await cleanup([run]);
    }
  },
});

Deno.test({
  name:
    "real Claude Code: scripted Read, Edit and Bash calls change the checkout",
  ignore: realClaudeSkip() !== null,
  async fn() {
    await using api = await startAnthropic({
      script: scriptOf(
        (c) => ({
          tool: "Write",
          file: "notes.md",
          content: `a ${c.task?.id}\n`,
        }),
        { tool: "Read", file: "notes.md" },
        { tool: "Edit", file: "notes.md", old: "a ", new: "edited " },
        (c) => ({ tool: "Bash", command: `echo ran > bash-${c.task?.id}.txt` }),
        { text: "All done." },
      ),
    });
    const run = await runTask(api, { id: "3", subject: "edit" });
    try {
      assert.equal(run.outcome.ok, true, run.outcome.error);
      assert.equal(run.outcome.turns, 5);
      const co = `${run.dir}/checkout`;
      assert.equal(await Deno.readTextFile(`${co}/notes.md`), "edited 3\n");
      assert.equal(await Deno.readTextFile(`${co}/bash-3.txt`), "ran\n");
      const results = run.events.filter((e) => e.type === "user").map((e) =>
        JSON.stringify(e)
      );
      assert.equal(results.length, 4);
      for (const r of results) assert.doesNotMatch(r, /"is_error":true/);
    } finally {
      await cleanup([run]);
    }
  },
});

Deno.test({
  name:
    "real Claude Code: 401, persistent 529, and 429/500 retried; each outcome parsed from the real stream",
  ignore: realClaudeSkip() !== null,
  async fn() {
    const fast = { CLAUDE_CODE_MAX_RETRIES: "1" };
    await using badKey = await startAnthropic({ apiKeys: ["sk-other"] });
    await using overloaded = await startAnthropic({
      script: scriptOf({ fail: 529 }),
    });
    await using flaky = await startAnthropic({
      script: scriptOf(
        {
          fail: 429,
          times: 1,
          retryAfter: 0,
          then: { tool: "Write", file: "x.txt", content: "x\n" },
        },
        { fail: 500, times: 1, then: { text: "Done." } },
      ),
    });
    const runs = await Promise.all([
      runTask(badKey, { id: "1", subject: "a", env: fast }),
      runTask(overloaded, { id: "2", subject: "b", env: fast }),
      runTask(flaky, {
        id: "3",
        subject: "c",
        env: { CLAUDE_CODE_MAX_RETRIES: "2" },
      }),
    ]);
    try {
      const [auth, busy, ok] = runs;
      assert.equal(auth.code, 1);
      assert.equal(auth.outcome.ok, false);
      assert.equal(auth.outcome.apiErrorStatus, 401);
      assert.match(
        auth.outcome.error!,
        /^API error 401 \(authentication_error\): Invalid API key/,
      );
      assert.ok(badKey.requests.some((r) => r.status === 401));

      assert.equal(busy.code, 1);
      assert.equal(busy.outcome.apiErrorStatus, 529);
      assert.match(
        busy.outcome.error!,
        /^API error 529 \(overloaded_error\): /,
      );
      assert.equal(busy.outcome.apiRetries, 1);
      assert.equal(busy.outcome.lastRetry, "529 overloaded");
      const retry = busy.events.find((e) => e.subtype === "api_retry")!;
      assert.equal(retry.error_status, 529);
      assert.equal(retry.max_retries, 1);

      assert.equal(ok.outcome.ok, true, ok.outcome.error);
      assert.equal(ok.outcome.apiRetries, 2);
      assert.deepEqual(
        ok.events.filter((e) => e.subtype === "api_retry").map((e) =>
          e.error_status
        ),
        [429, 500],
      );
      assert.equal(
        await Deno.readTextFile(`${ok.dir}/checkout/x.txt`),
        "x\n",
      );
      assert.deepEqual(
        flaky.turns().map((t) => t.status),
        [429, 200, 500, 200],
      );
    } finally {
      await cleanup(runs);
    }
  },
});
