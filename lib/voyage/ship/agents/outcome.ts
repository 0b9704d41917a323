/** What the flagship learns from an agent's log: its outcome and stats. */
import type { AgentRunStats } from "../../protocol.ts";
import type { AgentKind } from "./kinds.ts";
import { agentAdapter } from "./registry.ts";
import type { AgentOutcome } from "./types.ts";

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
  return agentAdapter(kind).parse?.(input) ?? null;
}
