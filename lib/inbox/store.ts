/**
 * The inbox's storage on DuckDB: this machine's inbox (messages it runs), its
 * outbox (messages and results waiting to leave) and its sent table (messages
 * it sent, with their results once back).
 *
 * One process per machine opens the database: the daemon. DuckDB takes an
 * exclusive lock on the file, so a second process (even read-only) fails at
 * open with "IO Error: Could not set lock on file ...", surfaced here as an
 * OhcError with code "db_locked". Inside one process the lock does not help
 * (POSIX record locks are per process), so `openStore` refuses a second open of
 * the same file itself.
 *
 * The POSIX lock has a sharp edge: closing ANY descriptor of the database file
 * in the holding process drops the lock. `Deno.open(path)` + `close()`,
 * `Deno.readFile`, `Deno.copyFile` of data.duckdb inside the daemon silently
 * let a second process open it (verified). Never touch the file's bytes from
 * the daemon (`stat` is fine); back up with SQL (EXPORT DATABASE). Children
 * started with Deno.Command do not inherit the descriptor (close-on-exec).
 *
 * Every operation goes through one connection and one queue: operations run
 * one after another, so each is atomic with respect to the others (a claim
 * cannot hand the same message to two callers) and no caller's statement lands
 * in another's transaction. All values are bound parameters of cached prepared
 * statements.
 *
 * `@duckdb/node-api` is imported lazily, inside `openStore`.
 */

import type {
  DuckDBConnection,
  DuckDBInstance,
  DuckDBPreparedStatement,
  DuckDBValue,
} from "@duckdb/node-api";
import { basename, dirname, join, resolve } from "node:path";
import { OhcError } from "../errors.ts";
import { migrate } from "./schema.ts";
import type {
  Envelope,
  FinishInput,
  ManualStatus,
  Message,
  MessageResult,
  MessageStatus,
  NewMessage,
  NewOutboxEntry,
  OutboxEntry,
  OutboxKind,
  SentRecord,
  SentStatus,
} from "./types.ts";
import { MESSAGE_STATUSES } from "./types.ts";

export const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024;

export interface StoreOptions {
  /** Bound on stored stdout and on stored stderr, each (default 64 KiB). */
  maxOutputBytes?: number;
  /** Clock, for tests. */
  now?: () => Date;
}

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
};

export interface InboxStore {
  readonly path: string;
  readonly maxOutputBytes: number;

  /** Idempotent on id: a duplicate id changes nothing and says inserted:false. */
  insert(msg: NewMessage): Promise<{ inserted: boolean }>;
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
   * Stores the outcome of a running message, outputs bounded to
   * maxOutputBytes each. false for an unknown id (e.g. deleted meanwhile);
   * throws "illegal_transition" if the message is not running.
   */
  finish(id: string, result: FinishArgs): Promise<boolean>;
  /** Every running message becomes error "interrupted". Returns how many. */
  markInterrupted(): Promise<number>;
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
  /** Queued entries in enqueue order (so each sender's order is kept). */
  queuedOutbox(ship?: string): Promise<OutboxEntry[]>;
  /** false only for an unknown entry; marking twice is harmless. */
  markDelivered(id: string, kind?: OutboxKind): Promise<boolean>;
  /** Counts a delivery attempt; returns the new count, or null if unknown. */
  noteAttempt(id: string, kind?: OutboxKind): Promise<number | null>;
  countQueued(ship?: string): Promise<number>;

  /** Idempotent on id. */
  recordSent(msg: Envelope): Promise<{ inserted: boolean }>;
  /**
   * Stores the result of a sent message. The first result wins: false if the
   * id is unknown or already has its result.
   */
  recordResult(id: string, result: Omit<MessageResult, "id">): Promise<boolean>;
  getSent(id: string): Promise<SentRecord | null>;
  /** Newest first. */
  listSent(opts?: { limit?: number }): Promise<SentRecord[]>;

  /**
   * Runs fn alone (after every earlier operation) inside one transaction:
   * other tables on this database (the voyage queue) use it, so each of
   * their operations is atomic too.
   */
  transaction<T>(fn: (q: Query) => Promise<T>): Promise<T>;

  /** Waits for running operations, then closes (checkpointing the WAL). */
  close(): Promise<void>;
}

export type Param = string | number | boolean | null | Uint8Array;

interface PendingOp {
  fn: () => Promise<unknown>;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}
export type Row = Record<string, DuckDBValue>;
export type Query = (sql: string, params?: Param[]) => Promise<Row[]>;

/** Files opened by this process (resolved paths). */
const openPaths = new Set<string>();

/** True for DuckDB's "another process holds the file" error (or ours). */
export function isLockError(err: unknown): boolean {
  if (err instanceof OhcError && err.code === "db_locked") return true;
  const msg = err instanceof Error ? err.message : String(err);
  return msg.includes("Could not set lock on file");
}

/**
 * Opens (creating if needed, with its parent directory) the inbox database
 * and brings its schema up to date. ":memory:" opens a private in-memory one.
 */
export async function openStore(
  path: string,
  opts: StoreOptions = {},
): Promise<InboxStore> {
  const max = opts.maxOutputBytes ?? DEFAULT_MAX_OUTPUT_BYTES;
  if (!Number.isSafeInteger(max) || max < 0) {
    throw new OhcError(
      "invalid_option",
      `maxOutputBytes must be a non-negative integer, got ${max}`,
    );
  }
  const memory = path === ":memory:";
  let key: string | null = null;
  if (!memory) {
    // One spelling per file (symlinks, "..", relative paths), for the guard.
    const dir = dirname(resolve(path));
    await Deno.mkdir(dir, { recursive: true });
    key = join(await Deno.realPath(dir), basename(path));
    if (openPaths.has(key)) {
      throw new OhcError(
        "db_locked",
        `inbox database ${key} is already open in this process`,
        "open it once and share the store",
      );
    }
    openPaths.add(key); // reserved now: concurrent opens see it
  }
  try {
    return await openFresh(key, max, opts.now);
  } catch (err) {
    if (key !== null) openPaths.delete(key);
    throw err;
  }
}

async function openFresh(
  key: string | null,
  max: number,
  now: (() => Date) | undefined,
): Promise<InboxStore> {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  let db: DuckDBInstance;
  try {
    db = await DuckDBInstance.create(key ?? ":memory:");
  } catch (err) {
    if (isLockError(err)) {
      throw new OhcError(
        "db_locked",
        (err as Error).message,
        "only the ohcommodore daemon opens the inbox database; go through it",
      );
    }
    throw err;
  }
  let conn: DuckDBConnection | undefined;
  try {
    conn = await db.connect();
    await migrate(conn, undefined, now);
  } catch (err) {
    conn?.closeSync();
    db.closeSync();
    throw err;
  }
  return new DuckInboxStore(key ?? ":memory:", db, conn, max, now);
}

const MSG_COLS =
  "seq, id, sender, recipient, command, status, created_at, received_at, " +
  "started_at, finished_at, exit_code, stdout, stderr, stdout_truncated, " +
  "stderr_truncated, error, timeout_s";
const MSG_COLS_NO_OUTPUT = MSG_COLS.replace(
  "stdout, stderr,",
  "NULL::BLOB AS stdout, NULL::BLOB AS stderr,",
);
const OUTBOX_COLS =
  "kind, id, recipient, ship, payload, state, attempts, created_at, delivered_at";
const SENT_COLS =
  "id, sender, recipient, command, created_at, timeout_s, status, exit_code, " +
  "stdout, stderr, stdout_truncated, stderr_truncated, error, started_at, " +
  "finished_at, result_at";

/** Which statuses a manual transition may start from. */
const MANUAL_FROM: Record<ManualStatus, MessageStatus[]> = {
  pending: ["unread"],
  done: ["unread", "pending"],
  error: ["unread", "pending"],
};

class DuckInboxStore implements InboxStore {
  #db: DuckDBInstance;
  #conn: DuckDBConnection;
  #now: () => Date;
  #pending: PendingOp[] = [];
  #pumping = false;
  #closed = false;

  constructor(
    readonly path: string,
    db: DuckDBInstance,
    conn: DuckDBConnection,
    readonly maxOutputBytes: number,
    now: () => Date = () => new Date(),
  ) {
    this.#db = db;
    this.#conn = conn;
    this.#now = now;
  }

  // ---- plumbing ----------------------------------------------------------

  /** Runs fn after every earlier operation has finished. */
  #serial<T>(fn: () => Promise<T>): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({
        fn,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
      if (!this.#pumping) void this.#pump();
    });
  }

  /**
   * Group commit: every operation that queued up while the last commit was
   * being flushed runs in one transaction, so they share one WAL flush (a
   * commit costs ~6 ms here, a statement ~2). If any of them fails, the
   * batch is rolled back and each runs again in its own transaction, so an
   * operation still commits or fails on its own.
   */
  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, this.#pending.length);
        if (this.#closed) {
          const e = new OhcError("db_closed", "the inbox store is closed");
          for (const op of batch) op.reject(e);
          continue;
        }
        if (batch.length > 1 && (await this.#runBatch(batch))) continue;
        for (const op of batch) await this.#runBatch([op]);
      }
    } finally {
      this.#pumping = false;
    }
  }

  /** Runs ops in one transaction; false (rolled back) if one failed. */
  async #runBatch(batch: PendingOp[]): Promise<boolean> {
    const single = batch.length === 1;
    const results: unknown[] = [];
    try {
      await this.#conn.run("BEGIN TRANSACTION");
      for (const op of batch) results.push(await op.fn());
      // DuckDB aborts a transaction on any failed statement, and COMMIT then
      // reports success while committing nothing. An operation that caught
      // its own error would take the whole batch down silently: this probe
      // fails in an aborted transaction, so the batch is retried one by one.
      await this.#conn.run("SELECT 1");
      await this.#conn.run("COMMIT");
    } catch (e) {
      await this.#conn.run("ROLLBACK").catch(() => {});
      if (single) batch[0].reject(e);
      return false;
    }
    batch.forEach((op, i) => op.resolve(results[i]));
    return true;
  }

  /**
   * Prepared per call, never cached: @duckdb/node-api 1.5.5 returns garbage
   * strings from a cached statement with ORDER BY that first ran on an empty
   * table (reproduced in tests/inbox/store_test.ts).
   */
  async #query(sql: string, params: Param[] = []): Promise<Row[]> {
    const ps = await this.#conn.prepare(sql);
    try {
      params.forEach((v, i) => bindParam(ps, i + 1, v));
      const reader = await ps.runAndReadAll();
      return reader.getRowObjects();
    } finally {
      ps.destroySync();
    }
  }

  /**
   * INSERT that is a no-op for an existing key. It must not fail: a failed
   * statement aborts the whole (group-committed) transaction, and a caught
   * duplicate-key error then fails the commit; that once made a redelivered
   * message fail its link session again and again.
   */
  async #insertOnce(sql: string, params: Param[]): Promise<boolean> {
    const rows = await this.#query(
      `${sql.trim()} ON CONFLICT DO NOTHING RETURNING 1 AS inserted`,
      params,
    );
    return rows.length > 0;
  }

  #iso(): string {
    return this.#now().toISOString();
  }

  // ---- inbox -------------------------------------------------------------

  async insert(msg: NewMessage): Promise<{ inserted: boolean }> {
    const m = validateEnvelope(msg, this.#iso());
    return await this.#serial(async () => {
      const inserted = await this.#insertOnce(
        `INSERT INTO inbox (id, sender, recipient, command, created_at,
           received_at, timeout_s)
         VALUES ($1, $2, $3, $4, $5, $6, $7)
`,
        [
          m.id,
          m.sender,
          m.recipient,
          m.command,
          m.created_at,
          this.#iso(),
          m.timeout_s,
        ],
      );
      return { inserted };
    });
  }

  get(id: string): Promise<Message | null> {
    return this.#serial(async () => {
      const rows = await this.#query(
        `SELECT ${MSG_COLS} FROM inbox WHERE id = $1`,
        [id],
      );
      return rows.length ? toMessage(rows[0]) : null;
    });
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
    return await this.#serial(async () => {
      const rows = await this.#query(
        `SELECT ${cols} FROM inbox ${where} ORDER BY seq DESC ${lim}`,
        params,
      );
      return rows.map(toMessage);
    });
  }

  delete(id: string): Promise<boolean> {
    return this.#serial(async () => {
      const rows = await this.#query(
        "DELETE FROM inbox WHERE id = $1 RETURNING id",
        [id],
      );
      return rows.length === 1;
    });
  }

  counts(): Promise<Record<MessageStatus, number>> {
    return this.#serial(async () => {
      const rows = await this.#query(
        "SELECT status, count(*) AS n FROM inbox GROUP BY status",
      );
      const out = Object.fromEntries(
        MESSAGE_STATUSES.map((s) => [s, 0]),
      ) as Record<MessageStatus, number>;
      for (const r of rows) out[r.status as MessageStatus] = num(r.n);
      return out;
    });
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
    return await this.#serial(async () => {
      const rows = await this.#query(
        `UPDATE inbox SET status = 'running', started_at = $1
         WHERE status = 'unread' AND id IN (
           SELECT id FROM inbox WHERE status = 'unread' ORDER BY seq LIMIT $2)
         RETURNING ${MSG_COLS}`,
        [this.#iso(), limit],
      );
      rows.sort((a, b) => num(a.seq) - num(b.seq));
      return rows.map(toMessage);
    });
  }

  async finish(id: string, result: FinishArgs): Promise<boolean> {
    if (result.status !== "done" && result.status !== "error") {
      throw new OhcError(
        "invalid_status",
        `a message finishes as done or error, not '${result.status}'`,
      );
    }
    const out = bound(result.stdout, this.maxOutputBytes);
    const err = bound(result.stderr, this.maxOutputBytes);
    return await this.#serial(async () => {
      const rows = await this.#query(
        `UPDATE inbox SET status = $2, exit_code = $3, stdout = $4, stderr = $5,
           stdout_truncated = $6, stderr_truncated = $7, error = $8,
           finished_at = $9
         WHERE id = $1 AND status = 'running' RETURNING id`,
        [
          id,
          result.status,
          result.exit_code,
          out.bytes,
          err.bytes,
          out.truncated || !!result.stdout_truncated,
          err.truncated || !!result.stderr_truncated,
          result.error ?? null,
          this.#iso(),
        ],
      );
      if (rows.length) return true;
      const status = await this.#statusOf(id);
      if (status === null) return false;
      throw illegal(id, result.status, status, "finish");
    });
  }

  markInterrupted(): Promise<number> {
    return this.#serial(async () => {
      const rows = await this.#query(
        `UPDATE inbox SET status = 'error', error = 'interrupted',
           finished_at = $1
         WHERE status = 'running' RETURNING id`,
        [this.#iso()],
      );
      return rows.length;
    });
  }

  async setStatus(
    id: string,
    status: ManualStatus,
    error?: string | null,
  ): Promise<boolean> {
    const from = MANUAL_FROM[status];
    if (!from) {
      throw new OhcError(
        "invalid_status",
        `a message can be set to pending, done or error, not '${status}'`,
      );
    }
    return await this.#serial(async () => {
      let rows: Row[];
      if (status === "pending") {
        rows = await this.#query(
          `UPDATE inbox SET status = 'pending'
           WHERE id = $1 AND status = 'unread' RETURNING id`,
          [id],
        );
      } else {
        rows = await this.#query(
          `UPDATE inbox SET status = $2, error = $3, finished_at = $4
           WHERE id = $1 AND status IN ('unread', 'pending') RETURNING id`,
          [
            id,
            status,
            status === "error" ? (error ?? "marked as error") : null,
            this.#iso(),
          ],
        );
      }
      if (rows.length) return true;
      const current = await this.#statusOf(id);
      if (current === null) return false;
      throw illegal(id, status, current, "manual");
    });
  }

  async #statusOf(id: string): Promise<MessageStatus | null> {
    const rows = await this.#query("SELECT status FROM inbox WHERE id = $1", [
      id,
    ]);
    return rows.length ? rows[0].status as MessageStatus : null;
  }

  // ---- outbox ------------------------------------------------------------

  async enqueueOutbox(entry: NewOutboxEntry): Promise<{ inserted: boolean }> {
    const kind = entry.kind ?? "message";
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
    const payload = JSON.stringify(entry.payload);
    return await this.#serial(async () => {
      const inserted = await this.#insertOnce(
        `INSERT INTO outbox (kind, id, recipient, ship, payload, created_at)
         VALUES ($1, $2, $3, $4, $5, $6)
`,
        [kind, entry.id, entry.recipient, entry.ship, payload, this.#iso()],
      );
      return { inserted };
    });
  }

  queuedOutbox(ship?: string): Promise<OutboxEntry[]> {
    return this.#serial(async () => {
      const rows = ship === undefined
        ? await this.#query(
          `SELECT ${OUTBOX_COLS} FROM outbox WHERE state = 'queued'
           ORDER BY seq`,
        )
        : await this.#query(
          `SELECT ${OUTBOX_COLS} FROM outbox
           WHERE state = 'queued' AND ship = $1 ORDER BY seq`,
          [ship],
        );
      return rows.map(toOutbox);
    });
  }

  markDelivered(id: string, kind: OutboxKind = "message"): Promise<boolean> {
    return this.#serial(async () => {
      const rows = await this.#query(
        `UPDATE outbox SET state = 'delivered',
           delivered_at = coalesce(delivered_at, $3)
         WHERE kind = $1 AND id = $2 RETURNING id`,
        [kind, id, this.#iso()],
      );
      return rows.length === 1;
    });
  }

  noteAttempt(
    id: string,
    kind: OutboxKind = "message",
  ): Promise<number | null> {
    return this.#serial(async () => {
      const rows = await this.#query(
        `UPDATE outbox SET attempts = attempts + 1
         WHERE kind = $1 AND id = $2 RETURNING attempts`,
        [kind, id],
      );
      return rows.length ? num(rows[0].attempts) : null;
    });
  }

  countQueued(ship?: string): Promise<number> {
    return this.#serial(async () => {
      const rows = ship === undefined
        ? await this.#query(
          "SELECT count(*) AS n FROM outbox WHERE state = 'queued'",
        )
        : await this.#query(
          "SELECT count(*) AS n FROM outbox WHERE state = 'queued' AND ship = $1",
          [ship],
        );
      return num(rows[0].n);
    });
  }

  // ---- sent --------------------------------------------------------------

  async recordSent(msg: Envelope): Promise<{ inserted: boolean }> {
    const m = validateEnvelope(msg, this.#iso());
    return await this.#serial(async () => {
      const inserted = await this.#insertOnce(
        `INSERT INTO sent (id, sender, recipient, command, created_at, timeout_s)
         VALUES ($1, $2, $3, $4, $5, $6)
`,
        [m.id, m.sender, m.recipient, m.command, m.created_at, m.timeout_s],
      );
      return { inserted };
    });
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
    return await this.#serial(async () => {
      const rows = await this.#query(
        `UPDATE sent SET status = $2, exit_code = $3, stdout = $4, stderr = $5,
           stdout_truncated = $6, stderr_truncated = $7, error = $8,
           started_at = $9, finished_at = $10, result_at = $11
         WHERE id = $1 AND status = 'sent' RETURNING id`,
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
      return rows.length === 1;
    });
  }

  getSent(id: string): Promise<SentRecord | null> {
    return this.#serial(async () => {
      const rows = await this.#query(
        `SELECT ${SENT_COLS} FROM sent WHERE id = $1`,
        [id],
      );
      return rows.length ? toSent(rows[0]) : null;
    });
  }

  async listSent(opts: { limit?: number } = {}): Promise<SentRecord[]> {
    checkLimit(opts.limit);
    return await this.#serial(async () => {
      const rows = opts.limit === undefined
        ? await this.#query(`SELECT ${SENT_COLS} FROM sent ORDER BY seq DESC`)
        : await this.#query(
          `SELECT ${SENT_COLS} FROM sent ORDER BY seq DESC LIMIT $1`,
          [opts.limit],
        );
      return rows.map(toSent);
    });
  }

  transaction<T>(fn: (q: Query) => Promise<T>): Promise<T> {
    // Every serialized operation already runs inside a transaction.
    return this.#serial(() => fn((sql, params) => this.#query(sql, params)));
  }

  // ---- lifecycle ---------------------------------------------------------

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#serial(() => Promise.resolve()).catch(() => {}); // drain
    if (this.#closed) return;
    this.#closed = true;
    this.#conn.closeSync();
    this.#db.closeSync();
    openPaths.delete(this.path);
  }
}

// ---- helpers -------------------------------------------------------------

function bindParam(ps: DuckDBPreparedStatement, i: number, v: Param): void {
  if (v === null) ps.bindNull(i);
  else if (typeof v === "string") ps.bindVarchar(i, v);
  else if (typeof v === "boolean") ps.bindBoolean(i, v);
  else if (typeof v === "number") {
    if (Number.isSafeInteger(v)) ps.bindBigInt(i, BigInt(v));
    else ps.bindDouble(i, v);
  } else ps.bindBlob(i, v);
}

const encoder = new TextEncoder();

/** At most max bytes of out; strings are cut at a character boundary. */
export function bound(
  out: Uint8Array | string,
  max: number,
): { bytes: Uint8Array; truncated: boolean } {
  if (typeof out === "string") {
    // A UTF-8 encoding is at most 3 bytes per UTF-16 unit.
    if (out.length * 3 <= max) {
      return { bytes: encoder.encode(out), truncated: false };
    }
    const buf = new Uint8Array(max);
    const { read, written } = encoder.encodeInto(out, buf);
    return { bytes: buf.slice(0, written), truncated: read < out.length };
  }
  if (!(out instanceof Uint8Array)) {
    throw new OhcError("invalid_output", "output must be bytes or a string");
  }
  return out.length > max
    ? { bytes: out.slice(0, max), truncated: true }
    : { bytes: out, truncated: false };
}

function checkLimit(limit: number | undefined): void {
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
    throw new OhcError(
      "invalid_limit",
      `limit must be a non-negative integer, got ${limit}`,
    );
  }
}

function validateEnvelope(
  msg: NewMessage,
  now: string,
): Envelope {
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

function illegal(
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

export function num(v: DuckDBValue): number {
  return typeof v === "bigint" ? Number(v) : v as number;
}

export function numOrNull(v: DuckDBValue): number | null {
  return v === null ? null : num(v);
}

export function str(v: DuckDBValue): string {
  return v as string;
}

export function strOrNull(v: DuckDBValue): string | null {
  return v === null ? null : v as string;
}

function bytesOrNull(v: DuckDBValue): Uint8Array | null {
  if (v === null) return null;
  // DuckDBBlobValue; its bytes are a Node Buffer: copy to a plain Uint8Array.
  return new Uint8Array((v as unknown as { bytes: Uint8Array }).bytes);
}

function toMessage(r: Row): Message {
  return {
    id: str(r.id),
    sender: str(r.sender),
    recipient: str(r.recipient),
    command: str(r.command),
    status: r.status as MessageStatus,
    created_at: str(r.created_at),
    received_at: str(r.received_at),
    started_at: strOrNull(r.started_at),
    finished_at: strOrNull(r.finished_at),
    exit_code: numOrNull(r.exit_code),
    stdout: bytesOrNull(r.stdout),
    stderr: bytesOrNull(r.stderr),
    stdout_truncated: r.stdout_truncated === true,
    stderr_truncated: r.stderr_truncated === true,
    error: strOrNull(r.error),
    timeout_s: numOrNull(r.timeout_s),
  };
}

function toOutbox(r: Row): OutboxEntry {
  return {
    kind: r.kind as OutboxKind,
    id: str(r.id),
    recipient: str(r.recipient),
    ship: str(r.ship),
    payload: JSON.parse(str(r.payload)),
    state: r.state as OutboxEntry["state"],
    attempts: num(r.attempts),
    created_at: str(r.created_at),
    delivered_at: strOrNull(r.delivered_at),
  } as OutboxEntry;
}

function toSent(r: Row): SentRecord {
  return {
    id: str(r.id),
    sender: str(r.sender),
    recipient: str(r.recipient),
    command: str(r.command),
    created_at: str(r.created_at),
    timeout_s: numOrNull(r.timeout_s),
    status: r.status as SentStatus,
    exit_code: numOrNull(r.exit_code),
    stdout: bytesOrNull(r.stdout),
    stderr: bytesOrNull(r.stderr),
    stdout_truncated: r.stdout_truncated === true,
    stderr_truncated: r.stderr_truncated === true,
    error: strOrNull(r.error),
    started_at: strOrNull(r.started_at),
    finished_at: strOrNull(r.finished_at),
    result_at: strOrNull(r.result_at),
  };
}
