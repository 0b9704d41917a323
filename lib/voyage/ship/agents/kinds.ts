/**
 * The agent kinds, listed once. Each is one file beside this one (claude.ts,
 * codex.ts, shell.ts, custom.ts) saying what differs by kind, and
 * registry.ts maps every kind here to it (its type makes the two lists one).
 * Everything that names the kinds (the CLI's `--agent` choices, the
 * session's wire type, which variables travel) takes them from here. Light
 * on purpose: the CLI loads it on every start.
 */
import { UsageError } from "../../../errors.ts";

export const AGENT_KINDS = ["claude", "codex", "shell", "custom"] as const;
export type AgentKind = typeof AGENT_KINDS[number];
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
