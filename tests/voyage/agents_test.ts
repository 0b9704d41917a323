/**
 * How a ship runs one task with an agent: the prompt text, each adapter's
 * argv and environment (no secret ever in argv), the token file rules, the
 * root refusal, Claude's onboarding files, the stream parsers, and the real
 * fake CLIs (tests/fakes/claude, tests/fakes/codex) run through the direct
 * runner. tmux itself is tested in tmux_test.ts.
 */
import assert from "node:assert/strict";
import { OhcError, UsageError } from "../../lib/errors.ts";
import { buildPrompt, FAILURE_MARKER } from "../../lib/voyage/ship/prompt.ts";
import {
  AGENT_KINDS,
  parseAgentKind,
  validateAgentChoice,
} from "../../lib/voyage/ship/agents/kinds.ts";
import {
  agentCommand,
  requireAgentProgram,
} from "../../lib/voyage/ship/agents/command.ts";
import { type AgentOptions } from "../../lib/voyage/ship/agents/types.ts";
import {
  findExecutable,
  resolveUser,
} from "../../lib/voyage/ship/agents/os_user.ts";
import { parseAgentOutput } from "../../lib/voyage/ship/agents/outcome.ts";
import {
  parseClaudeStream,
  prepareClaudeHome,
} from "../../lib/voyage/ship/agents/claude.ts";
import { parseCodexStream } from "../../lib/voyage/ship/agents/codex.ts";
import { readSecretFile } from "../../lib/voyage/ship/agents/secret_file.ts";
import { runDirect } from "../../lib/voyage/ship/runner.ts";

const root = new URL("../../", import.meta.url).pathname;
const FAKE_CLAUDE = `${root}tests/fakes/claude`;
const FAKE_CODEX = `${root}tests/fakes/codex`;
const PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";
const TOKEN = "sk-ant-oat01-FAKE-token-7f3a9c";
const isRoot = Deno.uid() === 0;

/** Temp dirs this file made, removed when the module unloads. */
const made: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const d of made) {
    try {
      Deno.removeSync(d, { recursive: true });
    } catch {
      // already gone
    }
  }
});
async function tempDir(prefix: string): Promise<string> {
  const d = await Deno.makeTempDir({ prefix });
  made.push(d);
  return d;
}

const task = {
  id: "3",
  subject: "Add the parser",
  description: "Write lib/parse.ts.\n\nFAKE: echo parsed > parse.txt",
  acceptance: "deno test passes",
};

function baseOpts(over: Partial<AgentOptions> = {}): AgentOptions {
  return {
    voyageId: "v-1234",
    ship: "ship-2",
    task,
    promptFile: "/work/prompts/task-3.md",
    checkout: "/work/repo",
    env: { PATH, LANG: "C.UTF-8" },
    uid: 1000,
    ...over,
  };
}

async function tempTokenFile(mode = 0o600, value = TOKEN): Promise<string> {
  const dir = await tempDir("ohc-token-");
  const f = `${dir}/claude-token`;
  await Deno.writeTextFile(f, value + "\n", { mode });
  await Deno.chmod(f, mode);
  return f;
}

function assertThrowsCode(fn: () => unknown, code: string, re?: RegExp) {
  assert.throws(fn, (e: unknown) => {
    assert.ok(e instanceof OhcError, `expected OhcError, got ${e}`);
    assert.equal(e.code, code);
    if (re) assert.match(e.message, re);
    return true;
  });
}

// ---------------------------------------------------------------- prompt

Deno.test("buildPrompt: exact, deterministic text", () => {
  const input = {
    objective: "Build a tiny calculator CLI.",
    task,
    voyageId: "v-1234",
    ship: "ship-2",
    repoDir: "/home/exedev/voyage/repo",
  };
  const text = buildPrompt(input);
  assert.equal(text, buildPrompt(structuredClone(input)));
  assert.equal(
    text,
    `# Task 3: Add the parser

You are a coding agent on ship ship-2, working on voyage v-1234.
A voyage is a plan of tasks that several agents work through in parallel, each on its own ship. You have exactly one task: task 3. Other tasks are done by other agents; their work reaches your checkout only through git.

## Objective of the voyage

Build a tiny calculator CLI.

## Your task: Add the parser

Write lib/parse.ts.

FAKE: echo parsed > parse.txt

## Acceptance criteria

deno test passes

## How to finish

- Work only in the repository checkout at /home/exedev/voyage/repo (your current directory). Do not change files outside it.
- Keep the change focused on this task. Do not refactor, reformat or fix unrelated code: other agents are changing other parts of the repository at the same time, and unrelated edits cause conflicts.
- Do not commit, push, create branches, rebase or otherwise change git history. The captain commits everything you leave in the checkout when you exit and delivers it to the voyage branch for you.
- Check your work against the acceptance criteria (run the relevant tests or commands) before you finish.
- When the task is done, stop and exit. Do not wait for further input.
- If you cannot complete the task, leave the checkout as clean as you can and end your final message with one line: TASK FAILED: <the reason>
`,
  );
});

Deno.test("buildPrompt: missing objective, description and acceptance", () => {
  const text = buildPrompt({
    objective: "  \n",
    task: { id: "7", subject: "Tidy\r\nup", description: "" },
    voyageId: "v",
    ship: "s",
    repoDir: "/r",
  });
  assert.match(text, /^# Task 7: Tidy up\n/);
  assert.match(text, /The plan gives no objective/);
  assert.match(text, /No description: the subject is the task/);
  assert.match(text, /The plan names none: the task is done when/);
  assert.ok(text.includes(FAILURE_MARKER));
  assert.ok(!text.includes("\r"));
  assert.ok(text.endsWith("<the reason>\n"));
});

// ---------------------------------------------------------- kinds, checks

Deno.test("parseAgentKind: the four kinds, else a usage error", () => {
  assert.deepEqual([...AGENT_KINDS], ["claude", "codex", "shell", "custom"]);
  for (const k of AGENT_KINDS) assert.equal(parseAgentKind(k), k);
  assert.throws(() => parseAgentKind("gemini"), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.equal(e.exitCode, 2);
    assert.match(
      e.message,
      /unknown agent "gemini".*claude, codex, shell, custom/,
    );
    return true;
  });
});

Deno.test("validateAgentChoice: shell needs commands, custom needs --agent-command", () => {
  const tasks = [
    { id: "1", subject: "a", command: "true" },
    { id: "2", subject: "b" },
    { id: "4", subject: "d", command: "  " },
  ];
  assert.throws(
    () => validateAgentChoice("shell", { tasks }),
    /tasks 2, 4 have none/,
  );
  validateAgentChoice("shell", { tasks: [tasks[0]] });
  assert.throws(() => validateAgentChoice("custom", { tasks }), UsageError);
  validateAgentChoice("custom", { tasks, agentCommand: "./go" });
  assert.throws(
    () => validateAgentChoice("claude", { tasks, agentCommand: "./go" }),
    /only for --agent custom/,
  );
  validateAgentChoice("claude", { tasks });
});

// ------------------------------------------------------------ agentCommand

const OHC_KEYS = [
  "OHC_VOYAGE_ID",
  "OHC_SHIP",
  "OHC_TASK_ID",
  "OHC_TASK_SUBJECT",
  "OHC_TASK_DESCRIPTION",
  "OHC_TASK_PROMPT_FILE",
];

function assertOhcEnv(env: Record<string, string>) {
  for (const k of OHC_KEYS) assert.ok(k in env, `${k} missing`);
  assert.equal(env.OHC_VOYAGE_ID, "v-1234");
  assert.equal(env.OHC_SHIP, "ship-2");
  assert.equal(env.OHC_TASK_ID, "3");
  assert.equal(env.OHC_TASK_SUBJECT, "Add the parser");
  assert.equal(env.OHC_TASK_DESCRIPTION, task.description);
  assert.equal(env.OHC_TASK_PROMPT_FILE, "/work/prompts/task-3.md");
  assert.equal(env.OHC_CHECKOUT, "/work/repo");
}

Deno.test("claude: exact argv, prompt on stdin, token in env only", async () => {
  const tokenFile = await tempTokenFile();
  const inv = agentCommand(
    "claude",
    baseOpts({
      tokenFile,
      env: {
        PATH,
        ANTHROPIC_API_KEY: "sk-api-would-win",
        ANTHROPIC_AUTH_TOKEN: "x",
        CLAUDECODE: "1",
      },
    }),
  );
  assert.deepEqual(inv.argv, [
    "claude",
    "-p",
    "--dangerously-skip-permissions",
    "--output-format",
    "stream-json",
    "--verbose",
  ]);
  assert.equal(inv.stdinFile, "/work/prompts/task-3.md");
  assert.equal(inv.cwd, "/work/repo");
  assert.equal(inv.env.CLAUDE_CODE_OAUTH_TOKEN, TOKEN);
  assert.deepEqual(inv.secretEnv, ["CLAUDE_CODE_OAUTH_TOKEN"]);
  assert.equal(inv.env.ANTHROPIC_API_KEY, undefined);
  assert.equal(inv.env.ANTHROPIC_AUTH_TOKEN, undefined);
  assert.equal(inv.env.CLAUDECODE, undefined);
  assert.equal(inv.env.DISABLE_AUTOUPDATER, "1");
  assert.equal(inv.env.PATH, PATH);
  assertOhcEnv(inv.env);
  assert.ok(!inv.argv.join("\0").includes(TOKEN));
  // --model goes after the fixed flags
  const m = agentCommand(
    "claude",
    baseOpts({ model: "opus", extraArgs: ["--max-turns", "40"] }),
  );
  assert.deepEqual(m.argv.slice(6), ["--model", "opus", "--max-turns", "40"]);
  assert.equal(m.env.CLAUDE_CODE_OAUTH_TOKEN, undefined);
});

Deno.test("claude: token file must be 0600, present and non-empty", async () => {
  const open = await tempTokenFile(0o644);
  assertThrowsCode(
    () => agentCommand("claude", baseOpts({ tokenFile: open })),
    "secret_perms",
    /readable by others \(mode 0644\)/,
  );
  assertThrowsCode(
    () => agentCommand("claude", baseOpts({ tokenFile: "/nonexistent/tok" })),
    "secret_missing",
  );
  const empty = await tempTokenFile(0o600, "");
  assertThrowsCode(() => readSecretFile(empty, "the token"), "secret_missing");
  // a secret never shows in an error
  try {
    readSecretFile(open, "the token");
    assert.fail("should throw");
  } catch (e) {
    assert.ok(!(e as Error).message.includes(TOKEN));
  }
});

Deno.test("claude as root: refused before running, unless runAsUser or allowRoot", () => {
  assertThrowsCode(
    () => agentCommand("claude", baseOpts({ uid: 0 })),
    "agent_root",
    /refuses --dangerously-skip-permissions as root/,
  );
  const ok = agentCommand("claude", baseOpts({ uid: 0, allowRoot: true }));
  assert.equal(ok.argv[0], "claude");
  // The real client accepts root only in what it takes for a sandbox.
  assert.equal(ok.env.IS_SANDBOX, "1");
  assert.equal(
    agentCommand("claude", baseOpts({ uid: 1000 })).env.IS_SANDBOX,
    undefined,
  );
  // a non-root captain cannot switch users
  assertThrowsCode(
    () => agentCommand("shell", baseOpts({ uid: 1000, runAsUser: "root" })),
    "agent_user",
    /needs root/,
  );
  assertThrowsCode(
    () =>
      agentCommand("shell", baseOpts({ uid: 0, runAsUser: "no-such-user-x" })),
    "agent_user",
    /no such user/,
  );
  // runAsUser root is still root
  assertThrowsCode(
    () => agentCommand("claude", baseOpts({ uid: 0, runAsUser: "root" })),
    "agent_root",
  );
});

Deno.test({
  name: "claude as root with runAsUser: setpriv prefix, the user's HOME",
  ignore: !findExecutable("setpriv"),
  fn() {
    const nobody = resolveUser("nobody");
    const inv = agentCommand(
      "claude",
      baseOpts({ uid: 0, runAsUser: "nobody", env: { PATH, HOME: "/root" } }),
    );
    assert.deepEqual(inv.argv.slice(1, 6), [
      `--reuid=${nobody.uid}`,
      `--regid=${nobody.gid}`,
      "--init-groups",
      "--",
      "claude",
    ]);
    assert.match(inv.argv[0], /\/setpriv$/);
    assert.equal(inv.env.HOME, nobody.home);
    assert.equal(inv.env.USER, "nobody");
    assert.equal(inv.user?.uid, nobody.uid);
    const h = agentCommand(
      "claude",
      baseOpts({ uid: 0, runAsUser: String(nobody.uid), home: "/srv/agent" }),
    );
    assert.equal(h.env.HOME, "/srv/agent");
  },
});

Deno.test("codex: codex exec with the documented non-interactive flags", async () => {
  const keyFile = await tempTokenFile(0o600, "sk-codex-key-1");
  const inv = agentCommand("codex", baseOpts({ codexKeyFile: keyFile }));
  assert.deepEqual(inv.argv, [
    "codex",
    "exec",
    "--dangerously-bypass-approvals-and-sandbox",
    "--json",
    "-",
  ]);
  const x = agentCommand("codex", baseOpts({ extraArgs: ["--ephemeral"] }));
  assert.deepEqual(x.argv.slice(-2), ["--ephemeral", "-"]);
  assert.equal(inv.stdinFile, "/work/prompts/task-3.md");
  assert.equal(inv.env.CODEX_API_KEY, "sk-codex-key-1");
  assert.deepEqual(inv.secretEnv, ["CODEX_API_KEY"]);
  assert.ok(!inv.argv.join(" ").includes("sk-codex"));
  assertOhcEnv(inv.env);
});

Deno.test("shell: bash -c the task's command; none is a usage error", () => {
  const inv = agentCommand(
    "shell",
    baseOpts({ task: { ...task, command: "make test && echo ok" } }),
  );
  assert.deepEqual(inv.argv, ["bash", "-c", "make test && echo ok"]);
  assert.equal(inv.stdinFile, undefined);
  assertOhcEnv(inv.env);
  assert.throws(() => agentCommand("shell", baseOpts()), (e: unknown) => {
    assert.ok(e instanceof UsageError);
    assert.match(e.message, /task 3 has no "command"/);
    return true;
  });
});

Deno.test("custom: bash -c --agent-command with the OHC_* variables", () => {
  const inv = agentCommand(
    "custom",
    baseOpts({ agentCommand: "./agent.sh --fast" }),
  );
  assert.deepEqual(inv.argv, ["bash", "-c", "./agent.sh --fast"]);
  assert.equal(inv.cwd, "/work/repo");
  assertOhcEnv(inv.env);
  assert.throws(() => agentCommand("custom", baseOpts()), UsageError);
});

Deno.test("agentCommand: relative paths are a programming error", () => {
  assert.throws(
    () => agentCommand("shell", baseOpts({ checkout: "repo" })),
    /absolute/,
  );
});

// ------------------------------------------------------- prepareClaudeHome

Deno.test("prepareClaudeHome: onboarding and trust, merged, 0600", async () => {
  const home = await tempDir("ohc-home-");
  await Deno.writeTextFile(
    `${home}/.claude.json`,
    JSON.stringify({ theme: "dark", projects: { "/other": { x: 1 } } }),
  );
  const written = await prepareClaudeHome(home, { trust: ["/work/repo"] });
  assert.deepEqual(written, [
    `${home}/.claude.json`,
    `${home}/.claude/settings.json`,
  ]);
  const state = JSON.parse(await Deno.readTextFile(`${home}/.claude.json`));
  assert.equal(state.hasCompletedOnboarding, true);
  assert.equal(state.theme, "dark");
  assert.deepEqual(state.projects["/other"], { x: 1 });
  assert.equal(state.projects["/work/repo"].hasTrustDialogAccepted, true);
  const settings = JSON.parse(
    await Deno.readTextFile(`${home}/.claude/settings.json`),
  );
  assert.equal(settings.skipDangerousModePermissionPrompt, true);
  for (const f of written) {
    assert.equal((await Deno.stat(f)).mode! & 0o777, 0o600);
  }
  // idempotent
  await prepareClaudeHome(home, { trust: ["/work/repo"] });
  const again = JSON.parse(await Deno.readTextFile(`${home}/.claude.json`));
  assert.deepEqual(again, state);
  // a corrupt file is not silently replaced
  await Deno.writeTextFile(`${home}/.claude.json`, "{oops");
  await assert.rejects(() => prepareClaudeHome(home), /not valid JSON/);
});

// ------------------------------------------------------------ stream parsers

Deno.test("parseClaudeStream: success with cost and turns, log noise skipped", () => {
  const log = [
    "[ohc] task-3 started 2026-01-01T00:00:00+0000: claude -p",
    JSON.stringify({
      type: "system",
      subtype: "init",
      model: "claude-x",
      session_id: "s-1",
    }),
    JSON.stringify({
      type: "assistant",
      message: { content: [{ type: "text", text: "hi" }] },
    }),
    "some stderr line",
    JSON.stringify({
      type: "result",
      subtype: "success",
      is_error: false,
      num_turns: 4,
      total_cost_usd: 0.25,
      duration_ms: 1200,
      result: "Done.",
      session_id: "s-1",
      usage: { input_tokens: 5 },
    }),
    "[ohc] task-3 exit 0",
  ];
  const o = parseClaudeStream(log);
  assert.equal(o.ok, true);
  assert.equal(o.costUsd, 0.25);
  assert.equal(o.turns, 4);
  assert.equal(o.durationMs, 1200);
  assert.equal(o.model, "claude-x");
  assert.equal(o.sessionId, "s-1");
  assert.equal(o.result, "Done.");
  assert.equal(o.error, undefined);
  assert.deepEqual(parseAgentOutput("claude", log.join("\n")), o);
});

Deno.test("parseClaudeStream: errors, early exit, TASK FAILED", () => {
  const maxTurns = parseClaudeStream(
    JSON.stringify({
      type: "result",
      subtype: "error_max_turns",
      is_error: true,
      num_turns: 10,
      total_cost_usd: 1,
    }),
  );
  assert.equal(maxTurns.ok, false);
  assert.equal(maxTurns.subtype, "error_max_turns");
  assert.equal(maxTurns.error, "error_max_turns");

  const early = parseClaudeStream(
    "Error: When using --print, --output-format=stream-json requires --verbose\n",
  );
  assert.equal(early.ok, false);
  assert.match(early.error!, /no result.*requires --verbose/);

  const reported = parseClaudeStream(
    JSON.stringify({
      type: "result",
      subtype: "success",
      is_error: false,
      num_turns: 2,
      result: "Tried.\nTASK FAILED: the tests need a database",
    }),
  );
  assert.equal(reported.ok, false);
  assert.equal(reported.reportedFailure, "the tests need a database");
  assert.match(
    reported.error!,
    /the agent reported: the tests need a database/,
  );
});

Deno.test("parseCodexStream: completed, failed, early exit", () => {
  const ok = parseCodexStream([
    '{"type":"thread.started","thread_id":"t-1"}',
    '{"type":"turn.started"}',
    '{"type":"item.completed","item":{"id":"i","type":"agent_message","text":"Done."}}',
    '{"type":"turn.completed","usage":{"input_tokens":3,"output_tokens":1}}',
  ]);
  assert.equal(ok.ok, true);
  assert.equal(ok.sessionId, "t-1");
  assert.equal(ok.turns, 1);
  assert.equal(ok.result, "Done.");
  const failed = parseCodexStream(
    '{"type":"turn.failed","error":{"message":"quota exceeded"}}',
  );
  assert.equal(failed.ok, false);
  assert.equal(failed.error, "quota exceeded");
  assert.equal(parseCodexStream("boom").ok, false);
  assert.equal(parseAgentOutput("shell", "anything"), null);
  assert.equal(parseAgentOutput("custom", "anything"), null);
});

// ------------------------------------------------- the fakes, for real

interface Sandbox {
  dir: string;
  checkout: string;
  home: string;
  promptFile: string;
  logFile: string;
  tokenFile: string;
  /** The user the agent runs as when the test runs as root. */
  user?: string;
}

/**
 * A world for one agent run: a checkout and a HOME the agent's user owns, a
 * prompt and a token file only the captain (this process) can read.
 */
async function sandbox(promptText: string): Promise<Sandbox> {
  const dir = await tempDir("ohc-agent-");
  await Deno.chmod(dir, 0o755);
  const checkout = `${dir}/repo`;
  const home = `${dir}/home`;
  const captain = `${dir}/captain`;
  await Deno.mkdir(checkout);
  await Deno.mkdir(home);
  await Deno.mkdir(captain, { mode: 0o700 });
  let user: string | undefined;
  if (isRoot) {
    user = "nobody";
    const u = resolveUser(user);
    await Deno.chown(checkout, u.uid, u.gid);
    await Deno.chown(home, u.uid, u.gid);
  }
  const promptFile = `${captain}/prompt.md`;
  await Deno.writeTextFile(promptFile, promptText, { mode: 0o600 });
  const tokenFile = `${captain}/claude-token`;
  await Deno.writeTextFile(tokenFile, TOKEN + "\n", { mode: 0o600 });
  return {
    dir,
    checkout,
    home,
    promptFile,
    logFile: `${captain}/logs/task.log`,
    tokenFile,
    user,
  };
}

function promptFor(s: { checkout: string }, description: string): string {
  return buildPrompt({
    objective: "Test the adapters.",
    task: { id: "3", subject: "Add the parser", description },
    voyageId: "v-1234",
    ship: "ship-2",
    repoDir: s.checkout,
  });
}

async function sha256(s: string): Promise<string> {
  const d = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(s),
  );
  return [...new Uint8Array(d)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

Deno.test("fake claude: refuses --dangerously-skip-permissions as root", async () => {
  const r = await new Deno.Command(FAKE_CLAUDE, {
    args: [
      "-p",
      "--dangerously-skip-permissions",
      "--output-format",
      "stream-json",
      "--verbose",
      "hello",
    ],
    env: { PATH, FAKE_CLAUDE_UID: "0", CLAUDE_CODE_OAUTH_TOKEN: TOKEN },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 1);
  assert.equal(
    new TextDecoder().decode(r.stderr).trim(),
    "--dangerously-skip-permissions cannot be used with root/sudo privileges for security reasons",
  );
  assert.equal(r.stdout.length, 0);
});

Deno.test("fake claude: stream-json without --verbose fails as the real one", async () => {
  const r = await new Deno.Command(FAKE_CLAUDE, {
    args: ["-p", "--output-format", "stream-json", "hi"],
    env: { PATH },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert.equal(r.code, 1);
  assert.match(
    new TextDecoder().decode(r.stderr),
    /^Error: When using --print, --output-format=stream-json requires --verbose/,
  );
});

Deno.test("claude adapter through the fake: token from the 0600 file, work done, stream parsed", async () => {
  const s = await sandbox("");
  await Deno.writeTextFile(
    s.promptFile,
    promptFor(s, "FAKE: echo parsed > parse.txt\nFAKE: id -u > uid.txt"),
  );
  const recordFile = `${s.home}/record.txt`;
  await prepareClaudeHome(s.home, {
    trust: [s.checkout],
    owner: s.user ? resolveUser(s.user) : undefined,
  });
  const inv = agentCommand("claude", {
    voyageId: "v-1234",
    ship: "ship-2",
    task: { id: "3", subject: "Add the parser", description: "..." },
    promptFile: s.promptFile,
    checkout: s.checkout,
    tokenFile: s.tokenFile,
    claudeBin: FAKE_CLAUDE,
    runAsUser: s.user,
    home: s.home,
    env: {
      PATH,
      HOME: s.home,
      FAKE_CLAUDE_EXPECT_TOKEN: TOKEN,
      FAKE_CLAUDE_RECORD: recordFile,
      CLAUDE_CODE_TASK_LIST_ID: "v-1234-tasks",
    },
  });
  assert.ok(!inv.argv.some((a) => a.includes(TOKEN)));
  const r = await runDirect({ ...inv, logFile: s.logFile });
  const log = await Deno.readTextFile(s.logFile);
  assert.equal(r.code, 0, log);
  assert.equal(r.via, "direct");

  assert.equal(
    await Deno.readTextFile(`${s.checkout}/parse.txt`),
    "parsed\n",
  );
  const agentUid = Number(
    (await Deno.readTextFile(`${s.checkout}/uid.txt`)).trim(),
  );
  assert.notEqual(agentUid, 0, "the agent must not run as root");
  const record = await Deno.readTextFile(recordFile);
  assert.ok(record.includes(`token_sha256=${await sha256(TOKEN)}`), record);
  assert.ok(record.includes(`home=${s.home}`));
  assert.ok(!record.includes(TOKEN));
  assert.ok(!log.includes(TOKEN), "the token must not reach the log");
  // Claude Code's task list on disk
  const taskFile = JSON.parse(
    await Deno.readTextFile(`${s.home}/.claude/tasks/v-1234-tasks/1.json`),
  );
  assert.equal(taskFile.id, "1");
  assert.equal(taskFile.subject, "Add the parser");
  assert.equal(taskFile.status, "completed");

  const outcome = parseClaudeStream(log);
  assert.equal(outcome.ok, true, JSON.stringify(outcome));
  assert.equal(outcome.subtype, "success");
  assert.equal(outcome.turns, 3);
  assert.equal(outcome.costUsd, 0.0123);
  assert.equal(outcome.model, "claude-fake-1");
});

Deno.test("claude adapter through the fake: a failing step is reported in the stream, exit 0", async () => {
  const s = await sandbox("");
  await Deno.writeTextFile(s.promptFile, promptFor(s, "FAKE: exit 4"));
  const inv = agentCommand("claude", {
    voyageId: "v",
    ship: "s",
    task: { id: "9", subject: "x" },
    promptFile: s.promptFile,
    checkout: s.checkout,
    tokenFile: s.tokenFile,
    claudeBin: FAKE_CLAUDE,
    runAsUser: s.user,
    home: s.home,
    env: { PATH },
  });
  const r = await runDirect({ ...inv, logFile: s.logFile });
  assert.equal(r.code, 0);
  const o = parseClaudeStream(await Deno.readTextFile(s.logFile));
  assert.equal(o.ok, false);
  assert.equal(o.reportedFailure, "command failed with exit 4: exit 4");
});

Deno.test("claude adapter through the fake: a wrong token fails the run", async () => {
  const s = await sandbox("");
  await Deno.writeTextFile(s.promptFile, promptFor(s, "nothing"));
  const inv = agentCommand("claude", {
    voyageId: "v",
    ship: "s",
    task: { id: "9", subject: "x" },
    promptFile: s.promptFile,
    checkout: s.checkout,
    tokenFile: s.tokenFile,
    claudeBin: FAKE_CLAUDE,
    runAsUser: s.user,
    home: s.home,
    env: { PATH, FAKE_CLAUDE_EXPECT_TOKEN: "another-token" },
  });
  const r = await runDirect({ ...inv, logFile: s.logFile });
  assert.equal(r.code, 1);
  const o = parseClaudeStream(await Deno.readTextFile(s.logFile));
  assert.equal(o.ok, false);
  assert.match(o.error!, /Invalid API key/);
});

Deno.test("codex adapter through the fake: codex exec in a git checkout", async () => {
  const s = await sandbox("");
  const git = await new Deno.Command("git", {
    args: ["init", "-q", s.checkout],
  }).output();
  assert.ok(git.success);
  if (s.user) {
    const u = resolveUser(s.user);
    await new Deno.Command("chown", {
      args: ["-R", `${u.uid}:${u.gid}`, s.checkout],
    }).output();
  }
  await Deno.writeTextFile(s.promptFile, promptFor(s, "no fake line here"));
  const keyFile = `${s.dir}/captain/codex-key`;
  await Deno.writeTextFile(keyFile, "sk-codex-1\n", { mode: 0o600 });
  const inv = agentCommand("codex", {
    voyageId: "v-1234",
    ship: "ship-2",
    task: { id: "5", subject: "x" },
    promptFile: s.promptFile,
    checkout: s.checkout,
    codexKeyFile: keyFile,
    codexBin: FAKE_CODEX,
    runAsUser: s.user,
    home: s.home,
    env: { PATH, GIT_CONFIG_GLOBAL: "/dev/null" },
  });
  const r = await runDirect({ ...inv, logFile: s.logFile });
  const log = await Deno.readTextFile(s.logFile);
  assert.equal(r.code, 0, log);
  assert.equal(
    await Deno.readTextFile(`${s.checkout}/done-5.txt`),
    "task 5 done by fake codex\n",
  );
  const o = parseCodexStream(log);
  assert.equal(o.ok, true, JSON.stringify(o));
  assert.equal(o.result, "Task 5 is done.");
});

Deno.test("custom and shell adapters: OHC_* reach the command, exit code is the verdict", async () => {
  const s = await sandbox("the prompt\n");
  const custom = agentCommand("custom", {
    voyageId: "v-1234",
    ship: "ship-2",
    task: { id: "3", subject: "Add the parser", description: "multi\nline" },
    promptFile: s.promptFile,
    checkout: s.checkout,
    agentCommand:
      'env | grep ^OHC_ | sort > ohc.env; printf "%s" "$OHC_TASK_DESCRIPTION" > desc.txt; exit 0',
    runAsUser: s.user,
    env: { PATH },
  });
  const r = await runDirect({ ...custom, logFile: s.logFile });
  assert.equal(r.code, 0);
  const seen = await Deno.readTextFile(`${s.checkout}/ohc.env`);
  for (
    const line of [
      "OHC_SHIP=ship-2",
      "OHC_TASK_ID=3",
      "OHC_TASK_SUBJECT=Add the parser",
      `OHC_TASK_PROMPT_FILE=${s.promptFile}`,
      "OHC_VOYAGE_ID=v-1234",
      `OHC_CHECKOUT=${s.checkout}`,
    ]
  ) assert.ok(seen.includes(line + "\n"), `${line} in\n${seen}`);
  assert.equal(
    await Deno.readTextFile(`${s.checkout}/desc.txt`),
    "multi\nline",
  );

  const shell = agentCommand("shell", {
    voyageId: "v",
    ship: "s",
    task: { id: "4", subject: "x", command: "echo from-shell; exit 5" },
    promptFile: s.promptFile,
    checkout: s.checkout,
    runAsUser: s.user,
    env: { PATH },
  });
  const r2 = await runDirect({ ...shell, logFile: s.logFile });
  assert.equal(r2.code, 5);
  assert.match(await Deno.readTextFile(s.logFile), /\nfrom-shell\n/);
});

Deno.test("envFile: the allow-listed variables into the agent's environment, secrets marked; anything else refused", async () => {
  const vars = {
    ANTHROPIC_API_KEY: "sk-ant-api-1",
    ANTHROPIC_BASE_URL: "http://gw.example:8080",
    ANTHROPIC_CUSTOM_HEADERS: "X-A: 1\nX-B: 2",
    OPENAI_API_KEY: "sk-openai-1",
  };
  const file = await tempTokenFile(0o600, JSON.stringify(vars));
  const inv = agentCommand("claude", baseOpts({ envFile: file }));
  assert.equal(inv.env.ANTHROPIC_API_KEY, "sk-ant-api-1");
  assert.equal(inv.env.ANTHROPIC_BASE_URL, "http://gw.example:8080");
  assert.equal(inv.env.ANTHROPIC_CUSTOM_HEADERS, "X-A: 1\nX-B: 2");
  assert.deepEqual(inv.secretEnv.sort(), [
    "ANTHROPIC_API_KEY",
    "ANTHROPIC_CUSTOM_HEADERS",
    "OPENAI_API_KEY",
  ]);
  assert.ok(!inv.argv.some((a) => a.includes("sk-")));
  // Only claude and codex get it.
  const sh = agentCommand(
    "shell",
    baseOpts({ envFile: file, task: { ...task, command: "true" } }),
  );
  assert.equal(sh.env.ANTHROPIC_API_KEY, undefined);
  // A file others can read, or a name outside the list, is refused.
  const open = await tempTokenFile(0o644, JSON.stringify(vars));
  assertThrowsCode(
    () => agentCommand("claude", baseOpts({ envFile: open })),
    "secret_perms",
  );
  const bad = await tempTokenFile(
    0o600,
    JSON.stringify({ LD_PRELOAD: "/tmp/x.so" }),
  );
  assertThrowsCode(
    () => agentCommand("claude", baseOpts({ envFile: bad })),
    "secret_invalid",
    /"LD_PRELOAD", which is not an allowed agent variable/,
  );
});

Deno.test("requireAgentProgram: the ship's pre-flight finds the agent's program on the agent's PATH, or names what is missing", async () => {
  const dir = await tempDir("ohc-bin-");
  await Deno.writeTextFile(`${dir}/claude`, "#!/bin/sh\n", { mode: 0o755 });
  await Deno.chmod(`${dir}/claude`, 0o755);
  assert.equal(
    requireAgentProgram("claude", { ship: "s1", path: `/x:${dir}` }),
    `${dir}/claude`,
  );
  assert.equal(
    requireAgentProgram("shell", { ship: "s1", path: "/nonexistent" }),
    undefined,
  );
  assertThrowsCode(
    () => requireAgentProgram("codex", { ship: "s1", path: "/nonexistent" }),
    "agent_missing",
    /^ship s1 has no codex executable on its PATH \(\/nonexistent\)$/,
  );
});
