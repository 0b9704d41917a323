/**
 * The agent's environment as users need it: which variables travel from the
 * laptop (`sail` reads them from its environment and .env files) through
 * the flagship to each ship's agent. Only these travel; the list is
 * README's "Agent environment". All of them ride in the RPC request's
 * `secrets` (stdin, never argv), are kept on the flagship and on each ship
 * in 0600 files, and are set in the agent's own environment only (not the
 * captain's, the tmux server's, or the runner's helpers').
 *
 * Claude Code picks among the credentials itself: cloud providers first,
 * then `ANTHROPIC_AUTH_TOKEN`, `ANTHROPIC_API_KEY`, then
 * `CLAUDE_CODE_OAUTH_TOKEN`.
 */
import { UsageError } from "../errors.ts";
import type { AgentKind } from "./agents.ts";

interface AgentVars {
  /** Values that are credentials: never shown, never logged. */
  secrets: readonly string[];
  /** Settings (endpoints, models, regions, retries). */
  settings: readonly string[];
}

export const AGENT_ENV: Record<"claude" | "codex", AgentVars> = {
  claude: {
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
  codex: {
    secrets: ["CODEX_API_KEY", "OPENAI_API_KEY"],
    settings: ["OPENAI_BASE_URL"],
  },
};

/** Every name that may travel, for any agent. */
export const AGENT_ENV_NAMES: readonly string[] = [
  ...new Set(
    Object.values(AGENT_ENV).flatMap((v) => [...v.secrets, ...v.settings]),
  ),
];

const SECRET_NAMES = new Set(
  Object.values(AGENT_ENV).flatMap((v) => v.secrets),
);

export const isAgentSecret = (name: string) => SECRET_NAMES.has(name);

/** The allow-listed variables `kind` uses that `get` has (non-empty). */
export function agentEnvFrom(
  kind: AgentKind,
  get: (name: string) => string | undefined,
): Record<string, string> {
  const vars = kind === "claude" || kind === "codex" ? AGENT_ENV[kind] : null;
  const out: Record<string, string> = {};
  for (const k of vars ? [...vars.secrets, ...vars.settings] : []) {
    const v = get(k);
    if (v !== undefined && v !== "") out[k] = v;
  }
  return out;
}

/** Keeps the allow-listed entries of `env` (what a flagship stores). */
export function onlyAgentEnv(
  env: Record<string, string>,
): Record<string, string> {
  return Object.fromEntries(
    Object.entries(env).filter(([k, v]) =>
      AGENT_ENV_NAMES.includes(k) && typeof v === "string" && v !== ""
    ),
  );
}

const truthy = (v: string | undefined) =>
  v !== undefined && v !== "" && v !== "0" && v.toLowerCase() !== "false";

/**
 * The pre-flight: `sail` with claude or codex stops with exit 2, before
 * any VM exists, when `env` holds no credential the agent can use.
 */
export function requireAgentCredential(
  kind: AgentKind,
  env: Record<string, string>,
): void {
  if (kind === "claude") {
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
  } else if (kind === "codex") {
    if (!env.CODEX_API_KEY && !env.OPENAI_API_KEY) {
      throw new UsageError(
        "the codex agent needs a credential: set CODEX_API_KEY or OPENAI_API_KEY",
      );
    }
  }
}

/**
 * `sail --model`: only for claude and codex, one word without control
 * characters (it becomes one argv word, `--model <it>`).
 */
export function checkModel(
  kind: AgentKind,
  model: string | undefined,
): string | undefined {
  if (model === undefined) return undefined;
  if (kind !== "claude" && kind !== "codex") {
    throw new UsageError(
      `--model is for the claude and codex agents (the agent is ${kind})`,
    );
  }
  // deno-lint-ignore no-control-regex
  if (!/^[^\s\x00-\x1f\x7f]{1,200}$/.test(model) || model.startsWith("-")) {
    throw new UsageError(
      `--model ${
        JSON.stringify(model)
      } is not a model name (one word, e.g. sonnet or claude-sonnet-4-5)`,
    );
  }
  return model;
}
