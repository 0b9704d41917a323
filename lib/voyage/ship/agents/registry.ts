/** Each agent kind's adapter (the kinds are listed in kinds.ts). */
import { UsageError } from "../../../errors.ts";
import { claude } from "./claude.ts";
import { codex } from "./codex.ts";
import { custom } from "./custom.ts";
import { type AgentKind, isAgentKind } from "./kinds.ts";
import { shell } from "./shell.ts";
import type { AgentAdapter } from "./types.ts";

/** Every kind, no other: the type refuses a missing or an extra one. */
export const AGENTS: Readonly<Record<AgentKind, AgentAdapter>> = {
  claude,
  codex,
  shell,
  custom,
};

/** The kind's adapter (a UsageError for a kind that is none). */
export function agentAdapter(kind: AgentKind): AgentAdapter {
  if (!isAgentKind(kind)) throw new UsageError(`unknown agent "${kind}"`);
  return AGENTS[kind];
}

/** The program an agent kind needs on a ship (claude, codex); none for shell and custom. */
export function agentProgram(kind: AgentKind): string | undefined {
  return agentAdapter(kind).program;
}
