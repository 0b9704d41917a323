/**
 * The flagship's task queue for voyages, on the daemon's database
 * (lib/daemon/database.ts; its tables: queue_schema.ts). Every operation is
 * one serialized transaction, so a claim is atomic: a task goes to exactly
 * one ship, and only once all its blockers are done. Every transition is
 * recorded in task_events with time and ship.
 */
import { UsageError } from "../../errors.ts";
import type { Database } from "../../db/database.ts";
import { str, strOrNull } from "../../db/values.ts";
import { addTasksIn, retryIn } from "./queue_reopen.ts";
import {
  type Clock,
  event,
  insertTasks,
  TASK_COLS,
  toRun,
  toTask,
  toVoyage,
  VOYAGE_COLS,
  voyageIn,
} from "./queue_rows.ts";
import { claimIn, finishIn, shipGoneIn } from "./queue_tasks.ts";
import type {
  FinishOutcome,
  NewTask,
  NewVoyage,
  Reopened,
  Task,
  TaskEvent,
  TaskStatus,
  TaskWithRuns,
  Voyage,
  VoyageShip,
  VoyageState,
} from "../queue_types.ts";

export type * from "../queue_types.ts";

export class VoyageQueue {
  #iso: Clock;

  /** The queue on `db`, whose schema holds VOYAGE_MIGRATIONS. */
  constructor(
    private db: Database,
    now: () => Date = () => new Date(),
  ) {
    this.#iso = (offsetMs = 0) =>
      new Date(now().getTime() + offsetMs).toISOString();
  }

  create(
    v: NewVoyage,
    tasks: NewTask[],
    ships: string[],
  ): Promise<void> {
    return this.db.transaction(async (q) => {
      if ((await q("SELECT id FROM voyages WHERE id = $1", [v.id])).length) {
        throw new UsageError(`voyage ${v.id} already exists`);
      }
      await q(
        `INSERT INTO voyages (${VOYAGE_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, NULL, NULL, NULL, $14)`,
        [
          v.id,
          v.name,
          v.state,
          v.plan_dir,
          v.bare,
          v.branch,
          v.repo,
          v.agent,
          v.agent_command,
          v.objective,
          v.max_attempts,
          v.lease_s,
          this.#iso(),
          v.model ?? null,
        ],
      );
      await insertTasks(q, v.id, 0, tasks);
      for (const s of ships) {
        await q(
          `INSERT INTO voyage_ships (voyage_id, ship, state) VALUES ($1, $2, 'provisioning')`,
          [v.id, s],
        );
      }
      await event(
        q,
        this.#iso,
        v.id,
        null,
        null,
        "created",
        `${tasks.length} tasks, ${ships.length} ships`,
      );
    });
  }

  /**
   * Sets the voyage's state (a verify result with it). With `from`, only a
   * voyage in one of those states changes (false otherwise): the driver's
   * steps never undo a sink or a retry made meanwhile; a voyage sunk while
   * verify.sh ran still gets its verify result.
   */
  setVoyageState(
    id: string,
    state: VoyageState,
    extra: { verify_code?: number; verify_output?: string } = {},
    from?: VoyageState[],
  ): Promise<boolean> {
    return this.db.transaction(async (q) => {
      const cur = await voyageIn(q, id);
      if (from && !from.includes(cur.state)) {
        if (cur.state === "sunk" && extra.verify_code !== undefined) {
          await q(
            `UPDATE voyages SET verify_code = $2, verify_output = $3 WHERE id = $1`,
            [id, extra.verify_code, extra.verify_output ?? null],
          );
        }
        return false;
      }
      const finished = state === "running" || state === "planning"
        ? null
        : this.#iso();
      await q(
        `UPDATE voyages SET state = $2, finished_at = COALESCE($3, finished_at),
           verify_code = COALESCE($4, verify_code), verify_output = COALESCE($5, verify_output)
         WHERE id = $1`,
        [
          id,
          state,
          finished,
          extra.verify_code ?? null,
          extra.verify_output ?? null,
        ],
      );
      await event(q, this.#iso, id, null, null, `voyage ${state}`);
      return true;
    });
  }

  /**
   * The voyage is sunk (its ships go), whatever state it was in; its verify
   * result stays. False when it was sunk already.
   */
  sink(id: string): Promise<boolean> {
    return this.db.transaction(async (q) => {
      const v = await voyageIn(q, id);
      if (v.state === "sunk") return false;
      await q(
        `UPDATE voyages SET state = 'sunk', finished_at = COALESCE(finished_at, $2) WHERE id = $1`,
        [id, this.#iso()],
      );
      await event(
        q,
        this.#iso,
        id,
        null,
        null,
        "voyage sunk",
        `was ${v.state}`,
      );
      return true;
    });
  }

  /**
   * Puts failed tasks back in the queue (the given ones, else every failed
   * one), each with a fresh set of tries, and an ended voyage sails again:
   * with nothing failed, an ended voyage whose tasks are all done runs
   * verify.sh again.
   */
  retry(id: string, taskIds: string[] = []): Promise<Reopened> {
    return this.db.transaction((q) => retryIn(q, this.#iso, id, taskIds));
  }

  /**
   * Adds tasks to the voyage (checked as a plan's against its own tasks:
   * plan.ts `parseAddedTasks`); an ended voyage sails again.
   */
  addTasks(id: string, tasks: NewTask[]): Promise<Reopened> {
    return this.db.transaction((q) => addTasksIn(q, this.#iso, id, tasks));
  }

  /** New ships sail with the voyage (after a sink, say). */
  addShips(id: string, ships: string[]): Promise<void> {
    return this.db.transaction(async (q) => {
      await voyageIn(q, id);
      for (const s of ships) {
        await q(
          `INSERT INTO voyage_ships (voyage_id, ship, state) VALUES ($1, $2, 'provisioning')`,
          [id, s],
        );
      }
      await event(
        q,
        this.#iso,
        id,
        null,
        null,
        "ships added",
        ships.join(", "),
      );
    });
  }

  /** Forgets the voyage: its tasks, their history and its ships' rows. */
  purge(id: string): Promise<void> {
    return this.db.transaction(async (q) => {
      await voyageIn(q, id);
      for (
        const table of ["task_attempts", "task_events", "voyage_ships", "tasks"]
      ) {
        await q(`DELETE FROM ${table} WHERE voyage_id = $1`, [id]);
      }
      await q(`DELETE FROM voyages WHERE id = $1`, [id]);
    });
  }

  /** Voyage ids starting with `prefix` (a short id), at most `limit`. */
  idsStartingWith(prefix: string, limit: number): Promise<string[]> {
    return this.db.transaction(async (q) =>
      (await q(
        `SELECT id FROM voyages WHERE starts_with(id, $1) ORDER BY id LIMIT $2`,
        [prefix, limit],
      )).map((r) => str(r.id))
    );
  }

  /**
   * The voyage cannot sail (a ship lacks its agent): it fails at once with
   * `reason`, and so does every task not yet running (no attempt made).
   * Only a voyage in one of the states `from` changes ('planning': its
   * ships could not be made); the reason is the `voyage failed` event's
   * detail (`reason()`).
   */
  failVoyage(
    id: string,
    reason: string,
    from: VoyageState[] = ["running", "planning"],
  ): Promise<boolean> {
    return this.db.transaction(async (q) => {
      const v = await voyageIn(q, id);
      if (!from.includes(v.state)) return false;
      const now = this.#iso();
      await q(
        `UPDATE voyages SET state = 'failed', finished_at = $2 WHERE id = $1`,
        [id, now],
      );
      await q(
        `UPDATE tasks SET status = 'failed', error = $2, finished_at = $3
         WHERE voyage_id = $1 AND status = 'pending'`,
        [id, `not started: ${reason}`, now],
      );
      await event(q, this.#iso, id, null, null, "voyage failed", reason);
      return true;
    });
  }

  /** Why the voyage failed without running its tasks (failVoyage), if it did. */
  reason(id: string): Promise<string | null> {
    return this.db.transaction(async (q) => {
      const r = await q(
        `SELECT detail FROM task_events WHERE voyage_id = $1 AND event = 'voyage failed' AND detail IS NOT NULL ORDER BY seq DESC LIMIT 1`,
        [id],
      );
      return r.length ? strOrNull(r[0].detail) : null;
    });
  }

  setShipState(voyage: string, ship: string, state: string): Promise<void> {
    return this.db.transaction(async (q) => {
      await q(
        `UPDATE voyage_ships SET state = $3, last_heartbeat = $4 WHERE voyage_id = $1 AND ship = $2`,
        [voyage, ship, state, this.#iso()],
      );
    });
  }

  /**
   * Gives `ship` the next ready task (all blockers done), or null: the one
   * with the longest chain of tasks after it (`chainRanks`), ties in plan
   * order. Tasks whose lease ran out go back to pending first (or fail,
   * past the limit).
   */
  claim(voyage: string, ship: string): Promise<Task | null> {
    return this.db.transaction(async (q) =>
      await claimIn(q, this.#iso, await voyageIn(q, voyage), ship)
    );
  }

  /**
   * Every running task's lease starts afresh: the flagship was down, not
   * its ships (a restarted driver calls this before it hands out anything;
   * it then hears from each ship what it holds).
   */
  renewLeases(voyage: string): Promise<number> {
    return this.db.transaction(async (q) => {
      const v = await voyageIn(q, voyage);
      const rows = await q(
        `UPDATE tasks SET lease_until = $2 WHERE voyage_id = $1 AND status = 'running' RETURNING id`,
        [voyage, this.#iso(v.lease_s * 1000)],
      );
      return rows.length;
    });
  }

  /**
   * Ships the flagship destroyed (or could not create): their running tasks
   * go back to the queue at once (or fail, past the attempt limit), the
   * ships are marked gone, and a running voyage left with no ship is sunk.
   * The voyages it changed.
   */
  shipsGone(ships: string[], reason: string): Promise<string[]> {
    return this.db.transaction(async (q) => {
      const changed: string[] = [];
      for (const ship of ships) {
        const rows = await q(
          `SELECT voyage_id FROM voyage_ships WHERE ship = $1`,
          [ship],
        );
        for (const r of rows) {
          const v = await voyageIn(q, str(r.voyage_id));
          if (
            await shipGoneIn(q, this.#iso, v, ship, reason) &&
            !changed.includes(v.id)
          ) changed.push(v.id);
        }
      }
      return changed;
    });
  }

  /** The ship still works on the task: extend its lease. */
  heartbeat(voyage: string, ship: string, task: string): Promise<boolean> {
    return this.db.transaction(async (q) => {
      const v = await voyageIn(q, voyage);
      const rows = await q(
        `UPDATE tasks SET lease_until = $4 WHERE voyage_id = $1 AND id = $2 AND ship = $3 AND status = 'running' RETURNING id`,
        [voyage, task, ship, this.#iso(v.lease_s * 1000)],
      );
      await q(
        `UPDATE voyage_ships SET last_heartbeat = $3 WHERE voyage_id = $1 AND ship = $2`,
        [voyage, ship, this.#iso()],
      );
      return rows.length > 0;
    });
  }

  /**
   * Records a task's outcome from `ship`. Ignored (false) when the task is
   * no longer that ship's (its lease ran out and it went elsewhere).
   */
  finish(
    voyage: string,
    task: string,
    ship: string,
    o: FinishOutcome,
  ): Promise<boolean> {
    return this.db.transaction(async (q) =>
      await finishIn(q, this.#iso, await voyageIn(q, voyage), task, ship, o)
    );
  }

  /**
   * `finish`, then `claim` for the same ship, in one transaction: the ship
   * that just landed a task takes its next one (often the task that landing
   * released, whose code it has) before anyone else looks, and the daemon
   * runs one transaction instead of two on the critical path.
   */
  finishAndClaim(
    voyage: string,
    task: string,
    ship: string,
    o: FinishOutcome,
  ): Promise<{ recorded: boolean; next: Task | null }> {
    return this.db.transaction(async (q) => {
      const v = await voyageIn(q, voyage);
      const recorded = await finishIn(q, this.#iso, v, task, ship, o);
      return { recorded, next: await claimIn(q, this.#iso, v, ship) };
    });
  }

  /** The voyage's tasks, each with its ended attempts (`voyage tasks --json`). */
  tasksWithRuns(voyage: string, status?: TaskStatus): Promise<TaskWithRuns[]> {
    return this.db.transaction(async (q) => {
      const tasks = (await q(
        status
          ? `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 AND status = $2 ORDER BY ord`
          : `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 ORDER BY ord`,
        status ? [voyage, status] : [voyage],
      )).map(toTask);
      const runs = Map.groupBy(
        await q(
          `SELECT * FROM task_attempts WHERE voyage_id = $1 ORDER BY task_id, attempt`,
          [voyage],
        ),
        (r) => str(r.task_id),
      );
      return tasks.map((t) => ({
        ...t,
        runs: (runs.get(t.id) ?? []).map(toRun),
      }));
    });
  }

  get(voyage: string): Promise<Voyage | null> {
    return this.db.transaction(async (q) => {
      const r = await q(`SELECT ${VOYAGE_COLS} FROM voyages WHERE id = $1`, [
        voyage,
      ]);
      return r.length ? toVoyage(r[0]) : null;
    });
  }

  list(): Promise<Voyage[]> {
    return this.db.transaction(async (q) =>
      (await q(`SELECT ${VOYAGE_COLS} FROM voyages ORDER BY created_at DESC`))
        .map(toVoyage)
    );
  }

  tasks(voyage: string, status?: TaskStatus): Promise<Task[]> {
    return this.db.transaction(async (q) =>
      (await q(
        status
          ? `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 AND status = $2 ORDER BY ord`
          : `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 ORDER BY ord`,
        status ? [voyage, status] : [voyage],
      )).map(toTask)
    );
  }

  ships(voyage: string): Promise<VoyageShip[]> {
    return this.db.transaction(async (q) =>
      (await q(
        `SELECT ship, state, current_task, task_started_at, last_heartbeat FROM voyage_ships WHERE voyage_id = $1 ORDER BY ship`,
        [voyage],
      )).map((r) => ({
        ship: str(r.ship),
        state: str(r.state),
        current_task: strOrNull(r.current_task),
        task_started_at: strOrNull(r.task_started_at),
        last_heartbeat: strOrNull(r.last_heartbeat),
      }))
    );
  }

  events(voyage: string): Promise<TaskEvent[]> {
    return this.db.transaction(async (q) =>
      (await q(
        `SELECT task_id, ship, event, detail, at_time FROM task_events WHERE voyage_id = $1 ORDER BY seq`,
        [voyage],
      )).map((r) => ({
        task_id: strOrNull(r.task_id),
        ship: strOrNull(r.ship),
        event: str(r.event),
        detail: strOrNull(r.detail),
        at: str(r.at_time),
      }))
    );
  }

  /** True when no task can make progress any more (all done, or the rest blocked by failures). */
  async settled(
    voyage: string,
  ): Promise<{ settled: boolean; allDone: boolean }> {
    const tasks = await this.tasks(voyage);
    const byId = new Map(tasks.map((t) => [t.id, t]));
    const doomed = (t: Task, seen = new Set<string>()): boolean => {
      if (t.status === "failed") return true;
      if (seen.has(t.id)) return false;
      seen.add(t.id);
      return t.blocked_by.some((b) => doomed(byId.get(b)!, seen));
    };
    const open = tasks.filter((t) => t.status !== "done" && !doomed(t));
    return {
      settled: open.length === 0,
      allDone: tasks.every((t) => t.status === "done"),
    };
  }
}
