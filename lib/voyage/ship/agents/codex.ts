/**
 * The codex agent: `codex exec --dangerously-bypass-approvals-and-sandbox
 * --json - < prompt file`; a key file's content becomes CODEX_API_KEY.
 */
import { UsageError } from "../../../errors.ts";
import { readSecretFile } from "./secret_file.ts";
import {
  isObject,
  type JsonObject,
  oneLine,
  parseJsonLine,
  reportedFailureIn,
  str,
  toLines,
} from "./stream.ts";
import type { AgentAdapter, AgentOutcome } from "./types.ts";

export const codex: AgentAdapter = {
  program: "codex",
  installHint:
    "install the Codex CLI on the ships (npm install -g @openai/codex)",
  takesModel: true,
  env: {
    secrets: ["CODEX_API_KEY", "OPENAI_API_KEY"],
    settings: ["OPENAI_BASE_URL"],
  },
  requireCredential(env) {
    if (!env.CODEX_API_KEY && !env.OPENAI_API_KEY) {
      throw new UsageError(
        "the codex agent needs a credential: set CODEX_API_KEY or OPENAI_API_KEY",
      );
    }
  },
  build(opts, { env, secretEnv }) {
    const argv = [
      opts.codexBin ?? "codex",
      "exec",
      "--dangerously-bypass-approvals-and-sandbox",
      "--json",
    ];
    if (opts.model) argv.push("--model", opts.model);
    argv.push(...(opts.extraArgs ?? []), "-");
    if (opts.codexKeyFile !== undefined) {
      env.CODEX_API_KEY = readSecretFile(
        opts.codexKeyFile,
        "the Codex API key",
      );
      secretEnv.push("CODEX_API_KEY");
    }
    return { argv, stdinFile: opts.promptFile };
  },
  parse: (input) => parseCodexStream(input),
};

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
