/**
 * A machine's DuckDB database: one connection, one write queue with group
 * commit (commit_queue.ts), the schema brought up to date at open
 * (migrate.ts). Stores (the inbox's tables, the voyage queue) run their
 * operations through it.
 *
 * One process per machine opens the database: the daemon. DuckDB takes an
 * exclusive lock on the file, so a second process (even read-only) fails at
 * open with "IO Error: Could not set lock on file ...", surfaced here as an
 * OhcError with code "db_locked". Inside one process the lock does not help
 * (POSIX record locks are per process), so `openDatabase` refuses a second
 * open of the same file itself.
 *
 * The POSIX lock has a sharp edge: closing ANY descriptor of the database file
 * in the holding process drops the lock. `Deno.open(path)` + `close()`,
 * `Deno.readFile`, `Deno.copyFile` of data.duckdb inside the daemon silently
 * let a second process open it (verified). Never touch the file's bytes from
 * the daemon (`stat` is fine); back up with SQL (EXPORT DATABASE). Children
 * started with Deno.Command do not inherit the descriptor (close-on-exec).
 *
 * The connection turns statistics propagation off (connection.ts says why:
 * cached prepared statements). It also runs DuckDB on one thread: every
 * statement here is tiny, and a thread pool only adds hand-offs on a busy
 * two-core VM.
 *
 * `@duckdb/node-api` is imported lazily, inside `openDatabase`.
 */

import type { DuckDBConnection, DuckDBInstance } from "@duckdb/node-api";
import { basename, dirname, join, resolve } from "../path.ts";
import { OhcError } from "../errors.ts";
import { CommitQueue } from "./commit_queue.ts";
import { Connection, type Query, type Sql } from "./connection.ts";
import { migrate, type Migration } from "./migrate.ts";

export type { Exec, Query, Sql } from "./connection.ts";

/**
 * Where a store's operation runs: queued alone on the database (a
 * `Database`), or inside a batch already running (`inTransaction`).
 * "autocommit": when queued alone it needs no transaction (it writes at
 * most once, or only idempotently); "tx": it does.
 */
export interface Runner {
  run<T>(fn: (sql: Sql) => Promise<T>, mode: "tx" | "autocommit"): Promise<T>;
}

/** A runner for operations inside a running batch: they run at once. */
export function inTransaction(sql: Sql): Runner {
  return { run: (fn) => fn(sql) };
}

export interface OpenOptions {
  /** The schema: every migration of the features using this database. */
  migrations: readonly Migration[];
  /** Clock for schema_version, for tests. */
  now?: () => Date;
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
 * Opens (creating if needed, with its parent directory) a database and
 * brings its schema up to date. ":memory:" opens a private in-memory one.
 */
export async function openDatabase(
  path: string,
  opts: OpenOptions,
): Promise<Database> {
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
        `database ${key} is already open in this process`,
        "open it once and share it",
      );
    }
    openPaths.add(key); // reserved now: concurrent opens see it
  }
  try {
    return await openFresh(key, opts);
  } catch (err) {
    if (key !== null) openPaths.delete(key);
    throw err;
  }
}

async function openFresh(
  key: string | null,
  opts: OpenOptions,
): Promise<Database> {
  const { DuckDBInstance, LIST, VARCHAR } = await import("@duckdb/node-api");
  let db: DuckDBInstance;
  try {
    db = await DuckDBInstance.create(key ?? ":memory:", { threads: "1" });
  } catch (err) {
    if (isLockError(err)) {
      throw new OhcError(
        "db_locked",
        (err as Error).message,
        "only the ohcommodore daemon opens this database; go through it",
      );
    }
    throw err;
  }
  let conn: DuckDBConnection | undefined;
  try {
    conn = await db.connect();
    await conn.run("SET disabled_optimizers = 'statistics_propagation'");
    await migrate(conn, opts.migrations, opts.now);
  } catch (err) {
    conn?.closeSync();
    db.closeSync();
    throw err;
  }
  return new Database(
    key ?? ":memory:",
    db,
    new Connection(conn, LIST(VARCHAR)),
  );
}

export class Database implements Runner {
  #db: DuckDBInstance;
  #conn: Connection;
  #queue: CommitQueue;

  constructor(readonly path: string, db: DuckDBInstance, conn: Connection) {
    this.#db = db;
    this.#conn = conn;
    this.#queue = new CommitQueue(conn);
  }

  /** Runs fn alone, after every earlier operation (commit_queue.ts). */
  run<T>(fn: (sql: Sql) => Promise<T>, mode: "tx" | "autocommit"): Promise<T> {
    return this.#queue.run(() => fn(this.#conn), mode);
  }

  /**
   * Runs fn alone inside one transaction, with raw SQL that may catch a
   * statement's failure (the batch it shares a commit with is then run
   * again one by one). fn may run twice: it must not act outside the
   * database.
   */
  transaction<T>(fn: (q: Query) => Promise<T>): Promise<T> {
    return this.#queue.run(() => fn(this.#conn.query), "raw");
  }

  /** Waits for running operations, then closes (checkpointing the WAL). */
  async close(): Promise<void> {
    if (!(await this.#queue.close())) return;
    this.#conn.close();
    this.#db.closeSync();
    openPaths.delete(this.path);
  }
}
