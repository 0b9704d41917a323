/**
 * Rows of the voyage queue's tables (queue_schema.ts), and the steps its
 * operations share inside their transaction.
 */
import { UsageError } from "../../errors.ts";
import type { Query } from "../../db/database.ts";
import { num, numOrNull, type Row, str, strOrNull } from "../../db/values.ts";
import type {
  NewTask,
  Task,
  TaskRun,
  TaskStatus,
  Voyage,
  VoyageState,
} from "../queue_types.ts";
import type { AgentRunStats } from "../protocol.ts";

/** The time now, or `offsetMs` from now, as an ISO string. */
export type Clock = (offsetMs?: number) => string;

export const TASK_COLS =
  "voyage_id, id, ord, subject, description, acceptance, command, blocked_by, status, ship, attempts, lease_until, started_at, finished_at, commit_sha, error, conflict, side_branch, attempts_before";

/** The task has used up its tries (since its last retry). */
export const outOfTries = (t: Task, v: Voyage) =>
  t.attempts - t.attempts_before >= v.max_attempts;
export const VOYAGE_COLS =
  "id, name, state, plan_dir, bare, branch, repo, agent, agent_command, objective, max_attempts, lease_s, created_at, finished_at, verify_code, verify_output, model";

/** Records a transition in task_events, with its time. */
export function event(
  q: Query,
  iso: Clock,
  voyage: string,
  task: string | null,
  ship: string | null,
  event: string,
  detail: string | null = null,
) {
  return q(
    `INSERT INTO task_events (voyage_id, task_id, ship, event, detail, at_time)
     VALUES ($1, $2, $3, $4, $5, $6)`,
    [voyage, task, ship, event, detail, iso()],
  );
}

/** The voyage, or a UsageError naming it. */
export async function voyageIn(q: Query, id: string): Promise<Voyage> {
  const r = await q(`SELECT ${VOYAGE_COLS} FROM voyages WHERE id = $1`, [id]);
  if (!r.length) throw new UsageError(`no voyage ${id}`);
  return toVoyage(r[0]);
}

/** One row per attempt, once it has ended (a retried claim replaces none). */
/** New pending tasks of a voyage, in order from `ord`. */
export async function insertTasks(
  q: Query,
  voyageId: string,
  ord: number,
  tasks: NewTask[],
): Promise<void> {
  for (const t of tasks) {
    await q(
      `INSERT INTO tasks (voyage_id, id, ord, subject, description, acceptance, command, blocked_by, status)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')`,
      [
        voyageId,
        t.id,
        ord++,
        t.subject,
        t.description,
        t.acceptance,
        t.command,
        JSON.stringify(t.blocked_by),
      ],
    );
  }
}

export async function recordAttempt(
  q: Query,
  iso: Clock,
  voyage: string,
  t: Task,
  r: { outcome: string; error: string | null; agent?: AgentRunStats | null },
) {
  const a = r.agent ?? null;
  await q(
    `INSERT OR REPLACE INTO task_attempts (voyage_id, task_id, attempt, ship, started_at, finished_at,
       outcome, error, cost_usd, usage, model, turns, duration_ms, session_id, api_retries)
     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)`,
    [
      voyage,
      t.id,
      t.attempts,
      t.ship,
      t.started_at,
      iso(),
      r.outcome,
      r.error,
      a?.cost_usd ?? null,
      a?.usage ? JSON.stringify(a.usage) : null,
      a?.model ?? null,
      a?.turns ?? null,
      a?.duration_ms ?? null,
      a?.session_id ?? null,
      a?.api_retries ?? null,
    ],
  );
}

export function toTask(r: Row): Task {
  return {
    voyage_id: str(r.voyage_id),
    id: str(r.id),
    ord: num(r.ord),
    subject: str(r.subject),
    description: str(r.description),
    acceptance: strOrNull(r.acceptance),
    command: strOrNull(r.command),
    blocked_by: JSON.parse(str(r.blocked_by)),
    status: str(r.status) as TaskStatus,
    ship: strOrNull(r.ship),
    attempts: num(r.attempts),
    attempts_before: numOrNull(r.attempts_before) ?? 0,
    lease_until: strOrNull(r.lease_until),
    started_at: strOrNull(r.started_at),
    finished_at: strOrNull(r.finished_at),
    commit_sha: strOrNull(r.commit_sha),
    error: strOrNull(r.error),
    conflict: r.conflict === null ? null : JSON.parse(str(r.conflict)),
    side_branch: strOrNull(r.side_branch),
  };
}

export function toRun(r: Row): TaskRun {
  return {
    attempt: num(r.attempt),
    ship: strOrNull(r.ship),
    started_at: strOrNull(r.started_at),
    finished_at: str(r.finished_at),
    outcome: str(r.outcome),
    error: strOrNull(r.error),
    cost_usd: numOrNull(r.cost_usd),
    usage: r.usage === null ? null : JSON.parse(str(r.usage)),
    model: strOrNull(r.model),
    turns: numOrNull(r.turns),
    duration_ms: numOrNull(r.duration_ms),
    session_id: strOrNull(r.session_id),
    api_retries: numOrNull(r.api_retries),
  };
}

export function toVoyage(r: Row): Voyage {
  return {
    id: str(r.id),
    name: strOrNull(r.name),
    state: str(r.state) as VoyageState,
    plan_dir: str(r.plan_dir),
    bare: str(r.bare),
    branch: str(r.branch),
    repo: strOrNull(r.repo),
    agent: str(r.agent),
    agent_command: strOrNull(r.agent_command),
    model: strOrNull(r.model),
    objective: str(r.objective),
    max_attempts: num(r.max_attempts),
    lease_s: num(r.lease_s),
    created_at: str(r.created_at),
    finished_at: strOrNull(r.finished_at),
    verify_code: numOrNull(r.verify_code),
    verify_output: strOrNull(r.verify_output),
  };
}
