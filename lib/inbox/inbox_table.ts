/**
 * The `inbox` table: the messages this machine runs, in arrival order
 * (`seq`), and the results of those it ran on their way back (a finished
 * row with a `result_hop` is its result's outbox entry: outbox.ts).
 *
 * Each method is one operation on the database's write queue (or, inside
 * `InboxStore.batch`, a step of the batch's transaction); its mode says
 * whether it needs a transaction when it runs alone (database.ts).
 *
 * Costs that shaped the statements (DuckDB 1.5 on a two-core VM, per
 * statement): a point SELECT or a plain INSERT ~0.3 ms, an UPDATE by key
 * ~1.3 ms and ~1 ms more with RETURNING, a sorted scan of the inbox ~1.5 ms,
 * INSERT ... ON CONFLICT ~3 ms, an UPDATE with an ordered subquery ~8 ms, a
 * commit ~1.5 ms. So inserts look the key up first, updates return nothing
 * (what they changed is read back narrowly, or known), the scheduler claims
 * by id from the arrival order it keeps, and acknowledgements update many
 * entries in one statement.
 */
import { OhcError } from "../errors.ts";
import type { Runner, Sql } from "../db/database.ts";
import { num, type Param } from "../db/values.ts";
import { checkLimit, illegalTransition, validateEnvelope } from "./checks.ts";
import {
  complete,
  completeMany,
  type FinishArgs,
  type Finished,
} from "./finishing.ts";
import { existingIds, idsStartingWith, insertRows } from "./inserts.ts";
import { MSG_COLS, MSG_COLS_NO_OUTPUT, toMessage } from "./rows.ts";
import {
  type ManualStatus,
  type Message,
  MESSAGE_STATUSES,
  type MessageStatus,
  type NewMessage,
} from "./types.ts";

export interface ListOptions {
  status?: MessageStatus;
  /** At most this many, newest first. */
  limit?: number;
  /** false leaves stdout/stderr null (cheaper for listings). Default true. */
  withOutput?: boolean;
}

/** Which statuses a manual transition may start from. */
const MANUAL_FROM: Record<ManualStatus, MessageStatus[]> = {
  pending: ["unread"],
  done: ["unread", "pending"],
  error: ["unread", "pending"],
};

export class InboxTable {
  #db: Runner;
  #now: () => Date;

  constructor(
    db: Runner,
    /** Bound on stored stdout and on stored stderr, each. */
    readonly maxOutputBytes: number,
    now: () => Date,
  ) {
    this.#db = db;
    this.#now = now;
  }

  #iso(): string {
    return this.#now().toISOString();
  }

  /** Idempotent on id: a duplicate id changes nothing and says inserted:false. */
  insert(msg: NewMessage): Promise<{ inserted: boolean }> {
    return this.#db.run(
      async (sql) => ({
        inserted: (await this.#insertMany(sql, [msg])).length === 1,
      }),
      "autocommit",
    );
  }

  /** insert for many, in order, in two statements; the ids inserted. */
  insertMany(msgs: NewMessage[]): Promise<string[]> {
    return this.#db.run((sql) => this.#insertMany(sql, msgs), "autocommit");
  }

  async #insertMany(sql: Sql, msgs: NewMessage[]): Promise<string[]> {
    if (msgs.length === 0) return [];
    const now = this.#iso();
    const ms = msgs.map((m) => validateEnvelope(m, now));
    const taken = await existingIds(sql, "inbox", ms.map((m) => m.id));
    const fresh = ms.filter((m) => !taken.has(m.id) && taken.add(m.id));
    if (fresh.length === 0) return [];
    await insertRows(
      sql,
      "inbox",
      ["id", "sender", "recipient", "command", "created_at", "received_at"],
      fresh.map((m) => [
        m.id,
        m.sender,
        m.recipient,
        m.command,
        m.created_at,
        now,
      ]),
      { column: "timeout_s", values: fresh.map((m) => m.timeout_s) },
    );
    return fresh.map((m) => m.id);
  }

  get(id: string): Promise<Message | null> {
    return this.#db.run(async (sql) => {
      const rows = await sql.query(
        `SELECT ${MSG_COLS} FROM inbox WHERE id = $1`,
        [id],
      );
      return rows.length ? toMessage(rows[0]) : null;
    }, "autocommit");
  }

  /** Newest first (arrival order, reversed). */
  list(opts: ListOptions = {}): Promise<Message[]> {
    return this.#db.run(async (sql) => {
      const { status, limit, withOutput = true } = opts;
      if (status !== undefined && !MESSAGE_STATUSES.includes(status)) {
        throw new OhcError(
          "invalid_status",
          `unknown status '${status}' (expected one of ${
            MESSAGE_STATUSES.join(", ")
          })`,
        );
      }
      checkLimit(limit);
      const cols = withOutput ? MSG_COLS : MSG_COLS_NO_OUTPUT;
      const where = status === undefined ? "" : "WHERE status = $1";
      const lim = limit === undefined
        ? ""
        : `LIMIT $${status === undefined ? 1 : 2}`;
      const params: Param[] = [];
      if (status !== undefined) params.push(status);
      if (limit !== undefined) params.push(limit);
      const rows = await sql.query(
        `SELECT ${cols} FROM inbox ${where} ORDER BY seq DESC ${lim}`,
        params,
      );
      return rows.map(toMessage);
    }, "autocommit");
  }

  delete(id: string): Promise<boolean> {
    return this.#db.run(async (sql) => {
      const rows = await sql.query(
        "DELETE FROM inbox WHERE id = $1 RETURNING id",
        [id],
      );
      return rows.length === 1;
    }, "autocommit");
  }

  /** How many messages are in each status. */
  counts(): Promise<Record<MessageStatus, number>> {
    return this.#db.run(async (sql) => {
      const rows = await sql.query(
        "SELECT status, count(*) AS n FROM inbox GROUP BY status",
      );
      const out = Object.fromEntries(
        MESSAGE_STATUSES.map((s) => [s, 0]),
      ) as Record<MessageStatus, number>;
      for (const r of rows) out[r.status as MessageStatus] = num(r.n);
      return out;
    }, "autocommit");
  }

  /** The oldest unread message, moved to running (started_at set), or null. */
  claimNext(): Promise<Message | null> {
    return this.#db.run(
      async (sql) => (await this.#claim(sql, 1))[0] ?? null,
      "tx",
    );
  }

  /** Up to `limit` oldest unread messages, moved to running, oldest first. */
  claim(limit: number): Promise<Message[]> {
    return this.#db.run((sql) => this.#claim(sql, limit), "tx");
  }

  async #claim(sql: Sql, limit: number): Promise<Message[]> {
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new OhcError(
        "invalid_limit",
        `claim limit must be a non-negative integer, got ${limit}`,
      );
    }
    if (limit === 0) return [];
    const rows = await sql.query(
      `SELECT ${MSG_COLS_NO_OUTPUT} FROM inbox WHERE status = 'unread'
       ORDER BY seq LIMIT $1`,
      [limit],
    );
    return await this.#claimThese(sql, rows.map(toMessage));
  }

  /**
   * Those of `msgs` (as read earlier) still unread, moved to running, in the
   * order given.
   */
  claimThese(msgs: Message[]): Promise<Message[]> {
    return this.#db.run((sql) => this.#claimThese(sql, msgs), "tx");
  }

  async #claimThese(sql: Sql, msgs: Message[]): Promise<Message[]> {
    const now = this.#iso();
    const out: Message[] = [];
    for (const m of msgs) {
      const at = m.started_at ?? now; // started already (start journal)
      const changed = await sql.exec(
        `UPDATE inbox SET status = 'running', started_at = $1
         WHERE id = $2 AND status = 'unread'`,
        [at, m.id],
      );
      if (changed) out.push({ ...m, status: "running", started_at: at });
    }
    return out;
  }

  /** Every unread message, without outputs, oldest first. */
  unread(): Promise<Message[]> {
    return this.#db.run(async (sql) => {
      const rows = await sql.query(
        `SELECT ${MSG_COLS_NO_OUTPUT} FROM inbox WHERE status = 'unread'
         ORDER BY seq`,
      );
      return rows.map(toMessage);
    }, "autocommit");
  }

  /**
   * Stores the outcome of a running message, outputs bounded to
   * maxOutputBytes each, and returns the finished message. null for an
   * unknown id (e.g. deleted meanwhile); throws "illegal_transition" if the
   * message is not running.
   */
  finish(
    id: string,
    result: FinishArgs,
    running?: Message,
  ): Promise<Message | null> {
    return this.#db.run(async (sql) => {
      const { finished } = await complete(
        sql,
        id,
        result,
        { running },
        this.maxOutputBytes,
        this.#iso(),
      );
      if (finished) return finished;
      const status = await statusOf(sql, id);
      if (status === null) return null;
      throw illegalTransition(id, result.status, status, "finish");
    }, "autocommit");
  }

  /**
   * The scheduler's step, in one statement: finishes `id` as finish does
   * (finished: null, never a throw, if it is not running), queues its result
   * for `resultHop` (the row is then the result's outbox entry) and claims
   * `next` if it is still unread.
   */
  complete(id: string, result: FinishArgs, opts: {
    running?: Message;
    resultHop?: string | null;
    next?: Message | null;
  }): Promise<{ finished: Message | null; claimed: Message | null }> {
    return this.#db.run(
      (sql) =>
        complete(sql, id, result, opts, this.maxOutputBytes, this.#iso()),
      "autocommit",
    );
  }

  /**
   * complete for many messages started ahead of the database (running, or
   * still unread there), without claims, in one statement; the ids that
   * finished (not those deleted or handled meanwhile).
   */
  completeMany(items: Finished[]): Promise<Message[]> {
    return this.#db.run(
      (sql) => completeMany(sql, items, this.maxOutputBytes, this.#iso()),
      "autocommit",
    );
  }

  /** Queues the result of a finished message for `hop` (see complete). */
  queueResult(id: string, hop: string): Promise<boolean> {
    return this.#db.run(
      async (sql) =>
        await sql.exec(
          `UPDATE inbox SET result_hop = $2, result_delivered_at = NULL
           WHERE id = $1 AND status IN ('done', 'error')`,
          [id, hop],
        ) === 1,
      "autocommit",
    );
  }

  /**
   * Every running message, and every unread one of `started` (the start
   * journal's), becomes error "interrupted". Returns how many.
   */
  markInterrupted(started: string[] = []): Promise<number> {
    return this.#db.run(async (sql) => {
      const rows = await sql.query(
        `UPDATE inbox SET status = 'error', error = 'interrupted',
           finished_at = $1
         WHERE status = 'running'
            OR (status = 'unread' AND id IN (SELECT unnest($2::VARCHAR[])))
         RETURNING id`,
        [this.#iso(), started],
      );
      return rows.length;
    }, "autocommit");
  }

  /**
   * Manual handling: pending (from unread only), done or error (from unread or
   * pending). false for an unknown id; throws "illegal_transition" otherwise.
   */
  setStatus(
    id: string,
    status: ManualStatus,
    error?: string | null,
  ): Promise<boolean> {
    return this.#db.run(async (sql) => {
      if (!MANUAL_FROM[status]) {
        throw new OhcError(
          "invalid_status",
          `a message can be set to pending, done or error, not '${status}'`,
        );
      }
      const rows = status === "pending"
        ? await sql.query(
          `UPDATE inbox SET status = 'pending'
           WHERE id = $1 AND status = 'unread' RETURNING id`,
          [id],
        )
        : await sql.query(
          `UPDATE inbox SET status = $2, error = $3, finished_at = $4
           WHERE id = $1 AND status IN ('unread', 'pending') RETURNING id`,
          [
            id,
            status,
            status === "error" ? (error ?? "marked as error") : null,
            this.#iso(),
          ],
        );
      if (rows.length) return true;
      const current = await statusOf(sql, id);
      if (current === null) return false;
      throw illegalTransition(id, status, current, "manual");
    }, "autocommit");
  }

  /**
   * Ids that start with `prefix` (at most `limit`), so people can type the
   * short ids `inbox list` shows.
   */
  idsStartingWith(prefix: string, limit: number): Promise<string[]> {
    return this.#db.run(
      (sql) => idsStartingWith(sql, "inbox", prefix, limit),
      "autocommit",
    );
  }
}

async function statusOf(sql: Sql, id: string): Promise<MessageStatus | null> {
  const rows = await sql.query("SELECT status FROM inbox WHERE id = $1", [id]);
  return rows.length ? rows[0].status as MessageStatus : null;
}
