/** The voyage queue's records, as its operations (queue.ts) return them. */
import type { PlanTask } from "./plan/plan.ts";
import type { AgentRunStats } from "./protocol.ts";

export type VoyageState =
  | "planning"
  | "running"
  | "complete"
  | "verified"
  | "failed"
  | "sunk";
export type TaskStatus = "pending" | "running" | "done" | "failed";

export interface Voyage {
  id: string;
  name: string | null;
  state: VoyageState;
  plan_dir: string;
  bare: string;
  branch: string;
  repo: string | null;
  agent: string;
  agent_command: string | null;
  /** `sail --model`, for claude and codex; null: the agent's default. */
  model: string | null;
  objective: string;
  max_attempts: number;
  lease_s: number;
  created_at: string;
  finished_at: string | null;
  verify_code: number | null;
  verify_output: string | null;
}

/** What `create` takes: the rest is the queue's to set. */
export type NewVoyage =
  & Omit<
    Voyage,
    "created_at" | "finished_at" | "verify_code" | "verify_output" | "model"
  >
  & { model?: string | null };

export interface Task {
  voyage_id: string;
  id: string;
  ord: number;
  subject: string;
  description: string;
  acceptance: string | null;
  command: string | null;
  blocked_by: string[];
  status: TaskStatus;
  ship: string | null;
  attempts: number;
  /** Attempts made before its last retry: the limit counts from there. */
  attempts_before: number;
  lease_until: string | null;
  started_at: string | null;
  finished_at: string | null;
  commit_sha: string | null;
  error: string | null;
  conflict: string[] | null;
  side_branch: string | null;
}

export interface VoyageShip {
  ship: string;
  state: string;
  current_task: string | null;
  task_started_at: string | null;
  last_heartbeat: string | null;
}

export interface TaskEvent {
  task_id: string | null;
  ship: string | null;
  event: string;
  detail: string | null;
  at: string;
}

/** One attempt at a task, as `voyage tasks --json` shows it in `runs`. */
export interface TaskRun {
  attempt: number;
  ship: string | null;
  started_at: string | null;
  finished_at: string;
  /** done, failed, retry (failed, tried again), lost (lease ran out). */
  outcome: string;
  error: string | null;
  /** What the agent reported for the run (claude: its result event). */
  cost_usd: number | null;
  usage: Record<string, unknown> | null;
  model: string | null;
  turns: number | null;
  duration_ms: number | null;
  session_id: string | null;
  api_retries: number | null;
}

/** A task with its attempts (`voyage tasks --json`). */
export type TaskWithRuns = Task & { runs: TaskRun[] };

/** What a retry or added tasks did to a voyage. */
export interface Reopened {
  voyage: string;
  /** The tasks put back or added. */
  tasks: string[];
  /** The voyage had ended and sails again. */
  reopened: boolean;
  /** Its tasks not done yet. */
  open: number;
}

export type NewTask = Pick<
  Task,
  "id" | "subject" | "description" | "acceptance" | "command" | "blocked_by"
>;

/** A plan's tasks as the queue takes them (at sail, and by voyage add). */
export function newTasks(tasks: PlanTask[]): NewTask[] {
  return tasks.map((t) => ({
    id: t.id,
    subject: t.subject,
    description: t.description,
    acceptance: t.acceptance ?? null,
    command: t.command ?? null,
    blocked_by: t.blockedBy,
  }));
}

export interface FinishOutcome {
  ok: boolean;
  commit?: string | null;
  error?: string;
  conflict?: string[];
  side_branch?: string;
  /** A failure that retrying cannot fix (e.g. a merge conflict). */
  final?: boolean;
  /** What the agent reported (cost, usage, ...), kept with the attempt. */
  agent?: AgentRunStats | null;
}
