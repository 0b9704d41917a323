/**
 * The inbox's store: its three tables on the machine's database
 * (lib/db/database.ts), each with its own operations: `inbox` (messages
 * this machine runs, inbox_table.ts), `sent` (messages it sent, with their
 * results, sent_table.ts) and `outbox` (what waits to leave the machine,
 * outbox.ts). Each operation runs alone on the database's write queue;
 * `batch` runs several in one transaction.
 *
 * `@duckdb/node-api` is imported lazily, when a database is opened.
 */

import { OhcError } from "../errors.ts";
import {
  type Database,
  inTransaction,
  openDatabase,
  type Sql,
} from "../db/database.ts";
import { InboxTable } from "./inbox_table.ts";
import { Outbox } from "./outbox.ts";
import { INBOX_MIGRATIONS } from "./schema.ts";
import { SentTable } from "./sent_table.ts";

export const DEFAULT_MAX_OUTPUT_BYTES = 64 * 1024;

export interface StoreOptions {
  /** Bound on stored stdout and on stored stderr, each (default 64 KiB). */
  maxOutputBytes?: number;
  /** Clock, for tests. */
  now?: () => Date;
}

/** The inbox's tables, as a batch's steps see them. */
export interface InboxTables {
  readonly inbox: InboxTable;
  readonly sent: SentTable;
  readonly outbox: Outbox;
}

/**
 * Opens (creating if needed, with its parent directory) a database holding
 * the inbox's tables only, and brings its schema up to date: for tests and
 * benches. ":memory:" opens a private in-memory one. Closing the store
 * closes the database.
 */
export async function openStore(
  path: string,
  opts: StoreOptions = {},
): Promise<InboxStore> {
  const max = checkMax(opts.maxOutputBytes);
  const db = await openDatabase(path, {
    migrations: INBOX_MIGRATIONS,
    now: opts.now,
  });
  return new InboxStore(db, { ...opts, maxOutputBytes: max }, true);
}

function checkMax(max = DEFAULT_MAX_OUTPUT_BYTES): number {
  if (!Number.isSafeInteger(max) || max < 0) {
    throw new OhcError(
      "invalid_option",
      `maxOutputBytes must be a non-negative integer, got ${max}`,
    );
  }
  return max;
}

export class InboxStore implements InboxTables {
  readonly inbox: InboxTable;
  readonly sent: SentTable;
  readonly outbox: Outbox;
  /** Bound on stored stdout and on stored stderr, each. */
  readonly maxOutputBytes: number;
  #db: Database;
  #batchSql: Sql | null = null;
  #batchTables: InboxTables | null = null;
  #owned: boolean;
  #now: () => Date;

  /** The store on `db`; `owned`: closing the store closes the database. */
  constructor(db: Database, opts: StoreOptions = {}, owned = false) {
    this.#db = db;
    this.#owned = owned;
    this.maxOutputBytes = checkMax(opts.maxOutputBytes);
    this.#now = opts.now ?? (() => new Date());
    ({ inbox: this.inbox, sent: this.sent, outbox: this.outbox } = this
      .#tables(db));
  }

  get path(): string {
    return this.#db.path;
  }

  #tables(
    runner: ConstructorParameters<typeof InboxTable>[0],
  ): InboxTables {
    return {
      inbox: new InboxTable(runner, this.maxOutputBytes, this.#now),
      sent: new SentTable(runner, this.maxOutputBytes, this.#now),
      outbox: new Outbox(runner, this.#now),
    };
  }

  /**
   * Runs fn alone (after every earlier operation) inside one transaction,
   * with the tables' operations: what it does commits together or not at
   * all. fn may be run again after a rollback (group commit), so it must
   * not act outside the database; act once the returned promise resolves,
   * when the transaction has committed. `writesOnce`: fn writes at most
   * once, so queued alone it runs in autocommit.
   */
  batch<T>(
    fn: (tx: InboxTables) => Promise<T>,
    opts: { writesOnce?: boolean } = {},
  ): Promise<T> {
    return this.#db.run(
      (sql) => fn(this.#inBatch(sql)),
      opts.writesOnce ? "autocommit" : "tx",
    );
  }

  /** The tables for a batch's steps, made once per connection. */
  #inBatch(sql: Sql): InboxTables {
    if (this.#batchSql !== sql) {
      this.#batchTables = this.#tables(inTransaction(sql));
      this.#batchSql = sql;
    }
    return this.#batchTables!;
  }

  /** Waits for running operations, then closes the database if it owns it. */
  async close(): Promise<void> {
    if (this.#owned) await this.#db.close();
  }
}
