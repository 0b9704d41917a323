/**
 * The agent kinds, listed once: each is one file beside this one (claude,
 * codex, shell, custom) saying what differs by kind. Everything that
 * names the kinds (the CLI's `--agent` choices, the session's wire type,
 * which variables travel) takes them from here.
 */
import { UsageError } from "../../../errors.ts";
import { claude } from "./claude.ts";
import { codex } from "./codex.ts";
import { custom } from "./custom.ts";
import { shell } from "./shell.ts";
import type { AgentAdapter, AgentTask } from "./types.ts";

export const AGENTS = {
  claude,
  codex,
  shell,
  custom,
} as const satisfies Record<
  string,
  AgentAdapter
>;

export type AgentKind = keyof typeof AGENTS;
export const AGENT_KINDS = Object.keys(AGENTS) as readonly AgentKind[];
export const DEFAULT_AGENT: AgentKind = "claude";

export function isAgentKind(s: string): s is AgentKind {
  return Object.hasOwn(AGENTS, s);
}

/** The kind's adapter (a UsageError for a kind that is none). */
export function agentAdapter(kind: AgentKind): AgentAdapter {
  if (!isAgentKind(kind)) throw new UsageError(`unknown agent "${kind}"`);
  return AGENTS[kind];
}

/** `--agent` value to AgentKind; a UsageError (exit 2) naming the choices. */
export function parseAgentKind(s: string): AgentKind {
  if (isAgentKind(s)) return s;
  throw new UsageError(
    `unknown agent "${s}": expected one of ${AGENT_KINDS.join(", ")}`,
  );
}

/** The program an agent kind needs on a ship (claude, codex); none for shell and custom. */
export function agentProgram(kind: AgentKind): string | undefined {
  return agentAdapter(kind).program;
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
