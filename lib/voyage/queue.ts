/**
 * The flagship's task queue for voyages, on the daemon's database. Every
 * operation is one serialized transaction, so a claim is atomic: a task
 * goes to exactly one ship, and only once all its blockers are done. Every
 * transition is recorded in task_events with time and ship.
 */
import { UsageError } from "../errors.ts";
import { chainRanks } from "./dag.ts";
import type { InboxStore, Query, Row } from "../inbox/store.ts";
import { num, numOrNull, str, strOrNull } from "../inbox/rows.ts";

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

/** What a ship reports of an agent's run (agents.ts `agentRunStats`). */
export interface AgentRunStats {
  cost_usd: number | null;
  usage: Record<string, unknown> | null;
  model: string | null;
  turns: number | null;
  duration_ms: number | null;
  session_id: string | null;
  api_retries: number | null;
}

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

const TASK_COLS =
  "voyage_id, id, ord, subject, description, acceptance, command, blocked_by, status, ship, attempts, lease_until, started_at, finished_at, commit_sha, error, conflict, side_branch, attempts_before";

/** The task has used up its tries (since its last retry). */
const outOfTries = (t: Task, v: Voyage) =>
  t.attempts - t.attempts_before >= v.max_attempts;
const VOYAGE_COLS =
  "id, name, state, plan_dir, bare, branch, repo, agent, agent_command, objective, max_attempts, lease_s, created_at, finished_at, verify_code, verify_output, model";

export class VoyageQueue {
  constructor(
    private store: InboxStore,
    private now: () => Date = () => new Date(),
  ) {}

  private iso(offsetMs = 0): string {
    return new Date(this.now().getTime() + offsetMs).toISOString();
  }

  private event(
    q: Query,
    voyage: string,
    task: string | null,
    ship: string | null,
    event: string,
    detail: string | null = null,
  ) {
    return q(
      `INSERT INTO task_events (voyage_id, task_id, ship, event, detail, at_time)
       VALUES ($1, $2, $3, $4, $5, $6)`,
      [voyage, task, ship, event, detail, this.iso()],
    );
  }

  create(
    v: NewVoyage,
    tasks: NewTask[],
    ships: string[],
  ): Promise<void> {
    return this.store.transaction(async (q) => {
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
          this.iso(),
          v.model ?? null,
        ],
      );
      let ord = 0;
      for (const t of tasks) {
        await q(
          `INSERT INTO tasks (voyage_id, id, ord, subject, description, acceptance, command, blocked_by, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')`,
          [
            v.id,
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
      for (const s of ships) {
        await q(
          `INSERT INTO voyage_ships (voyage_id, ship, state) VALUES ($1, $2, 'provisioning')`,
          [v.id, s],
        );
      }
      await this.event(
        q,
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
    return this.store.transaction(async (q) => {
      const cur = await this.voyageIn(q, id);
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
        : this.iso();
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
      await this.event(q, id, null, null, `voyage ${state}`);
      return true;
    });
  }

  /**
   * The voyage is sunk (its ships go), whatever state it was in; its verify
   * result stays. False when it was sunk already.
   */
  sink(id: string): Promise<boolean> {
    return this.store.transaction(async (q) => {
      const v = await this.voyageIn(q, id);
      if (v.state === "sunk") return false;
      await q(
        `UPDATE voyages SET state = 'sunk', finished_at = COALESCE(finished_at, $2) WHERE id = $1`,
        [id, this.iso()],
      );
      await this.event(q, id, null, null, "voyage sunk", `was ${v.state}`);
      return true;
    });
  }

  /** An ended voyage sails again (a retry, added tasks). */
  private async reopenIn(q: Query, v: Voyage): Promise<boolean> {
    if (v.state === "running") return false;
    await q(
      `UPDATE voyages SET state = 'running', finished_at = NULL, verify_code = NULL, verify_output = NULL WHERE id = $1`,
      [v.id],
    );
    await this.event(q, v.id, null, null, "voyage running", `was ${v.state}`);
    return true;
  }

  /**
   * Puts failed tasks back in the queue (the given ones, else every failed
   * one), each with a fresh set of tries, and an ended voyage sails again:
   * with nothing failed, an ended voyage whose tasks are all done runs
   * verify.sh again.
   */
  retry(id: string, taskIds: string[] = []): Promise<Reopened> {
    return this.store.transaction(async (q) => {
      const v = await this.voyageIn(q, id);
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
        await this.event(q, id, t.id, null, "retried", t.error);
      }
      const reopened = await this.reopenIn(q, v);
      return {
        voyage: id,
        tasks: chosen.map((t) => t.id),
        reopened,
        open: await this.openIn(q, id),
      };
    });
  }

  /**
   * Adds tasks to the voyage (checked as a plan's against its own tasks:
   * plan.ts `parseAddedTasks`); an ended voyage sails again.
   */
  addTasks(id: string, tasks: NewTask[]): Promise<Reopened> {
    return this.store.transaction(async (q) => {
      const v = await this.voyageIn(q, id);
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
      let ord = Math.max(-1, ...have.map((r) => num(r.ord))) + 1;
      for (const t of tasks) {
        await q(
          `INSERT INTO tasks (voyage_id, id, ord, subject, description, acceptance, command, blocked_by, status)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'pending')`,
          [
            id,
            t.id,
            ord++,
            t.subject,
            t.description,
            t.acceptance,
            t.command,
            JSON.stringify(t.blocked_by),
          ],
        );
        await this.event(q, id, t.id, null, "added");
      }
      const reopened = await this.reopenIn(q, v);
      return {
        voyage: id,
        tasks: tasks.map((t) => t.id),
        reopened,
        open: await this.openIn(q, id),
      };
    });
  }

  /** Tasks not done yet. */
  private async openIn(q: Query, id: string): Promise<number> {
    const r = await q(
      `SELECT count(*) AS n FROM tasks WHERE voyage_id = $1 AND status <> 'done'`,
      [id],
    );
    return num(r[0].n);
  }

  /** New ships sail with the voyage (after a sink, say). */
  addShips(id: string, ships: string[]): Promise<void> {
    return this.store.transaction(async (q) => {
      await this.voyageIn(q, id);
      for (const s of ships) {
        await q(
          `INSERT INTO voyage_ships (voyage_id, ship, state) VALUES ($1, $2, 'provisioning')`,
          [id, s],
        );
      }
      await this.event(q, id, null, null, "ships added", ships.join(", "));
    });
  }

  /** Forgets the voyage: its tasks, their history and its ships' rows. */
  purge(id: string): Promise<void> {
    return this.store.transaction(async (q) => {
      await this.voyageIn(q, id);
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
    return this.store.transaction(async (q) =>
      (await q(
        `SELECT id FROM voyages WHERE starts_with(id, $1) ORDER BY id LIMIT $2`,
        [prefix, limit],
      )).map((r) => str(r.id))
    );
  }

  /**
   * The voyage cannot sail (a ship lacks its agent): it fails at once with
   * `reason`, and so does every task not yet running (no attempt made).
   * Only a running voyage changes; the reason is the `voyage failed`
   * event's detail (`reason()`).
   */
  failVoyage(id: string, reason: string): Promise<boolean> {
    return this.store.transaction(async (q) => {
      const v = await this.voyageIn(q, id);
      // 'planning': its ships could not be made.
      if (v.state !== "running" && v.state !== "planning") return false;
      const now = this.iso();
      await q(
        `UPDATE voyages SET state = 'failed', finished_at = $2 WHERE id = $1`,
        [id, now],
      );
      await q(
        `UPDATE tasks SET status = 'failed', error = $2, finished_at = $3
         WHERE voyage_id = $1 AND status = 'pending'`,
        [id, `not started: ${reason}`, now],
      );
      await this.event(q, id, null, null, "voyage failed", reason);
      return true;
    });
  }

  /** Why the voyage failed without running its tasks (failVoyage), if it did. */
  reason(id: string): Promise<string | null> {
    return this.store.transaction(async (q) => {
      const r = await q(
        `SELECT detail FROM task_events WHERE voyage_id = $1 AND event = 'voyage failed' AND detail IS NOT NULL ORDER BY seq DESC LIMIT 1`,
        [id],
      );
      return r.length ? strOrNull(r[0].detail) : null;
    });
  }

  setShipState(voyage: string, ship: string, state: string): Promise<void> {
    return this.store.transaction(async (q) => {
      await q(
        `UPDATE voyage_ships SET state = $3, last_heartbeat = $4 WHERE voyage_id = $1 AND ship = $2`,
        [voyage, ship, state, this.iso()],
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
    return this.store.transaction(async (q) =>
      await this.claimIn(q, await this.voyageIn(q, voyage), ship)
    );
  }

  private async claimIn(
    q: Query,
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
    await this.expireLeases(q, v);
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
    const now = this.iso();
    await q(
      `UPDATE tasks SET status = 'running', ship = $3, attempts = attempts + 1,
         lease_until = $4, started_at = $5, error = NULL
       WHERE voyage_id = $1 AND id = $2`,
      [voyage, next.id, ship, this.iso(v.lease_s * 1000), now],
    );
    await q(
      `UPDATE voyage_ships SET state = 'working', current_task = $3, task_started_at = $4, last_heartbeat = $4
       WHERE voyage_id = $1 AND ship = $2`,
      [voyage, ship, next.id, now],
    );
    await this.event(
      q,
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

  private async expireLeases(q: Query, v: Voyage) {
    const now = this.iso();
    const stale = (await q(
      `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 AND status = 'running' AND lease_until < $2`,
      [v.id, now],
    )).map(toTask);
    for (const t of stale) {
      const failed = outOfTries(t, v);
      await this.recordAttempt(q, v.id, t, {
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
      await this.event(
        q,
        v.id,
        t.id,
        t.ship,
        failed ? "failed" : "lease expired",
        `ship ${t.ship} stopped heartbeating`,
      );
    }
  }

  /**
   * Every running task's lease starts afresh: the flagship was down, not
   * its ships (a restarted driver calls this before it hands out anything;
   * it then hears from each ship what it holds).
   */
  renewLeases(voyage: string): Promise<number> {
    return this.store.transaction(async (q) => {
      const v = await this.voyageIn(q, voyage);
      const rows = await q(
        `UPDATE tasks SET lease_until = $2 WHERE voyage_id = $1 AND status = 'running' RETURNING id`,
        [voyage, this.iso(v.lease_s * 1000)],
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
    return this.store.transaction(async (q) => {
      const changed: string[] = [];
      for (const ship of ships) {
        const rows = await q(
          `SELECT voyage_id FROM voyage_ships WHERE ship = $1`,
          [ship],
        );
        for (const r of rows) {
          const v = await this.voyageIn(q, str(r.voyage_id));
          if (
            await this.shipGoneIn(q, v, ship, reason) &&
            !changed.includes(v.id)
          ) changed.push(v.id);
        }
      }
      return changed;
    });
  }

  /** Whether anything changed (it may have been done already). */
  private async shipGoneIn(
    q: Query,
    v: Voyage,
    ship: string,
    reason: string,
  ): Promise<boolean> {
    const now = this.iso();
    const lost = (await q(
      `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 AND status = 'running' AND ship = $2`,
      [v.id, ship],
    )).map(toTask);
    for (const t of lost) {
      const failed = outOfTries(t, v) || v.state !== "running";
      const error = `ship ${ship} ${reason}`;
      await this.recordAttempt(q, v.id, t, { outcome: "lost", error });
      await q(
        `UPDATE tasks SET status = $3, ship = NULL, lease_until = NULL, error = $4,
           finished_at = CASE WHEN $3 = 'failed' THEN $5 ELSE NULL END
         WHERE voyage_id = $1 AND id = $2`,
        [v.id, t.id, failed ? "failed" : "pending", error, now],
      );
      await this.event(
        q,
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
      await this.event(q, v.id, null, ship, "ship gone", reason);
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
      await this.event(q, v.id, null, null, "voyage sunk", "no ship left");
    }
    return lost.length > 0 || marked.length > 0 || sinks;
  }

  /** The ship still works on the task: extend its lease. */
  heartbeat(voyage: string, ship: string, task: string): Promise<boolean> {
    return this.store.transaction(async (q) => {
      const v = await this.voyageIn(q, voyage);
      const rows = await q(
        `UPDATE tasks SET lease_until = $4 WHERE voyage_id = $1 AND id = $2 AND ship = $3 AND status = 'running' RETURNING id`,
        [voyage, task, ship, this.iso(v.lease_s * 1000)],
      );
      await q(
        `UPDATE voyage_ships SET last_heartbeat = $3 WHERE voyage_id = $1 AND ship = $2`,
        [voyage, ship, this.iso()],
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
    return this.store.transaction(async (q) =>
      await this.finishIn(q, await this.voyageIn(q, voyage), task, ship, o)
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
    return this.store.transaction(async (q) => {
      const v = await this.voyageIn(q, voyage);
      const recorded = await this.finishIn(q, v, task, ship, o);
      return { recorded, next: await this.claimIn(q, v, ship) };
    });
  }

  private async finishIn(
    q: Query,
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
    const now = this.iso();
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
    await this.recordAttempt(q, voyage, t, {
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
    await this.event(
      q,
      voyage,
      task,
      ship,
      status === "pending" ? "retry" : status,
      detail,
    );
    return true;
  }

  /** One row per attempt, once it has ended (a retried claim replaces none). */
  private async recordAttempt(
    q: Query,
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
        this.iso(),
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

  /** The voyage's tasks, each with its ended attempts (`voyage tasks --json`). */
  tasksWithRuns(voyage: string, status?: TaskStatus): Promise<TaskWithRuns[]> {
    return this.store.transaction(async (q) => {
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
    return this.store.transaction(async (q) => {
      const r = await q(`SELECT ${VOYAGE_COLS} FROM voyages WHERE id = $1`, [
        voyage,
      ]);
      return r.length ? toVoyage(r[0]) : null;
    });
  }

  list(): Promise<Voyage[]> {
    return this.store.transaction(async (q) =>
      (await q(`SELECT ${VOYAGE_COLS} FROM voyages ORDER BY created_at DESC`))
        .map(toVoyage)
    );
  }

  tasks(voyage: string, status?: TaskStatus): Promise<Task[]> {
    return this.store.transaction(async (q) =>
      (await q(
        status
          ? `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 AND status = $2 ORDER BY ord`
          : `SELECT ${TASK_COLS} FROM tasks WHERE voyage_id = $1 ORDER BY ord`,
        status ? [voyage, status] : [voyage],
      )).map(toTask)
    );
  }

  ships(voyage: string): Promise<VoyageShip[]> {
    return this.store.transaction(async (q) =>
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
    return this.store.transaction(async (q) =>
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

  private async voyageIn(q: Query, id: string): Promise<Voyage> {
    const r = await q(`SELECT ${VOYAGE_COLS} FROM voyages WHERE id = $1`, [id]);
    if (!r.length) throw new UsageError(`no voyage ${id}`);
    return toVoyage(r[0]);
  }
}

function toTask(r: Row): Task {
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

function toRun(r: Row): TaskRun {
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

function toVoyage(r: Row): Voyage {
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
