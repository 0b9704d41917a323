/**
 * The claude agent: `claude -p --dangerously-skip-permissions
 * --output-format stream-json --verbose < prompt file`.
 *
 * Claude Code refuses `--dangerously-skip-permissions` as root: a root
 * captain runs it as another user (`runAsUser`, agent_user.ts), else
 * `agent_root` before anything runs. A token file's content becomes
 * CLAUDE_CODE_OAUTH_TOKEN, and since Claude Code prefers
 * `ANTHROPIC_AUTH_TOKEN` and `ANTHROPIC_API_KEY` over it (and `-p` always
 * uses an API key when one is set), both are dropped then.
 */
import { OhcError, UsageError } from "../../../errors.ts";
import { writeFileAtomic } from "../../../state/atomic.ts";
import { readSecretFile } from "./secret_file.ts";
import {
  isObject,
  type JsonObject,
  num,
  oneLine,
  parseJsonLine,
  reportedFailureIn,
  str,
  toLines,
} from "./stream.ts";
import type { AgentAdapter, AgentOutcome } from "./types.ts";

const truthy = (v: string | undefined) =>
  v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";

export const claude: AgentAdapter = {
  program: "claude",
  installHint:
    "install Claude Code on the ships (npm install -g @anthropic-ai/claude-code, or a cloudinit INIT_PATH hook)",
  takesModel: true,
  refusesRoot: true,
  prepareHome: (home, trust) => prepareClaudeHome(home, { trust }),
  // Claude Code picks among the credentials itself: cloud providers first,
  // then ANTHROPIC_AUTH_TOKEN, ANTHROPIC_API_KEY, then CLAUDE_CODE_OAUTH_TOKEN.
  env: {
    secrets: [
      "CLAUDE_CODE_OAUTH_TOKEN",
      "ANTHROPIC_API_KEY",
      "ANTHROPIC_AUTH_TOKEN",
      "ANTHROPIC_CUSTOM_HEADERS",
      // Bedrock
      "AWS_ACCESS_KEY_ID",
      "AWS_SECRET_ACCESS_KEY",
      "AWS_SESSION_TOKEN",
      "AWS_BEARER_TOKEN_BEDROCK",
    ],
    settings: [
      "ANTHROPIC_BASE_URL",
      "ANTHROPIC_MODEL",
      "ANTHROPIC_DEFAULT_OPUS_MODEL",
      "ANTHROPIC_DEFAULT_SONNET_MODEL",
      "ANTHROPIC_DEFAULT_HAIKU_MODEL",
      "ANTHROPIC_SMALL_FAST_MODEL",
      "CLAUDE_CODE_USE_BEDROCK",
      "ANTHROPIC_BEDROCK_BASE_URL",
      "AWS_REGION",
      "CLAUDE_CODE_SKIP_BEDROCK_AUTH",
      "CLAUDE_CODE_USE_VERTEX",
      "CLOUD_ML_REGION",
      "ANTHROPIC_VERTEX_PROJECT_ID",
      "ANTHROPIC_VERTEX_BASE_URL",
      "CLAUDE_CODE_SKIP_VERTEX_AUTH",
      "CLAUDE_CODE_MAX_RETRIES",
      "API_TIMEOUT_MS",
      "CLAUDE_CODE_MAX_OUTPUT_TOKENS",
      "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC",
      "DISABLE_TELEMETRY",
    ],
  },
  requireCredential(env) {
    const ok =
      ["CLAUDE_CODE_OAUTH_TOKEN", "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN"]
        .some((k) => env[k]) ||
      truthy(env.CLAUDE_CODE_USE_BEDROCK) || truthy(env.CLAUDE_CODE_USE_VERTEX);
    if (!ok) {
      throw new UsageError(
        "the claude agent needs a credential: set CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_API_KEY (or ANTHROPIC_AUTH_TOKEN), or CLAUDE_CODE_USE_BEDROCK=1 / CLAUDE_CODE_USE_VERTEX=1 with their settings",
        "claude setup-token prints an OAuth token; put it in ~/.ohcommodore/.env as CLAUDE_CODE_OAUTH_TOKEN=…",
      );
    }
  },
  build(opts, { env, secretEnv, agentUid }) {
    if (agentUid === 0 && !opts.allowRoot) {
      throw new OhcError(
        "agent_root",
        "Claude Code refuses --dangerously-skip-permissions as root, and " +
          "the agent would run as root",
        "set OHCOMMODORE_AGENT_USER to a non-root user (a root captain picks ohcommodore-agent by itself unless OHCOMMODORE_CLAUDE_ALLOW_ROOT=1)",
      );
    }
    const argv = [
      opts.claudeBin ?? "claude",
      "-p",
      "--dangerously-skip-permissions",
      "--output-format",
      "stream-json",
      "--verbose",
    ];
    if (opts.model) argv.push("--model", opts.model);
    argv.push(...(opts.extraArgs ?? []));
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
    return { argv, stdinFile: opts.promptFile };
  },
  parse: (input) => parseClaudeStream(input),
};

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
