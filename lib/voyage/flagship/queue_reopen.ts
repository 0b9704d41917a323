/**
 * A voyage sails again: failed tasks retried, tasks added (each inside the
 * transaction of the queue's operation, queue.ts).
 */
import { UsageError } from "../../errors.ts";
import type { Query } from "../../db/database.ts";
import { num, str } from "../../db/values.ts";
import {
  type Clock,
  event,
  insertTasks,
  TASK_COLS,
  toTask,
  voyageIn,
} from "./queue_rows.ts";
import type { NewTask, Reopened, Voyage } from "../queue_types.ts";

/** An ended voyage sails again (a retry, added tasks). */
export async function reopenIn(
  q: Query,
  iso: Clock,
  v: Voyage,
): Promise<boolean> {
  if (v.state === "running") return false;
  await q(
    `UPDATE voyages SET state = 'running', finished_at = NULL, verify_code = NULL, verify_output = NULL WHERE id = $1`,
    [v.id],
  );
  await event(q, iso, v.id, null, null, "voyage running", `was ${v.state}`);
  return true;
}

/** Tasks not done yet. */
export async function openIn(q: Query, id: string): Promise<number> {
  const r = await q(
    `SELECT count(*) AS n FROM tasks WHERE voyage_id = $1 AND status <> 'done'`,
    [id],
  );
  return num(r[0].n);
}

/**
 * Puts failed tasks back in the queue (the given ones, else every failed
 * one), each with a fresh set of tries, and an ended voyage sails again:
 * with nothing failed, an ended voyage whose tasks are all done runs
 * verify.sh again.
 */
export async function retryIn(
  q: Query,
  iso: Clock,
  id: string,
  taskIds: string[],
): Promise<Reopened> {
  const v = await voyageIn(q, id);
  const tasks = (await q(
    `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 ORDER BY ord`,
    [id],
  )).map(toTask);
  const byId = new Map(tasks.map((t) => [t.id, t]));
  const chosen = taskIds.length
    ? [...new Set(taskIds)].map((tid) => {
      const t = byId.get(tid);
      if (!t) throw new UsageError(`voyage ${id} has no task ${tid}`);
      if (t.status !== "failed") {
        throw new UsageError(
          `task ${tid} of voyage ${id} is ${t.status}, not failed`,
        );
      }
      return t;
    })
    : tasks.filter((t) => t.status === "failed");
  if (v.state === "complete") {
    throw new UsageError(
      `voyage ${id} is running verify.sh; retry once it has ended`,
    );
  }
  if (chosen.length === 0) {
    const ended = v.state !== "running";
    const verifiedAll = v.verify_code === 0 &&
      tasks.every((t) => t.status === "done");
    if (!ended) {
      throw new UsageError(`voyage ${id} has no failed task to retry`);
    }
    if (v.state === "verified" || verifiedAll) {
      throw new UsageError(`voyage ${id} is verified: nothing to retry`);
    }
  }
  for (const t of chosen) {
    await q(
      `UPDATE tasks SET status = 'pending', ship = NULL, lease_until = NULL, finished_at = NULL,
           error = NULL, conflict = NULL, side_branch = NULL, attempts_before = attempts
         WHERE voyage_id = $1 AND id = $2`,
      [id, t.id],
    );
    await event(q, iso, id, t.id, null, "retried", t.error);
  }
  const reopened = await reopenIn(q, iso, v);
  return {
    voyage: id,
    tasks: chosen.map((t) => t.id),
    reopened,
    open: await openIn(q, id),
  };
}

/**
 * Adds tasks to the voyage (checked as a plan's against its own tasks:
 * plan.ts `parseAddedTasks`); an ended voyage sails again.
 */
export async function addTasksIn(
  q: Query,
  iso: Clock,
  id: string,
  tasks: NewTask[],
): Promise<Reopened> {
  const v = await voyageIn(q, id);
  if (v.state === "complete") {
    throw new UsageError(
      `voyage ${id} is running verify.sh; add tasks once it has ended`,
    );
  }
  const have = await q(
    `SELECT id, ord FROM tasks WHERE voyage_id = $1`,
    [id],
  );
  const known = new Set(have.map((r) => str(r.id)));
  for (const t of tasks) {
    if (known.has(t.id)) {
      throw new UsageError(`voyage ${id} has a task ${t.id} already`);
    }
  }
  const all = new Set([...known, ...tasks.map((t) => t.id)]);
  for (const t of tasks) {
    const unknown = t.blocked_by.find((b) => !all.has(b));
    if (unknown !== undefined) {
      throw new UsageError(
        `task ${t.id} is blocked by unknown task ${unknown}`,
      );
    }
  }
  await insertTasks(
    q,
    id,
    Math.max(-1, ...have.map((r) => num(r.ord))) + 1,
    tasks,
  );
  for (const t of tasks) await event(q, iso, id, t.id, null, "added");
  const reopened = await reopenIn(q, iso, v);
  return {
    voyage: id,
    tasks: tasks.map((t) => t.id),
    reopened,
    open: await openIn(q, id),
  };
}
