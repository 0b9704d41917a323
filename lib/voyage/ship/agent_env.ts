/**
 * The agent's environment as users need it: which variables travel from the
 * laptop (`sail` reads them from its environment and .env files) through
 * the flagship to each ship's agent. Only these travel; the list is
 * README's "Agent environment". All of them ride in the RPC request's
 * `secrets` (stdin, never argv), are kept on the flagship and on each ship
 * in 0600 files, and are set in the agent's own environment only (not the
 * captain's, the tmux server's, or the runner's helpers').
 *
 * Which variables each kind takes is in its own file (agents/claude.ts,
 * agents/codex.ts).
 */
import { UsageError } from "../../errors.ts";
import { AGENT_KINDS, type AgentKind } from "./agents/kinds.ts";
import { agentAdapter } from "./agents/registry.ts";

/** Each kind's variables are in its own file (agents/claude.ts, ...). */
const VARS = AGENT_KINDS.flatMap((k) => agentAdapter(k).env ?? []);

/** Every name that may travel, for any agent. */
export const AGENT_ENV_NAMES: readonly string[] = [
  ...new Set(VARS.flatMap((v) => [...v.secrets, ...v.settings])),
];

const SECRET_NAMES = new Set(VARS.flatMap((v) => v.secrets));

export const isAgentSecret = (name: string) => SECRET_NAMES.has(name);

/** The allow-listed variables `kind` uses that `get` has (non-empty). */
export function agentEnvFrom(
  kind: AgentKind,
  get: (name: string) => string | undefined,
): Record<string, string> {
  const vars = agentAdapter(kind).env;
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

/**
 * The pre-flight: `sail` with claude or codex stops with exit 2, before
 * any VM exists, when `env` holds no credential the agent can use.
 */
export function requireAgentCredential(
  kind: AgentKind,
  env: Record<string, string>,
): void {
  agentAdapter(kind).requireCredential?.(env);
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
  if (!agentAdapter(kind).takesModel) {
    throw new UsageError(
      `--model is for the ${
        AGENT_KINDS.filter((k) => agentAdapter(k).takesModel).join(" and ")
      } agents (the agent is ${kind})`,
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
