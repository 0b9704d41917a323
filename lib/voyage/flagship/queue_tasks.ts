/**
 * The task steps of the voyage queue, each inside the transaction of the
 * operation that takes it (queue.ts): a claim, a lease running out, a ship
 * gone, a task's outcome.
 */
import type { Query } from "../../db/database.ts";
import { chainRanks } from "../plan/dag.ts";
import {
  type Clock,
  event,
  outOfTries,
  recordAttempt,
  TASK_COLS,
  toTask,
} from "./queue_rows.ts";
import type {
  FinishOutcome,
  Task,
  TaskStatus,
  Voyage,
} from "../queue_types.ts";

export async function claimIn(
  q: Query,
  iso: Clock,
  v: Voyage,
  ship: string,
): Promise<Task | null> {
  const voyage = v.id;
  if (v.state !== "running") return null;
  // A ship the flagship destroyed takes nothing, even if its loop has not
  // noticed yet.
  const gone = await q(
    `SELECT 1 FROM voyage_ships WHERE voyage_id = $1 AND ship = $2 AND state = 'gone'`,
    [voyage, ship],
  );
  if (gone.length) return null;
  await expireLeases(q, iso, v);
  const tasks = (await q(
    `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 ORDER BY ord`,
    [voyage],
  )).map(toTask);
  const done = new Set(
    tasks.filter((t) => t.status === "done").map((t) => t.id),
  );
  // Longest chain first: the task that holds up the most work after it.
  const rank = chainRanks(
    tasks.map((t) => ({ id: t.id, blockedBy: t.blocked_by })),
  );
  const next =
    tasks.filter((t) =>
      t.status === "pending" && t.blocked_by.every((b) => done.has(b))
    ).sort((a, b) => rank.get(b.id)! - rank.get(a.id)! || a.ord - b.ord)[0];
  if (!next) return null;
  const now = iso();
  await q(
    `UPDATE tasks SET status = 'running', ship = $3, attempts = attempts + 1,
       lease_until = $4, started_at = $5, error = NULL
     WHERE voyage_id = $1 AND id = $2`,
    [voyage, next.id, ship, iso(v.lease_s * 1000), now],
  );
  await q(
    `UPDATE voyage_ships SET state = 'working', current_task = $3, task_started_at = $4, last_heartbeat = $4
     WHERE voyage_id = $1 AND ship = $2`,
    [voyage, ship, next.id, now],
  );
  await event(
    q,
    iso,
    voyage,
    next.id,
    ship,
    "claimed",
    `attempt ${next.attempts + 1}`,
  );
  return {
    ...next,
    status: "running",
    ship,
    attempts: next.attempts + 1,
    started_at: now,
  };
}

export async function expireLeases(q: Query, iso: Clock, v: Voyage) {
  const now = iso();
  const stale = (await q(
    `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 AND status = 'running' AND lease_until < $2`,
    [v.id, now],
  )).map(toTask);
  for (const t of stale) {
    const failed = outOfTries(t, v);
    await recordAttempt(q, iso, v.id, t, {
      outcome: "lost",
      error: `ship ${t.ship} stopped heartbeating`,
    });
    await q(
      `UPDATE tasks SET status = $3, ship = NULL, lease_until = NULL, error = $4,
         finished_at = CASE WHEN $3 = 'failed' THEN $5 ELSE NULL END
       WHERE voyage_id = $1 AND id = $2`,
      [
        v.id,
        t.id,
        failed ? "failed" : "pending",
        `ship ${t.ship} stopped heartbeating`,
        now,
      ],
    );
    await q(
      `UPDATE voyage_ships SET state = 'stale', current_task = NULL WHERE voyage_id = $1 AND ship = $2 AND current_task = $3`,
      [v.id, t.ship, t.id],
    );
    await event(
      q,
      iso,
      v.id,
      t.id,
      t.ship,
      failed ? "failed" : "lease expired",
      `ship ${t.ship} stopped heartbeating`,
    );
  }
}

/** Whether anything changed (it may have been done already). */
export async function shipGoneIn(
  q: Query,
  iso: Clock,
  v: Voyage,
  ship: string,
  reason: string,
): Promise<boolean> {
  const now = iso();
  const lost = (await q(
    `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 AND status = 'running' AND ship = $2`,
    [v.id, ship],
  )).map(toTask);
  for (const t of lost) {
    const failed = outOfTries(t, v) || v.state !== "running";
    const error = `ship ${ship} ${reason}`;
    await recordAttempt(q, iso, v.id, t, { outcome: "lost", error });
    await q(
      `UPDATE tasks SET status = $3, ship = NULL, lease_until = NULL, error = $4,
         finished_at = CASE WHEN $3 = 'failed' THEN $5 ELSE NULL END
       WHERE voyage_id = $1 AND id = $2`,
      [v.id, t.id, failed ? "failed" : "pending", error, now],
    );
    await event(
      q,
      iso,
      v.id,
      t.id,
      ship,
      failed ? "failed" : "requeued",
      error,
    );
  }
  const marked = await q(
    `UPDATE voyage_ships SET state = 'gone', current_task = NULL, task_started_at = NULL
     WHERE voyage_id = $1 AND ship = $2 AND state <> 'gone' RETURNING ship`,
    [v.id, ship],
  );
  if (marked.length) {
    await event(q, iso, v.id, null, ship, "ship gone", reason);
  }
  const left = await q(
    `SELECT ship FROM voyage_ships WHERE voyage_id = $1 AND state <> 'gone'`,
    [v.id],
  );
  const sinks = v.state === "running" && left.length === 0;
  if (sinks) {
    await q(
      `UPDATE voyages SET state = 'sunk', finished_at = $2 WHERE id = $1`,
      [v.id, now],
    );
    await event(q, iso, v.id, null, null, "voyage sunk", "no ship left");
  }
  return lost.length > 0 || marked.length > 0 || sinks;
}

export async function finishIn(
  q: Query,
  iso: Clock,
  v: Voyage,
  task: string,
  ship: string,
  o: FinishOutcome,
): Promise<boolean> {
  const voyage = v.id;
  const rows = (await q(
    `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 AND id = $2`,
    [voyage, task],
  )).map(toTask);
  const t = rows[0];
  if (!t || t.status !== "running" || t.ship !== ship) return false;
  const now = iso();
  let status: TaskStatus;
  if (o.ok) status = "done";
  else if (o.final || outOfTries(t, v)) status = "failed";
  else status = "pending";
  await q(
    `UPDATE tasks SET status = $3, lease_until = NULL, finished_at = $4, commit_sha = $5,
       error = $6, conflict = $7, side_branch = $8, ship = CASE WHEN $3 = 'pending' THEN NULL ELSE ship END
     WHERE voyage_id = $1 AND id = $2`,
    [
      voyage,
      task,
      status,
      status === "pending" ? null : now,
      o.commit ?? null,
      o.error ?? null,
      o.conflict ? JSON.stringify(o.conflict) : null,
      o.side_branch ?? null,
    ],
  );
  await recordAttempt(q, iso, voyage, t, {
    outcome: status === "pending" ? "retry" : status,
    error: o.error ?? null,
    agent: o.agent ?? null,
  });
  await q(
    `UPDATE voyage_ships SET state = 'idle', current_task = NULL, task_started_at = NULL, last_heartbeat = $3
     WHERE voyage_id = $1 AND ship = $2`,
    [voyage, ship, now],
  );
  const detail = o.ok
    ? (o.commit ? `commit ${o.commit.slice(0, 12)}` : "no changes")
    : o.error ?? null;
  await event(
    q,
    iso,
    voyage,
    task,
    ship,
    status === "pending" ? "retry" : status,
    detail,
  );
  return true;
}
