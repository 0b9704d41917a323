/**
 * Agent adapters: how a ship turns one task into one process.
 *
 * `agentCommand(kind, opts)` returns an `AgentInvocation`: the argv, the
 * complete environment, the working directory and the file to feed on stdin.
 * It starts nothing; tmux.ts runs it (`runTask(invocation + window/log)`).
 *
 *   claude  claude -p --dangerously-skip-permissions --output-format
 *           stream-json --verbose  < prompt file
 *   codex   codex exec --dangerously-bypass-approvals-and-sandbox --json -
 *           < prompt file
 *   shell   bash -c <task.command>            (the task's own command)
 *   custom  bash -c <--agent-command CMD>     (exit 0 = success)
 *
 * Every kind runs in the checkout and gets the OHC_* variables
 * (`OHC_VOYAGE_ID`, `OHC_SHIP`, `OHC_TASK_ID`, `OHC_TASK_SUBJECT`,
 * `OHC_TASK_DESCRIPTION`, `OHC_TASK_PROMPT_FILE`, `OHC_CHECKOUT`).
 *
 * Decisions:
 * - The prompt goes on **stdin**, for claude and codex alike, never in argv:
 *   argv is visible to every user in `ps`, is capped at 128 KiB per word on
 *   Linux, and inside a tmux pane stdin would otherwise be the terminal
 *   (`claude -p` with a terminal on stdin and no prompt argument fails with
 *   "Input must be provided either through stdin or as a prompt argument").
 *   The runner redirects stdin from the prompt file, so the file only needs
 *   to be readable by the captain, not by the agent's user.
 * - Secrets travel in the **environment only**: the Claude OAuth token is read
 *   from a 0600 file (`tokenFile`) and set as `CLAUDE_CODE_OAUTH_TOKEN` in the
 *   agent's environment; the runner passes that environment through a 0600
 *   file sourced by its wrapper, so no secret is ever in an argv. A token file
 *   that group or others can read is refused. Because Claude Code prefers
 *   `ANTHROPIC_AUTH_TOKEN` and `ANTHROPIC_API_KEY` over the OAuth token (and
 *   `-p` always uses an API key when one is set), both are dropped from the
 *   environment when a token file is given.
 * - Claude Code refuses `--dangerously-skip-permissions` as root. As root,
 *   the claude adapter therefore needs `runAsUser` (any kind may use it): the
 *   argv is prefixed with `setpriv --reuid --regid --init-groups --`
 *   (util-linux; unlike `runuser`/`su` it opens no PAM session and leaves the
 *   environment alone), and HOME/USER/LOGNAME become that user's. Without it
 *   `agentCommand` throws `agent_root` before anything runs. The checkout must
 *   be writable by that user (the captain chowns it); the log and the stdin
 *   redirect are handled by the runner as the captain, so claude and codex
 *   need no access to the prompt file, but a custom agent that reads
 *   `OHC_TASK_PROMPT_FILE` needs it readable by that user.
 * - `environment`: `opts.env` is the base (PATH, LANG, ...). It is not merged
 *   with the captain's own environment; what is returned is all the agent
 *   sees (the runners run it with a cleared environment).
 */

import { OhcError, UsageError } from "../errors.ts";
import { writeFileAtomic } from "../state/atomic.ts";
import { AGENT_ENV_NAMES, isAgentSecret } from "./agent_env.ts";
import { FAILURE_MARKER } from "./prompt.ts";
import type { AgentRunStats } from "./queue.ts";

export type AgentKind = "claude" | "codex" | "shell" | "custom";
export const AGENT_KINDS: readonly AgentKind[] = [
  "claude",
  "codex",
  "shell",
  "custom",
];
export const DEFAULT_AGENT: AgentKind = "claude";

export function isAgentKind(s: string): s is AgentKind {
  return (AGENT_KINDS as readonly string[]).includes(s);
}

/** `--agent` value to AgentKind; a UsageError (exit 2) naming the choices. */
export function parseAgentKind(s: string): AgentKind {
  if (isAgentKind(s)) return s;
  throw new UsageError(
    `unknown agent "${s}": expected one of ${AGENT_KINDS.join(", ")}`,
  );
}

/** The task fields an adapter needs (a PlanTask has all of them). */
export interface AgentTask {
  id: string;
  subject: string;
  description?: string;
  /** For the shell agent. */
  command?: string;
}

/**
 * Checks, before any VM exists, that the plan can run with this agent:
 * `shell` needs a command on every task, `custom` needs `--agent-command`,
 * and `--agent-command` makes sense only with `custom`.
 */
export function validateAgentChoice(
  kind: AgentKind,
  opts: { tasks: readonly AgentTask[]; agentCommand?: string },
): void {
  if (kind === "custom") {
    if (opts.agentCommand === undefined || opts.agentCommand.trim() === "") {
      throw new UsageError(
        "--agent custom needs --agent-command CMD",
        'e.g. --agent custom --agent-command "./run-task.sh"',
      );
    }
  } else if (opts.agentCommand !== undefined) {
    throw new UsageError(
      `--agent-command is only for --agent custom (the agent is ${kind})`,
    );
  }
  if (kind === "shell") {
    const missing = opts.tasks.filter((t) =>
      t.command === undefined || t.command.trim() === ""
    ).map((t) => t.id);
    if (missing.length > 0) {
      throw new UsageError(
        `the shell agent runs each task's "command", and ${
          missing.length === 1 ? "task" : "tasks"
        } ${missing.join(", ")} ${missing.length === 1 ? "has" : "have"} none`,
        'add "command" (or metadata.command) to those tasks, or choose another --agent',
      );
    }
  }
}

export interface AgentOptions {
  voyageId: string;
  ship: string;
  task: AgentTask;
  /** Absolute path of the prompt file (buildPrompt's text). */
  promptFile: string;
  /** Absolute path of the repository checkout; the agent's cwd. */
  checkout: string;
  /** For `custom`: the command line, run with `bash -c`. */
  agentCommand?: string;
  /** Base environment of the agent (PATH, LANG, HOME, ...). Default {}. */
  env?: Record<string, string>;
  /**
   * claude: a 0600 file holding the OAuth token (`claude setup-token`); its
   * content becomes CLAUDE_CODE_OAUTH_TOKEN. Without it Claude Code uses
   * whatever login its HOME has.
   */
  tokenFile?: string;
  /** codex: a 0600 file holding an API key; becomes CODEX_API_KEY. */
  codexKeyFile?: string;
  /**
   * A 0600 JSON file of the agent's allow-listed variables (agent_env.ts:
   * credentials, endpoints, models), set in its environment; the secrets
   * among them are listed in `secretEnv`. Read like a token file.
   */
  envFile?: string;
  /** The claude executable (default "claude", found on the env's PATH). */
  claudeBin?: string;
  /** The codex executable (default "codex"). */
  codexBin?: string;
  /** claude/codex `--model`. */
  model?: string;
  /**
   * claude/codex: more flags, after the fixed ones (e.g. ["--max-turns",
   * "50"]). Never put a secret here: argv is public.
   */
  extraArgs?: string[];
  /**
   * Run the agent as this user (name or numeric uid) via setpriv. Needs the
   * captain to be root. Required for claude when the captain is root.
   */
  runAsUser?: string;
  /** HOME for the agent; default: runAsUser's home, else env.HOME. */
  home?: string;
  /**
   * claude as root anyway: only for sandboxes that Claude Code accepts
   * root in, and for tests with the fake (FAKE_CLAUDE_ALLOW_ROOT=1).
   */
  allowRoot?: boolean;
  /** The captain's uid; default Deno.uid(). Tests set it. */
  uid?: number;
}

export interface AgentInvocation {
  kind: AgentKind;
  /** What to exec. Never holds a secret. */
  argv: string[];
  /** The complete environment of the agent (secrets included). */
  env: Record<string, string>;
  cwd: string;
  /** Feed this file on stdin (claude, codex); else stdin is /dev/null. */
  stdinFile?: string;
  /** Names of `env` entries that are secrets: never log their values. */
  secretEnv: string[];
  /** The user the agent runs as, when runAsUser was given. */
  user?: AgentUser;
}

export interface AgentUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** The program an agent kind needs on a ship (claude, codex); none for shell and custom. */
export function agentProgram(kind: AgentKind): string | undefined {
  return kind === "claude" || kind === "codex" ? kind : undefined;
}

/**
 * A ship's pre-flight, before it claims a task: the agent's program is on
 * the PATH the agent gets (`path`). Throws `agent_missing` naming it.
 */
export function requireAgentProgram(
  kind: AgentKind,
  o: { ship: string; path: string },
): string | undefined {
  const program = agentProgram(kind);
  if (!program) return undefined;
  const found = findExecutable(program, o.path);
  if (!found) {
    throw new OhcError(
      "agent_missing",
      `ship ${o.ship} has no ${program} executable on its PATH (${o.path})`,
      program === "claude"
        ? "install Claude Code on the ships (npm install -g @anthropic-ai/claude-code, or a cloudinit INIT_PATH hook), or choose another --agent"
        : "install the Codex CLI on the ships (npm install -g @openai/codex), or choose another --agent",
    );
  }
  return found;
}

/** Builds the invocation for one task. Throws OhcError/UsageError; runs nothing. */
export function agentCommand(
  kind: AgentKind,
  opts: AgentOptions,
): AgentInvocation {
  if (!opts.checkout.startsWith("/")) {
    throw new Error(`checkout must be an absolute path: ${opts.checkout}`);
  }
  if (!opts.promptFile.startsWith("/")) {
    throw new Error(`promptFile must be an absolute path: ${opts.promptFile}`);
  }
  const myUid = opts.uid ?? Deno.uid() ?? -1;
  const user = opts.runAsUser !== undefined
    ? resolveUser(opts.runAsUser)
    : undefined;
  if (user && user.uid !== myUid && myUid !== 0) {
    throw new OhcError(
      "agent_user",
      `cannot run the agent as ${user.name}: switching users needs root, ` +
        `and the captain runs as uid ${myUid}`,
      "run the captain as root, or drop runAsUser to run the agent as the captain's user",
    );
  }
  const agentUid = user ? user.uid : myUid;

  const env: Record<string, string> = { ...(opts.env ?? {}) };
  const secretEnv: string[] = [];
  let argv: string[];
  let stdinFile: string | undefined;

  switch (kind) {
    case "claude": {
      if (agentUid === 0 && !opts.allowRoot) {
        throw new OhcError(
          "agent_root",
          "Claude Code refuses --dangerously-skip-permissions as root, and " +
            "the agent would run as root",
          "set OHCOMMODORE_AGENT_USER to a non-root user (a root captain picks ohcommodore-agent by itself unless OHCOMMODORE_CLAUDE_ALLOW_ROOT=1)",
        );
      }
      argv = [
        opts.claudeBin ?? "claude",
        "-p",
        "--dangerously-skip-permissions",
        "--output-format",
        "stream-json",
        "--verbose",
      ];
      if (opts.model) argv.push("--model", opts.model);
      argv.push(...(opts.extraArgs ?? []));
      stdinFile = opts.promptFile;
      // A nested-session marker would make Claude Code refuse to start.
      delete env.CLAUDECODE;
      env.DISABLE_AUTOUPDATER ??= "1";
      // Claude Code accepts --dangerously-skip-permissions as root only in
      // what it takes for a sandbox; allowRoot says the ship is one.
      if (agentUid === 0) env.IS_SANDBOX = "1";
      if (opts.tokenFile !== undefined) {
        delete env.ANTHROPIC_API_KEY;
        delete env.ANTHROPIC_AUTH_TOKEN;
        env.CLAUDE_CODE_OAUTH_TOKEN = readSecretFile(
          opts.tokenFile,
          "the Claude Code OAuth token",
        );
        secretEnv.push("CLAUDE_CODE_OAUTH_TOKEN");
      }
      break;
    }
    case "codex": {
      argv = [
        opts.codexBin ?? "codex",
        "exec",
        "--dangerously-bypass-approvals-and-sandbox",
        "--json",
      ];
      if (opts.model) argv.push("--model", opts.model);
      argv.push(...(opts.extraArgs ?? []), "-");
      stdinFile = opts.promptFile;
      if (opts.codexKeyFile !== undefined) {
        env.CODEX_API_KEY = readSecretFile(
          opts.codexKeyFile,
          "the Codex API key",
        );
        secretEnv.push("CODEX_API_KEY");
      }
      break;
    }
    case "shell": {
      const command = opts.task.command;
      if (command === undefined || command.trim() === "") {
        throw new UsageError(
          `task ${opts.task.id} has no "command": the shell agent runs a task's command`,
          'add "command" to the task, or choose another --agent',
        );
      }
      argv = ["bash", "-c", command];
      break;
    }
    case "custom": {
      const command = opts.agentCommand;
      if (command === undefined || command.trim() === "") {
        throw new UsageError("--agent custom needs --agent-command CMD");
      }
      argv = ["bash", "-c", command];
      break;
    }
    default:
      throw new UsageError(`unknown agent "${kind as string}"`);
  }

  if (opts.envFile !== undefined && (kind === "claude" || kind === "codex")) {
    const vars = readSecretEnvFile(opts.envFile);
    for (const [k, v] of Object.entries(vars)) {
      env[k] = v;
      if (isAgentSecret(k) && !secretEnv.includes(k)) secretEnv.push(k);
    }
  }
  for (const [k, v] of Object.entries(ohcEnv(opts))) env[k] = v;
  if (user) {
    env.HOME = opts.home ?? user.home;
    env.USER = user.name;
    env.LOGNAME = user.name;
    if (user.uid !== myUid) argv = [...setprivPrefix(user), ...argv];
  } else if (opts.home !== undefined) {
    env.HOME = opts.home;
  }

  return {
    kind,
    argv,
    env,
    cwd: opts.checkout,
    stdinFile,
    secretEnv,
    user,
  };
}

/** The OHC_* variables every agent gets. */
export function ohcEnv(
  opts: Pick<
    AgentOptions,
    "voyageId" | "ship" | "task" | "promptFile" | "checkout"
  >,
): Record<string, string> {
  return {
    OHC_VOYAGE_ID: opts.voyageId,
    OHC_SHIP: opts.ship,
    OHC_TASK_ID: opts.task.id,
    OHC_TASK_SUBJECT: opts.task.subject,
    OHC_TASK_DESCRIPTION: opts.task.description ?? "",
    OHC_TASK_PROMPT_FILE: opts.promptFile,
    OHC_CHECKOUT: opts.checkout,
  };
}

/**
 * Reads a secret from a file that only its owner may read (no group/other
 * bits). Trailing whitespace is dropped. Never puts the value in an error.
 */
export function readSecretFile(path: string, what: string): string {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new OhcError(
        "secret_missing",
        `${what} file ${path} does not exist`,
        "write it with mode 0600 (umask 077; printf %s TOKEN > FILE)",
      );
    }
    throw e;
  }
  if (!info.isFile) {
    throw new OhcError("secret_missing", `${what} file ${path} is not a file`);
  }
  const mode = (info.mode ?? 0) & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new OhcError(
      "secret_perms",
      `${what} file ${path} is readable by others (mode ${
        mode.toString(8).padStart(4, "0")
      })`,
      `chmod 600 ${path}`,
    );
  }
  const value = Deno.readTextFileSync(path).replace(/\s+$/, "");
  if (value === "") {
    throw new OhcError("secret_missing", `${what} file ${path} is empty`);
  }
  if (value.includes("\0") || value.includes("\n")) {
    throw new OhcError(
      "secret_invalid",
      `${what} file ${path} must hold one line`,
    );
  }
  return value;
}

/**
 * Reads a JSON object of variables from a file only its owner may read
 * (the same checks as `readSecretFile`); names outside the agent
 * allow-list are refused, never shown with their values.
 */
export function readSecretEnvFile(path: string): Record<string, string> {
  const text = readSecretFile(path, "the agent environment");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new OhcError(
      "secret_invalid",
      `the agent environment file ${path} is not JSON`,
    );
  }
  if (!isObject(v)) {
    throw new OhcError(
      "secret_invalid",
      `the agent environment file ${path} does not hold an object`,
    );
  }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!AGENT_ENV_NAMES.includes(k) || typeof val !== "string") {
      throw new OhcError(
        "secret_invalid",
        `the agent environment file ${path} holds ${
          JSON.stringify(k)
        }, which is not an allowed agent variable`,
      );
    }
    out[k] = val;
  }
  return out;
}

/** Looks a user up (name or uid) with getent, else /etc/passwd. */
export function resolveUser(nameOrUid: string): AgentUser {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(nameOrUid)) {
    throw new UsageError(`invalid user name "${nameOrUid}"`);
  }
  let line: string | undefined;
  try {
    const out = new Deno.Command("getent", {
      args: ["passwd", nameOrUid],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (out.success) {
      line = new TextDecoder().decode(out.stdout).split("\n")[0];
    }
  } catch {
    // no getent: fall back to the file
  }
  if (line === undefined) {
    try {
      line = Deno.readTextFileSync("/etc/passwd").split("\n").find((l) => {
        const f = l.split(":");
        return f[0] === nameOrUid || f[2] === nameOrUid;
      });
    } catch {
      // no passwd file
    }
  }
  const f = line?.split(":") ?? [];
  if (f.length < 7) {
    throw new OhcError(
      "agent_user",
      `no such user "${nameOrUid}" to run the agent as`,
      "create it (useradd -m NAME) or pick an existing non-root user",
    );
  }
  return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
}

function setprivPrefix(user: AgentUser): string[] {
  const setpriv = findExecutable("setpriv");
  if (!setpriv) {
    throw new OhcError(
      "agent_user",
      "setpriv (util-linux) is needed to run the agent as another user and was not found",
      "install util-linux (apt-get install util-linux)",
    );
  }
  return [
    setpriv,
    `--reuid=${user.uid}`,
    `--regid=${user.gid}`,
    "--init-groups",
    "--",
  ];
}

/** Finds an executable on PATH (default: this process's) and the usual system directories. */
export function findExecutable(
  name: string,
  path = Deno.env.get("PATH") ?? "",
): string | undefined {
  const dirs = [
    ...path.split(":"),
    "/usr/local/bin",
    "/usr/bin",
    "/bin",
    "/usr/sbin",
    "/sbin",
  ].filter((d) => d.startsWith("/"));
  for (const d of dirs) {
    try {
      const info = Deno.statSync(`${d}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) {
        return `${d}/${name}`;
      }
    } catch {
      // not here
    }
  }
  return undefined;
}

export interface ClaudeHomeOptions {
  /** Folders to mark as trusted (the checkout), absolute paths. */
  trust?: string[];
  /** chown what is written to this user (when the agent runs as another user). */
  owner?: { uid: number; gid: number };
}

/**
 * Prepares a HOME for Claude Code so it never stops to ask: `~/.claude.json`
 * gets `hasCompletedOnboarding: true` (no flag skips the first-run wizard;
 * `-p` does not show it, but a person attaching to run `claude` by hand
 * would) and `projects[<dir>].hasTrustDialogAccepted: true` for each trusted
 * folder; `~/.claude/settings.json` gets `skipDangerousModePermissionPrompt:
 * true` (the interactive bypass-permissions dialog). Both files are merged
 * with what is there, not replaced, written atomically with mode 0600.
 * Returns the paths written.
 */
export async function prepareClaudeHome(
  home: string,
  opts: ClaudeHomeOptions = {},
): Promise<string[]> {
  const claudeJson = `${home}/.claude.json`;
  const settingsDir = `${home}/.claude`;
  const settingsJson = `${settingsDir}/settings.json`;

  const state = await readJsonObject(claudeJson);
  state.hasCompletedOnboarding = true;
  if (opts.trust && opts.trust.length > 0) {
    const projects: JsonObject = isObject(state.projects) ? state.projects : {};
    for (const dir of opts.trust) {
      const old = projects[dir];
      const p: JsonObject = isObject(old) ? old : {};
      p.hasTrustDialogAccepted = true;
      p.hasCompletedProjectOnboarding = true;
      projects[dir] = p;
    }
    state.projects = projects;
  }
  await writeFileAtomic(claudeJson, JSON.stringify(state, null, 2) + "\n");

  const settings = await readJsonObject(settingsJson);
  settings.skipDangerousModePermissionPrompt = true;
  await writeFileAtomic(settingsJson, JSON.stringify(settings, null, 2) + "\n");

  if (opts.owner) {
    for (const p of [claudeJson, settingsDir, settingsJson]) {
      await Deno.chown(p, opts.owner.uid, opts.owner.gid);
    }
  }
  return [claudeJson, settingsJson];
}

type JsonObject = Record<string, unknown>;

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

async function readJsonObject(path: string): Promise<JsonObject> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return {};
    throw e;
  }
  if (text.trim() === "") return {};
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new OhcError(
      "corrupt_state",
      `${path} is not valid JSON: ${(e as Error).message}`,
      `move it aside (mv ${path} ${path}.bad) and retry`,
    );
  }
  if (!isObject(v)) {
    throw new OhcError("corrupt_state", `${path} does not hold a JSON object`);
  }
  return v;
}

/** What an agent's output says about how its run ended. */
export interface AgentOutcome {
  /** A final result was seen, it was a success, and no TASK FAILED line. */
  ok: boolean;
  /** Claude: the result subtype ("success", "error_max_turns", ...). */
  subtype?: string;
  isError?: boolean;
  /** Claude: total_cost_usd. */
  costUsd?: number;
  /** Claude: num_turns; Codex: turns completed. */
  turns?: number;
  durationMs?: number;
  sessionId?: string;
  model?: string;
  /** The agent's final message. */
  result?: string;
  /** Why it is not ok, one line. */
  error?: string;
  /** The reason after a `TASK FAILED:` line in the final message. */
  reportedFailure?: string;
  /** Token usage as the agent reported it. */
  usage?: Record<string, unknown>;
  /** Claude: the HTTP status of the API error that ended the run. */
  apiErrorStatus?: number;
  /** Claude: `system/api_retry` events seen (the client retrying the API). */
  apiRetries?: number;
  /** Claude: the last retry's cause, e.g. "529 overloaded". */
  lastRetry?: string;
}

function toLines(input: string | Iterable<string>): Iterable<string> {
  return typeof input === "string" ? input.split("\n") : input;
}

function parseJsonLine(line: string): JsonObject | undefined {
  const t = line.trim();
  if (!t.startsWith("{")) return undefined;
  try {
    const v = JSON.parse(t);
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

function reportedFailureIn(text: string | undefined): string | undefined {
  if (!text) return undefined;
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t.startsWith(FAILURE_MARKER)) {
      return t.slice(FAILURE_MARKER.length).trim() || "(no reason given)";
    }
  }
  return undefined;
}

const str = (v: unknown) => typeof v === "string" ? v : undefined;
const num = (v: unknown) => typeof v === "number" ? v : undefined;

/**
 * Reads Claude Code's `--output-format stream-json` output (a log: other
 * lines, such as stderr or the runner's banners, are skipped) and returns
 * the final result: the last `result` event, with model and session from
 * `system/init`. No result event means Claude ended early; the last
 * non-JSON line (often its error message) is given as the error.
 */
export function parseClaudeStream(
  input: string | Iterable<string>,
): AgentOutcome {
  const out: AgentOutcome = { ok: false };
  let lastText: string | undefined;
  let lastAssistantText: string | undefined;
  let sawResult = false;
  for (const line of toLines(input)) {
    const ev = parseJsonLine(line);
    if (!ev) {
      const t = line.trim();
      if (t !== "" && !t.startsWith("[ohc]")) lastText = t;
      continue;
    }
    if (ev.type === "system" && ev.subtype === "init") {
      out.model = str(ev.model) ?? out.model;
      out.sessionId = str(ev.session_id) ?? out.sessionId;
    } else if (ev.type === "system" && ev.subtype === "api_retry") {
      out.apiRetries = (out.apiRetries ?? 0) + 1;
      out.lastRetry = [num(ev.error_status), str(ev.error)].filter((x) =>
        x !== undefined
      ).join(" ") || undefined;
    } else if (ev.type === "assistant") {
      const msg = ev.message as JsonObject | undefined;
      const content = Array.isArray(msg?.content) ? msg.content : [];
      const texts = content.filter((c) => isObject(c) && c.type === "text")
        .map((c) => str((c as JsonObject).text) ?? "");
      if (texts.length > 0) lastAssistantText = texts.join("\n");
    } else if (ev.type === "result") {
      sawResult = true;
      out.subtype = str(ev.subtype);
      out.isError = ev.is_error === true;
      out.costUsd = num(ev.total_cost_usd);
      out.turns = num(ev.num_turns);
      out.durationMs = num(ev.duration_ms);
      out.sessionId = str(ev.session_id) ?? out.sessionId;
      out.result = str(ev.result);
      out.usage = isObject(ev.usage) ? ev.usage : undefined;
      const errors = Array.isArray(ev.errors)
        ? ev.errors.map(String).join("; ")
        : undefined;
      out.apiErrorStatus = num(ev.api_error_status);
      const why = errors || out.result || out.subtype || "error";
      out.error = out.apiErrorStatus !== undefined
        ? oneLine(
          `API error ${out.apiErrorStatus}${
            str(ev.api_error_type) ? ` (${ev.api_error_type})` : ""
          }: ${why}`,
        )
        : out.isError || out.subtype !== "success"
        ? oneLine(why)
        : undefined;
    }
  }
  if (!sawResult) {
    out.error = "no result from Claude Code: it ended before finishing" +
      (out.apiRetries
        ? ` after ${out.apiRetries} API ${
          out.apiRetries === 1 ? "retry" : "retries"
        }${out.lastRetry ? ` (last: ${out.lastRetry})` : ""}`
        : "") +
      (lastText ? ` (last output: ${oneLine(lastText)})` : "");
    return out;
  }
  out.reportedFailure = reportedFailureIn(out.result ?? lastAssistantText);
  out.ok = !out.isError && out.subtype === "success" &&
    out.reportedFailure === undefined;
  if (out.ok) delete out.error;
  else if (!out.error && out.reportedFailure) {
    out.error = `the agent reported: ${out.reportedFailure}`;
  }
  return out;
}

/**
 * Reads `codex exec --json` output: `thread.started` (session), a
 * `turn.completed` (usage) or `turn.failed`/`error`, and the last
 * `agent_message` item as the result.
 */
export function parseCodexStream(
  input: string | Iterable<string>,
): AgentOutcome {
  const out: AgentOutcome = { ok: false, turns: 0 };
  let completed = false;
  let failed: string | undefined;
  let lastText: string | undefined;
  for (const line of toLines(input)) {
    const ev = parseJsonLine(line);
    if (!ev) {
      const t = line.trim();
      if (t !== "" && !t.startsWith("[ohc]")) lastText = t;
      continue;
    }
    switch (ev.type) {
      case "thread.started":
        out.sessionId = str(ev.thread_id) ?? out.sessionId;
        break;
      case "turn.completed":
        completed = true;
        out.turns = (out.turns ?? 0) + 1;
        out.usage = isObject(ev.usage) ? ev.usage : out.usage;
        break;
      case "turn.failed": {
        const err = ev.error as JsonObject | undefined;
        failed = str(err?.message) ?? "turn failed";
        break;
      }
      case "error":
        failed = str(ev.message) ?? "error";
        break;
      case "item.completed": {
        const item = ev.item as JsonObject | undefined;
        if (item?.type === "agent_message") out.result = str(item.text);
        break;
      }
    }
  }
  out.reportedFailure = reportedFailureIn(out.result);
  if (failed !== undefined) {
    out.isError = true;
    out.error = oneLine(failed);
  } else if (!completed) {
    out.isError = true;
    out.error = "no completed turn from Codex: it ended before finishing" +
      (lastText ? ` (last output: ${oneLine(lastText)})` : "");
  } else if (out.reportedFailure !== undefined) {
    out.error = `the agent reported: ${out.reportedFailure}`;
  } else {
    out.ok = true;
  }
  return out;
}

/** What the flagship keeps of a run with the task's attempt (cost, usage, ...). */
export function agentRunStats(o: AgentOutcome): AgentRunStats {
  return {
    cost_usd: o.costUsd ?? null,
    usage: o.usage ?? null,
    model: o.model ?? null,
    turns: o.turns ?? null,
    duration_ms: o.durationMs ?? null,
    session_id: o.sessionId ?? null,
    api_retries: o.apiRetries ?? null,
  };
}

/**
 * The outcome an agent's log shows, for status: claude and codex parse
 * their streams; shell and custom have no structured output (null: their
 * exit code is the whole story).
 */
export function parseAgentOutput(
  kind: AgentKind,
  input: string | Iterable<string>,
): AgentOutcome | null {
  if (kind === "claude") return parseClaudeStream(input);
  if (kind === "codex") return parseCodexStream(input);
  return null;
}

function oneLine(s: string): string {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length > 300 ? t.slice(0, 297) + "..." : t;
}
