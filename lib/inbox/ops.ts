/**
 * The inbox's operations in SQL: this machine's inbox (messages it runs), its
 * sent table (messages it sent, with their results once back) and its outbox.
 * What waits to leave the machine is mostly in the first two: a sent row with
 * a hop is its message's outbox entry, a finished inbox row with a result_hop
 * its result's (schema version 3); the outbox table holds what the flagship
 * stores on its way between two ships, and bounces.
 *
 * An `InboxOps` runs no transaction of its own: the store runs each public
 * operation alone (in autocommit when it writes once at most), and
 * `store.batch(fn)` hands fn an `InboxOps` so several operations share one
 * transaction (one commit, one WAL flush).
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
import {
  bound,
  MSG_COLS,
  MSG_COLS_NO_OUTPUT,
  num,
  OUTBOX_COLS,
  resultAsOutbox,
  type Row,
  SENT_COLS,
  sentAsOutbox,
  str,
  toMessage,
  toOutbox,
  toSent,
} from "./rows.ts";
import {
  bytesToBase64,
  type Envelope,
  type FinishInput,
  type ManualStatus,
  type Message,
  MESSAGE_STATUSES,
  type MessageResult,
  type MessageStatus,
  type NewMessage,
  type NewOutboxEntry,
  type OutboxEntry,
  type OutboxKind,
  type SentRecord,
} from "./types.ts";

/** A statement parameter; a string array binds as a VARCHAR list. */
export type Param =
  | string
  | number
  | boolean
  | null
  | Uint8Array
  | (string | null)[];
export type Query = (sql: string, params?: Param[]) => Promise<Row[]>;
/** Runs a statement for its effect; how many rows it changed. */
export type Exec = (sql: string, params?: Param[]) => Promise<number>;

export interface ListOptions {
  status?: MessageStatus;
  /** At most this many, newest first. */
  limit?: number;
  /** false leaves stdout/stderr null (cheaper for listings). Default true. */
  withOutput?: boolean;
}

/** What the scheduler's `finish` may also say: it bounded the output itself. */
export type FinishArgs = FinishInput & {
  stdout_truncated?: boolean;
  stderr_truncated?: boolean;
  /**
   * When it finished (and the next one started), if not now: the scheduler
   * may hand a slot over before the database records it.
   */
  at?: string;
  /**
   * When it started, for a message started ahead of the database (the
   * scheduler's start journal): it may still be unread there.
   */
  started?: string;
};

/** One message of completeMany. */
export interface Finished {
  /** The message as it was started. */
  running: Message;
  result: FinishArgs;
  /** Where its result goes next (the row is then its outbox entry). */
  resultHop: string | null;
}

export interface OutboxKey {
  kind: OutboxKind;
  id: string;
}

export interface InboxOps {
  /** Idempotent on id: a duplicate id changes nothing and says inserted:false. */
  insert(msg: NewMessage): Promise<{ inserted: boolean }>;
  /** insert for many, in order, in two statements; the ids inserted. */
  insertMany(msgs: NewMessage[]): Promise<string[]>;
  get(id: string): Promise<Message | null>;
  /** Newest first (arrival order, reversed). */
  list(opts?: ListOptions): Promise<Message[]>;
  delete(id: string): Promise<boolean>;
  /** How many messages are in each status. */
  counts(): Promise<Record<MessageStatus, number>>;

  /** The oldest unread message, moved to running (started_at set), or null. */
  claimNext(): Promise<Message | null>;
  /** Up to `limit` oldest unread messages, moved to running, oldest first. */
  claim(limit: number): Promise<Message[]>;
  /**
   * Those of `msgs` (as read earlier) still unread, moved to running, in the
   * order given.
   */
  claimThese(msgs: Message[]): Promise<Message[]>;
  /** Every unread message, without outputs, oldest first. */
  unread(): Promise<Message[]>;
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
  ): Promise<Message | null>;
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
  }): Promise<{ finished: Message | null; claimed: Message | null }>;
  /** Queues the result of a finished message for `hop` (see complete). */
  queueResult(id: string, hop: string): Promise<boolean>;
  /**
   * complete for many messages started ahead of the database (running, or
   * still unread there), without claims, in one statement; the ids that
   * finished (not those deleted or handled meanwhile).
   */
  completeMany(items: Finished[]): Promise<Message[]>;
  /**
   * Every running message, and every unread one of `started` (the start
   * journal's), becomes error "interrupted". Returns how many.
   */
  markInterrupted(started?: string[]): Promise<number>;
  /**
   * Manual handling: pending (from unread only), done or error (from unread or
   * pending). false for an unknown id; throws "illegal_transition" otherwise.
   */
  setStatus(
    id: string,
    status: ManualStatus,
    error?: string | null,
  ): Promise<boolean>;

  /** Idempotent on (kind, id). */
  enqueueOutbox(entry: NewOutboxEntry): Promise<{ inserted: boolean }>;
  /**
   * enqueueOutbox for many, in order, in two statements (one when `fresh`:
   * the caller knows no entry exists yet); the entries inserted.
   */
  enqueueMany(
    entries: NewOutboxEntry[],
    opts?: { fresh?: boolean },
  ): Promise<NewOutboxEntry[]>;
  /**
   * Queued entries: the outbox's, then this machine's sent messages, then
   * the results of messages it ran, each in order (so each sender's order
   * is kept: a sender's messages are all in one of them).
   */
  queuedOutbox(ship?: string): Promise<OutboxEntry[]>;
  /** How many of the keys are known entries; marking twice is harmless. */
  markDelivered(keys: OutboxKey[]): Promise<number>;
  /** Counts a delivery attempt; returns the new count, or null if unknown. */
  noteAttempt(id: string, kind?: OutboxKind): Promise<number | null>;
  countQueued(ship?: string): Promise<number>;

  /**
   * Idempotent on id (`fresh`: the caller just made the id up). With a
   * `hop`, the sent row is also the message's outbox entry, queued for that
   * machine until markDelivered.
   */
  recordSent(
    msg: Envelope,
    opts?: { fresh?: boolean; hop?: string | null },
  ): Promise<{ inserted: boolean }>;
  /**
   * Stores the result of a sent message. The first result wins: false if the
   * id is unknown or already has its result.
   */
  recordResult(id: string, result: Omit<MessageResult, "id">): Promise<boolean>;
  getSent(id: string): Promise<SentRecord | null>;
  /** Newest first. */
  listSent(opts?: { limit?: number }): Promise<SentRecord[]>;
  /**
   * Ids in `table` that start with `prefix` (at most `limit`), so people can
   * type the short ids `inbox list` shows.
   */
  idsStartingWith(
    table: "inbox" | "sent",
    prefix: string,
    limit: number,
  ): Promise<string[]>;
}

/** Which statuses a manual transition may start from. */
const MANUAL_FROM: Record<ManualStatus, MessageStatus[]> = {
  pending: ["unread"],
  done: ["unread", "pending"],
  error: ["unread", "pending"],
};

export class SqlInboxOps implements InboxOps {
  constructor(
    private q: Query,
    private exec: Exec,
    private maxOutputBytes: number,
    private now: () => Date,
  ) {}

  #iso(): string {
    return this.now().toISOString();
  }

  // ---- inbox -------------------------------------------------------------

  async insert(msg: NewMessage): Promise<{ inserted: boolean }> {
    return { inserted: (await this.insertMany([msg])).length === 1 };
  }

  async insertMany(msgs: NewMessage[]): Promise<string[]> {
    if (msgs.length === 0) return [];
    const now = this.#iso();
    const ms = msgs.map((m) => validateEnvelope(m, now));
    const taken = await this.#existing("inbox", ms.map((m) => m.id));
    const fresh = ms.filter((m) => !taken.has(m.id) && taken.add(m.id));
    if (fresh.length === 0) return [];
    await this.#insertRows(
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

  /**
   * Inserts rows of VARCHAR columns (and one optional DOUBLE column): one
   * row as VALUES, more as one statement over list parameters (a list
   * costs ~1 ms to bind, a row ~0.1 ms to insert that way).
   */
  async #insertRows(
    table: "inbox" | "outbox",
    columns: string[],
    rows: string[][],
    double?: { column: string; values: (number | null)[] },
  ): Promise<void> {
    const cols = double ? [...columns, double.column] : columns;
    if (rows.length === 1) {
      const marks = cols.map((_, i) => `$${i + 1}`).join(", ");
      await this.exec(
        `INSERT INTO ${table} (${cols.join(", ")}) VALUES (${marks})`,
        double ? [...rows[0], double.values[0]] : rows[0],
      );
      return;
    }
    const lists: Param[] = columns.map((_, i) => rows.map((r) => r[i]));
    const exprs = columns.map((_, i) => `unnest($${i + 1}::VARCHAR[])`);
    if (double) {
      lists.push(double.values.map((v) => v === null ? null : String(v)));
      exprs.push(`unnest($${lists.length}::VARCHAR[])::DOUBLE`);
    }
    await this.exec(
      `INSERT INTO ${table} (${cols.join(", ")}) SELECT ${exprs.join(", ")}`,
      lists,
    );
  }

  /**
   * Which of `ids` a table (keyed by id) has already. Inserts look first
   * rather than fail: a failed statement aborts the whole (group-committed)
   * transaction, and a caught duplicate-key error then fails the commit;
   * that once made a redelivered message fail its link session again and
   * again. ON CONFLICT DO NOTHING costs ten times a plain insert here. The
   * look is atomic with the insert: every operation runs alone.
   */
  async #existing(
    table: "inbox" | "sent",
    ids: string[],
  ): Promise<Set<string>> {
    const rows = ids.length === 1
      ? await this.q(`SELECT id FROM ${table} WHERE id = $1`, ids)
      : await this.q(
        `SELECT id FROM ${table} WHERE id IN (SELECT unnest($1::VARCHAR[]))`,
        [ids],
      );
    return new Set(rows.map((r) => str(r.id)));
  }

  async get(id: string): Promise<Message | null> {
    const rows = await this.q(`SELECT ${MSG_COLS} FROM inbox WHERE id = $1`, [
      id,
    ]);
    return rows.length ? toMessage(rows[0]) : null;
  }

  async list(opts: ListOptions = {}): Promise<Message[]> {
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
    const rows = await this.q(
      `SELECT ${cols} FROM inbox ${where} ORDER BY seq DESC ${lim}`,
      params,
    );
    return rows.map(toMessage);
  }

  async delete(id: string): Promise<boolean> {
    const rows = await this.q("DELETE FROM inbox WHERE id = $1 RETURNING id", [
      id,
    ]);
    return rows.length === 1;
  }

  async counts(): Promise<Record<MessageStatus, number>> {
    const rows = await this.q(
      "SELECT status, count(*) AS n FROM inbox GROUP BY status",
    );
    const out = Object.fromEntries(
      MESSAGE_STATUSES.map((s) => [s, 0]),
    ) as Record<MessageStatus, number>;
    for (const r of rows) out[r.status as MessageStatus] = num(r.n);
    return out;
  }

  async claimNext(): Promise<Message | null> {
    const [m] = await this.claim(1);
    return m ?? null;
  }

  async claim(limit: number): Promise<Message[]> {
    if (!Number.isSafeInteger(limit) || limit < 0) {
      throw new OhcError(
        "invalid_limit",
        `claim limit must be a non-negative integer, got ${limit}`,
      );
    }
    if (limit === 0) return [];
    const rows = await this.q(
      `SELECT ${MSG_COLS_NO_OUTPUT} FROM inbox WHERE status = 'unread'
       ORDER BY seq LIMIT $1`,
      [limit],
    );
    return await this.claimThese(rows.map(toMessage));
  }

  async claimThese(msgs: Message[]): Promise<Message[]> {
    const now = this.#iso();
    const out: Message[] = [];
    for (const m of msgs) {
      const at = m.started_at ?? now; // started already (start journal)
      const changed = await this.exec(
        `UPDATE inbox SET status = 'running', started_at = $1
         WHERE id = $2 AND status = 'unread'`,
        [at, m.id],
      );
      if (changed) out.push({ ...m, status: "running", started_at: at });
    }
    return out;
  }

  async unread(): Promise<Message[]> {
    const rows = await this.q(
      `SELECT ${MSG_COLS_NO_OUTPUT} FROM inbox WHERE status = 'unread'
       ORDER BY seq`,
    );
    return rows.map(toMessage);
  }

  /** A message without its outputs (the cheap read after an update). */
  async #withoutOutput(id: string): Promise<Message | null> {
    const rows = await this.q(
      `SELECT ${MSG_COLS_NO_OUTPUT} FROM inbox WHERE id = $1`,
      [id],
    );
    return rows.length ? toMessage(rows[0]) : null;
  }

  async finish(
    id: string,
    result: FinishArgs,
    running?: Message,
  ): Promise<Message | null> {
    const { finished } = await this.complete(id, result, { running });
    if (finished) return finished;
    const status = await this.#statusOf(id);
    if (status === null) return null;
    throw illegalTransition(id, result.status, status, "finish");
  }

  async complete(id: string, result: FinishArgs, opts: {
    running?: Message;
    resultHop?: string | null;
    next?: Message | null;
  }): Promise<{ finished: Message | null; claimed: Message | null }> {
    if (result.status !== "done" && result.status !== "error") {
      throw new OhcError(
        "invalid_status",
        `a message finishes as done or error, not '${result.status}'`,
      );
    }
    const outcome = outcomeOf(result, this.maxOutputBytes, this.#iso());
    const at = outcome.finished_at;
    const next = opts.next ?? null;
    // One row finishes and another starts: each column takes the finished
    // row's new value or keeps (or, for started_at, sets) the other's.
    const mine = (col: string, param: string) =>
      `${col} = CASE WHEN id = $1 THEN ${param} ELSE ${col} END`;
    const changed = await this.exec(
      `UPDATE inbox SET
         status = CASE WHEN id = $1 THEN $2 ELSE 'running' END,
         ${mine("exit_code", "$3")}, ${mine("stdout", "$4")},
         ${mine("stderr", "$5")}, ${mine("stdout_truncated", "$6")},
         ${mine("stderr_truncated", "$7")}, ${mine("error", "$8")},
         ${mine("finished_at", "$9")}, ${mine("result_hop", "$10")},
         started_at = CASE WHEN id = $1 THEN coalesce(started_at, $12)
           ELSE $9 END
       WHERE (id = $1 AND (status = 'running'
                           OR (status = 'unread' AND $12 IS NOT NULL)))
          OR (id = $11 AND status = 'unread')`,
      [
        id,
        outcome.status,
        outcome.exit_code,
        outcome.stdout,
        outcome.stderr,
        outcome.stdout_truncated,
        outcome.stderr_truncated,
        outcome.error,
        at,
        opts.resultHop ?? null,
        next?.id ?? null,
        result.started ?? null,
      ],
    );
    let finished = changed === 2 || (changed === 1 && !next);
    let claimed = changed === 2;
    if (changed === 1 && next) {
      // Which of the two was it? Only when one was handled by hand meanwhile.
      const rows = await this.q(
        "SELECT status, started_at FROM inbox WHERE id = $1",
        [next.id],
      );
      claimed = rows.length === 1 && rows[0].status === "running" &&
        rows[0].started_at === at;
      finished = !claimed;
    }
    return {
      finished: finished
        ? finishedMessage(
          opts.running ?? (await this.#withoutOutput(id))!,
          result,
          outcome,
        )
        : null,
      claimed: claimed && next
        ? { ...next, status: "running", started_at: at }
        : null,
    };
  }

  async completeMany(items: Finished[]): Promise<Message[]> {
    if (items.length === 0) return [];
    const now = this.#iso();
    const done = items.map(({ running, result }) =>
      finishedMessage(
        running,
        result,
        outcomeOf(result, this.maxOutputBytes, now),
      )
    );
    const rows = done.map((m, i) => [
      m.id,
      m.status,
      m.exit_code === null ? null : String(m.exit_code),
      bytesToBase64(m.stdout!),
      bytesToBase64(m.stderr!),
      String(m.stdout_truncated),
      String(m.stderr_truncated),
      m.error,
      m.finished_at,
      m.started_at,
      items[i].resultHop,
    ]);
    // One UPDATE joined to the rows as lists costs about what one single-row
    // UPDATE does here (~5 ms), whatever their number.
    const cols = [
      "id",
      "status",
      "exit_code",
      "out",
      "err",
      "ot",
      "et",
      "error",
      "fin",
      "st",
      "hop",
    ];
    const changed = await this.exec(
      `UPDATE inbox SET status = v.status,
         exit_code = v.exit_code::INTEGER,
         stdout = from_base64(v.out), stderr = from_base64(v.err),
         stdout_truncated = v.ot::BOOLEAN, stderr_truncated = v.et::BOOLEAN,
         error = v.error, finished_at = v.fin,
         started_at = coalesce(inbox.started_at, v.st), result_hop = v.hop
       FROM (SELECT ${
        cols.map((c, i) => `unnest($${i + 1}::VARCHAR[]) AS ${c}`).join(", ")
      }) v
       WHERE inbox.id = v.id AND inbox.status IN ('running', 'unread')`,
      cols.map((_, i) => rows.map((r) => r[i])),
    );
    if (changed === items.length) return done;
    // Some were deleted or handled meanwhile: which finished, then?
    const back = await this.q(
      `SELECT id, finished_at FROM inbox
       WHERE id IN (SELECT unnest($1::VARCHAR[]))`,
      [done.map((m) => m.id)],
    );
    const fin = new Map(back.map((r) => [str(r.id), r.finished_at]));
    return done.filter((m) => fin.get(m.id) === m.finished_at);
  }

  async queueResult(id: string, hop: string): Promise<boolean> {
    return await this.exec(
      `UPDATE inbox SET result_hop = $2, result_delivered_at = NULL
       WHERE id = $1 AND status IN ('done', 'error')`,
      [id, hop],
    ) === 1;
  }

  async markInterrupted(started: string[] = []): Promise<number> {
    const rows = await this.q(
      `UPDATE inbox SET status = 'error', error = 'interrupted',
         finished_at = $1
       WHERE status = 'running'
          OR (status = 'unread' AND id IN (SELECT unnest($2::VARCHAR[])))
       RETURNING id`,
      [this.#iso(), started],
    );
    return rows.length;
  }

  async setStatus(
    id: string,
    status: ManualStatus,
    error?: string | null,
  ): Promise<boolean> {
    if (!MANUAL_FROM[status]) {
      throw new OhcError(
        "invalid_status",
        `a message can be set to pending, done or error, not '${status}'`,
      );
    }
    const rows = status === "pending"
      ? await this.q(
        `UPDATE inbox SET status = 'pending'
         WHERE id = $1 AND status = 'unread' RETURNING id`,
        [id],
      )
      : await this.q(
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
    const current = await this.#statusOf(id);
    if (current === null) return false;
    throw illegalTransition(id, status, current, "manual");
  }

  async #statusOf(id: string): Promise<MessageStatus | null> {
    const rows = await this.q("SELECT status FROM inbox WHERE id = $1", [id]);
    return rows.length ? rows[0].status as MessageStatus : null;
  }

  // ---- outbox ------------------------------------------------------------

  async enqueueOutbox(entry: NewOutboxEntry): Promise<{ inserted: boolean }> {
    return { inserted: (await this.enqueueMany([entry])).length === 1 };
  }

  async enqueueMany(
    entries: NewOutboxEntry[],
    opts: { fresh?: boolean } = {},
  ): Promise<NewOutboxEntry[]> {
    if (entries.length === 0) return [];
    for (const entry of entries) {
      for (const f of ["id", "recipient", "ship"] as const) {
        if (typeof entry[f] !== "string" || entry[f] === "") {
          throw new OhcError("invalid_outbox", `outbox entry needs a ${f}`);
        }
      }
      if (entry.payload?.id !== entry.id) {
        throw new OhcError(
          "invalid_outbox",
          `outbox entry ${entry.id}: payload id ${entry.payload?.id} differs`,
        );
      }
    }
    const keyOf = (e: { kind?: string; id: string }) =>
      `${e.kind ?? "message"}:${e.id}`;
    const taken = new Set<string>();
    if (!opts.fresh) {
      const rows = entries.length === 1
        ? await this.q("SELECT kind, id FROM outbox WHERE id = $1", [
          entries[0].id,
        ])
        : await this.q(
          "SELECT kind, id FROM outbox WHERE id IN (SELECT unnest($1::VARCHAR[]))",
          [entries.map((e) => e.id)],
        );
      for (const r of rows) {
        taken.add(keyOf({ kind: str(r.kind), id: str(r.id) }));
      }
    }
    const fresh = entries.filter((e) =>
      !taken.has(keyOf(e)) && taken.add(keyOf(e))
    );
    if (fresh.length === 0) return [];
    const now = this.#iso();
    await this.#insertRows(
      "outbox",
      ["kind", "id", "recipient", "ship", "payload", "created_at"],
      fresh.map((e) => [
        e.kind ?? "message",
        e.id,
        e.recipient,
        e.ship,
        JSON.stringify(e.payload),
        now,
      ]),
    );
    return fresh;
  }

  async queuedOutbox(ship?: string): Promise<OutboxEntry[]> {
    // One after the other: statements on one connection do not overlap.
    const rows = async (q: keyof typeof QUEUES) =>
      await this.q(
        `SELECT ${QUEUES[q].cols} FROM ${QUEUES[q].table}
         WHERE ${queuedWhere(q, ship)} ORDER BY seq`,
        ship === undefined ? [] : [ship],
      );
    return [
      ...(await rows("outbox")).map(toOutbox),
      ...(await rows("sent")).map(sentAsOutbox),
      ...(await rows("results")).map(resultAsOutbox),
    ];
  }

  async markDelivered(keys: OutboxKey[]): Promise<number> {
    let known = 0;
    const at = this.#iso();
    for (const kind of ["message", "result"] as const) {
      const ids = keys.filter((k) => k.kind === kind).map((k) => k.id);
      if (ids.length === 0) continue;
      // Where an entry of this kind may live: its own record (always, on a
      // ship), or the outbox (what the flagship stored on its way, and
      // entries from before schema version 3).
      const own = await this.exec(
        kind === "message"
          ? `UPDATE sent SET delivered_at = coalesce(delivered_at, $1)
             WHERE hop IS NOT NULL AND id IN (SELECT unnest($2::VARCHAR[]))`
          : `UPDATE inbox SET result_delivered_at = coalesce(result_delivered_at, $1)
             WHERE result_hop IS NOT NULL
               AND id IN (SELECT unnest($2::VARCHAR[]))`,
        [at, ids],
      );
      known += own;
      if (own === ids.length) continue;
      known += await this.exec(
        `UPDATE outbox SET state = 'delivered',
           delivered_at = coalesce(delivered_at, $1)
         WHERE kind = $2 AND id IN (SELECT unnest($3::VARCHAR[]))`,
        [at, kind, ids],
      );
    }
    return known;
  }

  async noteAttempt(
    id: string,
    kind: OutboxKind = "message",
  ): Promise<number | null> {
    const rows = await this.q(
      `UPDATE outbox SET attempts = attempts + 1
       WHERE kind = $1 AND id = $2 RETURNING attempts`,
      [kind, id],
    );
    return rows.length ? num(rows[0].attempts) : null;
  }

  async countQueued(ship?: string): Promise<number> {
    const counts = (["outbox", "sent", "results"] as const).map((q) =>
      `(SELECT count(*) FROM ${QUEUES[q].table} WHERE ${queuedWhere(q, ship)})`
    );
    const rows = await this.q(
      `SELECT ${counts.join(" + ")} AS n`,
      ship === undefined ? [] : [ship],
    );
    return num(rows[0].n);
  }

  // ---- sent --------------------------------------------------------------

  async recordSent(
    msg: Envelope,
    opts: { fresh?: boolean; hop?: string | null } = {},
  ): Promise<{ inserted: boolean }> {
    const m = validateEnvelope(msg, this.#iso());
    if (!opts.fresh && (await this.#existing("sent", [m.id])).size > 0) {
      return { inserted: false };
    }
    await this.exec(
      `INSERT INTO sent (id, sender, recipient, command, created_at, timeout_s,
         hop)
       VALUES ($1, $2, $3, $4, $5, $6, $7)`,
      [
        m.id,
        m.sender,
        m.recipient,
        m.command,
        m.created_at,
        m.timeout_s,
        opts.hop ?? null,
      ],
    );
    return { inserted: true };
  }

  async recordResult(
    id: string,
    result: Omit<MessageResult, "id">,
  ): Promise<boolean> {
    if (result.status !== "done" && result.status !== "error") {
      throw new OhcError(
        "invalid_status",
        `a result is done or error, not '${result.status}'`,
      );
    }
    const out = bound(result.stdout, this.maxOutputBytes);
    const err = bound(result.stderr, this.maxOutputBytes);
    const changed = await this.exec(
      `UPDATE sent SET status = $2, exit_code = $3, stdout = $4, stderr = $5,
         stdout_truncated = $6, stderr_truncated = $7, error = $8,
         started_at = $9, finished_at = $10, result_at = $11
       WHERE id = $1 AND status = 'sent'`,
      [
        id,
        result.status,
        result.exit_code,
        out.bytes,
        err.bytes,
        out.truncated || result.stdout_truncated,
        err.truncated || result.stderr_truncated,
        result.error,
        result.started_at,
        result.finished_at,
        this.#iso(),
      ],
    );
    return changed === 1;
  }

  async getSent(id: string): Promise<SentRecord | null> {
    const rows = await this.q(`SELECT ${SENT_COLS} FROM sent WHERE id = $1`, [
      id,
    ]);
    return rows.length ? toSent(rows[0]) : null;
  }

  async idsStartingWith(
    table: "inbox" | "sent",
    prefix: string,
    limit: number,
  ): Promise<string[]> {
    const rows = await this.q(
      `SELECT id FROM ${table} WHERE starts_with(id, $1) ORDER BY id LIMIT $2`,
      [prefix, limit],
    );
    return rows.map((r) => str(r.id));
  }

  async listSent(opts: { limit?: number } = {}): Promise<SentRecord[]> {
    checkLimit(opts.limit);
    const rows = opts.limit === undefined
      ? await this.q(`SELECT ${SENT_COLS} FROM sent ORDER BY seq DESC`)
      : await this.q(
        `SELECT ${SENT_COLS} FROM sent ORDER BY seq DESC LIMIT $1`,
        [opts.limit],
      );
    return rows.map(toSent);
  }
}

/**
 * Where entries wait to leave this machine (see the header): what each
 * table's queued rows are, the column naming the machine they go to next,
 * and what a listing reads.
 */
const QUEUES = {
  outbox: {
    table: "outbox",
    queued: "state = 'queued'",
    next: "ship",
    cols: OUTBOX_COLS,
  },
  sent: {
    table: "sent",
    queued: "hop IS NOT NULL AND delivered_at IS NULL",
    next: "hop",
    cols: `${SENT_COLS}, hop`,
  },
  results: {
    table: "inbox",
    queued: "result_hop IS NOT NULL AND result_delivered_at IS NULL",
    next: "result_hop",
    cols: `${MSG_COLS}, result_hop`,
  },
} as const;

/** The queued rows of one of QUEUES, for `ship` ($1) if given. */
function queuedWhere(q: keyof typeof QUEUES, ship?: string): string {
  const { queued, next } = QUEUES[q];
  return ship === undefined ? queued : `${queued} AND ${next} = $1`;
}

/** `running` as it finished with `outcome` (and started, if not recorded). */
function finishedMessage(
  running: Message,
  result: FinishArgs,
  outcome: ReturnType<typeof outcomeOf>,
): Message {
  return {
    ...running,
    started_at: running.started_at ?? result.started ?? null,
    ...outcome,
  };
}

/** The columns a message finishing with `result` gets, outputs bounded. */
function outcomeOf(result: FinishArgs, max: number, now: string) {
  const out = bound(result.stdout, max);
  const err = bound(result.stderr, max);
  return {
    status: result.status,
    exit_code: result.exit_code,
    stdout: out.bytes,
    stderr: err.bytes,
    stdout_truncated: out.truncated || !!result.stdout_truncated,
    stderr_truncated: err.truncated || !!result.stderr_truncated,
    error: result.error ?? null,
    finished_at: result.at ?? now,
  };
}

function checkLimit(limit: number | undefined): void {
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
    throw new OhcError(
      "invalid_limit",
      `limit must be a non-negative integer, got ${limit}`,
    );
  }
}

function validateEnvelope(msg: NewMessage, now: string): Envelope {
  const bad = (what: string) =>
    new OhcError("invalid_message", `message ${what}`);
  if (typeof msg !== "object" || msg === null) throw bad("must be an object");
  for (const f of ["id", "sender", "recipient"] as const) {
    if (typeof msg[f] !== "string" || msg[f] === "") {
      throw bad(`needs a non-empty ${f}`);
    }
  }
  if (msg.id.length > 200) throw bad("id is longer than 200 characters");
  if (typeof msg.command !== "string") throw bad("command must be a string");
  let created = now;
  if (msg.created_at !== undefined && msg.created_at !== null) {
    const t = new Date(msg.created_at);
    if (typeof msg.created_at !== "string" || isNaN(t.getTime())) {
      throw bad(`created_at is not a timestamp: ${msg.created_at}`);
    }
    created = t.toISOString();
  }
  const timeout = msg.timeout_s ?? null;
  if (
    timeout !== null &&
    (typeof timeout !== "number" || !Number.isFinite(timeout) || timeout <= 0)
  ) {
    throw bad(`timeout_s must be a positive number, got ${timeout}`);
  }
  return {
    id: msg.id,
    sender: msg.sender,
    recipient: msg.recipient,
    command: msg.command,
    created_at: created,
    timeout_s: timeout,
  };
}

/** The refusal of a transition from `current` (manual: as the CLI says it). */
export function illegalTransition(
  id: string,
  target: MessageStatus,
  current: MessageStatus,
  how: "finish" | "manual",
): OhcError {
  if (how === "finish") {
    return new OhcError(
      "illegal_transition",
      `message ${id} cannot finish as ${target}: it is ${current}, not running`,
    );
  }
  const verb = target === "pending" ? "read (claim)" : `mark ${target}`;
  const hint = current === "running"
    ? "the scheduler is running it; wait for it to finish"
    : current === "pending"
    ? "it is already claimed for manual handling; mark it done or error"
    : target === "pending"
    ? "only an unread message can be claimed"
    : "it has already finished";
  return new OhcError(
    "illegal_transition",
    `cannot ${verb} message ${id}: it is ${current}`,
    hint,
  );
}
