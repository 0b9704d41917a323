/**
 * The inbox's storage on DuckDB: one connection, one queue of operations,
 * group commit. The operations themselves (the SQL) are in ops.ts.
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
 * statements (preparing costs more than running one here). DuckDB plans a
 * prepared statement with the table statistics of the moment it was
 * prepared: a sorted listing prepared on an empty table returns garbage
 * strings once rows exist (reproduced in tests/inbox/store_test.ts), an
 * UPDATE with a subquery never matches. The connection therefore turns
 * statistics propagation off; on tables this small it buys nothing. It also
 * runs DuckDB on one thread: every statement here is tiny, and a thread pool
 * only adds hand-offs on a busy two-core VM.
 *
 * `@duckdb/node-api` is imported lazily, inside `openStore`.
 */

import type {
  DuckDBConnection,
  DuckDBInstance,
  DuckDBPreparedStatement,
  DuckDBType,
} from "@duckdb/node-api";
import { basename, dirname, join, resolve } from "node:path";
import { OhcError } from "../errors.ts";
import {
  type Exec,
  type InboxOps,
  type Param,
  type Query,
  SqlInboxOps,
} from "./ops.ts";
import type { Row } from "./rows.ts";
import { migrate } from "./schema.ts";

export type { FinishArgs, InboxOps, ListOptions, Param, Query } from "./ops.ts";
export type { Row } from "./rows.ts";

export const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024;

export interface StoreOptions {
  /** Bound on stored stdout and on stored stderr, each (default 64 KiB). */
  maxOutputBytes?: number;
  /** Clock, for tests. */
  now?: () => Date;
}

/** Every operation of InboxOps, each run alone (how: OPS, at the end). */
export interface InboxStore extends InboxOps {
  readonly path: string;
  readonly maxOutputBytes: number;

  /**
   * Runs fn alone (after every earlier operation) inside one transaction,
   * with the store's operations: what it does commits together or not at
   * all. fn may be run again after a rollback (group commit, below), so it
   * must not act outside the database; act once the returned promise
   * resolves, when the transaction has committed. `writesOnce`: fn writes
   * at most once, so queued alone it runs in autocommit.
   */
  batch<T>(
    fn: (tx: InboxOps) => Promise<T>,
    opts?: { writesOnce?: boolean },
  ): Promise<T>;
  /**
   * As batch, with raw SQL: other tables on this database (the voyage
   * queue) use it, so each of their operations is atomic too.
   */
  transaction<T>(fn: (q: Query) => Promise<T>): Promise<T>;

  /** Waits for running operations, then closes (checkpointing the WAL). */
  close(): Promise<void>;
}

/**
 * How an operation runs when nothing else is queued with it: in a
 * transaction; alone in autocommit (it writes at most once, or only
 * idempotently, so it needs none: a commit and two statements saved); or as
 * raw SQL (`transaction`), which may catch a statement's failure.
 */
type OpMode = "tx" | "autocommit" | "raw";

interface PendingOp {
  fn: () => Promise<unknown>;
  mode: OpMode;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

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
    return await openFresh(key, max, opts.now ?? (() => new Date()));
  } catch (err) {
    if (key !== null) openPaths.delete(key);
    throw err;
  }
}

async function openFresh(
  key: string | null,
  max: number,
  now: () => Date,
): Promise<InboxStore> {
  const { DuckDBInstance, LIST, VARCHAR } = await import("@duckdb/node-api");
  let db: DuckDBInstance;
  try {
    db = await DuckDBInstance.create(key ?? ":memory:", { threads: "1" });
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
    await conn.run("SET disabled_optimizers = 'statistics_propagation'");
    await migrate(conn, undefined, now);
  } catch (err) {
    conn?.closeSync();
    db.closeSync();
    throw err;
  }
  return new DuckInboxStore(
    key ?? ":memory:",
    db,
    conn,
    max,
    now,
    LIST(VARCHAR),
  );
}

class DuckInboxStore {
  #db: DuckDBInstance;
  #conn: DuckDBConnection;
  #listType: DuckDBType;
  #statements = new Map<string, DuckDBPreparedStatement>();
  #ops: InboxOps;
  #pending: PendingOp[] = [];
  #pumping = false;
  #closed = false;

  constructor(
    readonly path: string,
    db: DuckDBInstance,
    conn: DuckDBConnection,
    readonly maxOutputBytes: number,
    now: () => Date,
    listType: DuckDBType,
  ) {
    this.#db = db;
    this.#conn = conn;
    this.#listType = listType;
    const q: Query = (sql, params) => this.#query(sql, params);
    const exec: Exec = (sql, params) => this.#exec(sql, params);
    this.#ops = new SqlInboxOps(q, exec, maxOutputBytes, now);
  }

  /** Runs fn after every earlier operation has finished. */
  #serial<T>(fn: () => Promise<T>, mode: OpMode = "tx"): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#pending.push({
        fn,
        mode,
        resolve: resolve as (v: unknown) => void,
        reject,
      });
      if (!this.#pumping) void this.#pump();
    });
  }

  /**
   * Group commit: every operation that queued up while the last commit was
   * being flushed runs in one transaction, so they share one WAL flush (a
   * commit costs ~1.5 ms here, a statement ~0.3). If any of them fails, the
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
    if (single && batch[0].mode === "autocommit") {
      try {
        batch[0].resolve(await batch[0].fn());
      } catch (e) {
        batch[0].reject(e);
      }
      return true;
    }
    const results: unknown[] = [];
    try {
      await this.#exec("BEGIN TRANSACTION");
      for (const op of batch) results.push(await op.fn());
      // DuckDB aborts a transaction on any failed statement, and COMMIT then
      // reports success while committing nothing. An operation that caught
      // its own error would take the whole batch down silently: this probe
      // fails in an aborted transaction, so the batch is retried one by one.
      // The store's own operations never catch one; raw SQL might.
      if (batch.some((op) => op.mode === "raw")) await this.#query("SELECT 1");
      await this.#exec("COMMIT");
    } catch (e) {
      await this.#conn.run("ROLLBACK").catch(() => {});
      if (single) batch[0].reject(e);
      return false;
    }
    batch.forEach((op, i) => op.resolve(results[i]));
    return true;
  }

  /** A cached prepared statement (see the header on why caching is safe). */
  async #prepared(
    sql: string,
    params: Param[],
  ): Promise<DuckDBPreparedStatement> {
    let ps = this.#statements.get(sql);
    if (!ps) {
      ps = await this.#conn.prepare(sql);
      this.#statements.set(sql, ps);
    }
    ps.clearBindings();
    params.forEach((v, i) => this.#bind(ps, i + 1, v));
    return ps;
  }

  async #query(sql: string, params: Param[] = []): Promise<Row[]> {
    const reader = await (await this.#prepared(sql, params)).runAndReadAll();
    return reader.getRowObjects();
  }

  /** Runs a statement for its effect: how many rows it changed. */
  async #exec(sql: string, params: Param[] = []): Promise<number> {
    return (await (await this.#prepared(sql, params)).run()).rowsChanged;
  }

  #bind(ps: DuckDBPreparedStatement, i: number, v: Param): void {
    if (v === null) ps.bindNull(i);
    else if (typeof v === "string") ps.bindVarchar(i, v);
    else if (typeof v === "boolean") ps.bindBoolean(i, v);
    else if (typeof v === "number") {
      if (Number.isSafeInteger(v)) ps.bindBigInt(i, BigInt(v));
      else ps.bindDouble(i, v);
    } else if (Array.isArray(v)) {
      ps.bindList(i, v, this.#listType as Parameters<typeof ps.bindList>[2]);
    } else ps.bindBlob(i, v);
  }

  batch<T>(
    fn: (tx: InboxOps) => Promise<T>,
    opts: { writesOnce?: boolean } = {},
  ): Promise<T> {
    return this.run(fn, opts.writesOnce ? "autocommit" : "tx");
  }

  /** One of the store's own operations (OPS, below). */
  run<T>(fn: (tx: InboxOps) => Promise<T>, mode: OpMode): Promise<T> {
    return this.#serial(() => fn(this.#ops), mode);
  }

  transaction<T>(fn: (q: Query) => Promise<T>): Promise<T> {
    return this.#serial(
      () => fn((sql, params) => this.#query(sql, params)),
      "raw",
    );
  }

  async close(): Promise<void> {
    if (this.#closed) return;
    await this.#serial(() => Promise.resolve()).catch(() => {}); // drain
    if (this.#closed) return;
    this.#closed = true;
    for (const ps of this.#statements.values()) ps.destroySync();
    this.#statements.clear();
    this.#conn.closeSync();
    this.#db.closeSync();
    openPaths.delete(this.path);
  }
}

/**
 * The operations a store runs alone: "tx" in a transaction of their own,
 * "autocommit" without one, for those that write once at most (a failure
 * leaves nothing half done; the queue keeps their reads and write together)
 * or only idempotently (markDelivered: each mark stands on its own).
 */
const OPS: Readonly<Record<keyof InboxOps, OpMode>> = {
  insert: "autocommit",
  insertMany: "autocommit",
  get: "autocommit",
  list: "autocommit",
  delete: "autocommit",
  counts: "autocommit",
  claimNext: "tx",
  claim: "tx",
  claimThese: "tx",
  unread: "autocommit",
  finish: "autocommit",
  complete: "autocommit",
  completeMany: "autocommit",
  queueResult: "autocommit",
  markInterrupted: "autocommit",
  setStatus: "autocommit",
  enqueueOutbox: "autocommit",
  enqueueMany: "autocommit",
  queuedOutbox: "autocommit",
  markDelivered: "autocommit",
  noteAttempt: "autocommit",
  countQueued: "autocommit",
  recordSent: "autocommit",
  recordResult: "autocommit",
  getSent: "autocommit",
  listSent: "autocommit",
  idsStartingWith: "autocommit",
};
for (const [name, mode] of Object.entries(OPS) as [keyof InboxOps, OpMode][]) {
  Object.defineProperty(DuckInboxStore.prototype, name, {
    value(this: DuckInboxStore, ...args: unknown[]) {
      return this.run(
        (tx) => (tx[name] as (...a: unknown[]) => Promise<unknown>)(...args),
        mode,
      );
    },
  });
}
// The loop above completes the class; TypeScript is told so here.
interface DuckInboxStore extends InboxOps {}
