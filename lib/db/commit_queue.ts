/**
 * The write queue: every operation on a database runs alone, after every
 * earlier one, so each is atomic with respect to the others (a claim cannot
 * hand the same row to two callers) and no caller's statement lands in
 * another's transaction.
 *
 * Group commit: every operation that queued up while the last commit was
 * being flushed runs in one transaction, so they share one WAL flush (a
 * commit costs ~1.5 ms here, a statement ~0.3). If any of them fails, the
 * batch is rolled back and each runs again in its own transaction, so an
 * operation still commits or fails on its own. An operation may therefore
 * run twice: it must not act outside the database.
 */
import { OhcError } from "../errors.ts";
import type { Connection } from "./connection.ts";

/**
 * How an operation runs when nothing else is queued with it: in a
 * transaction; alone in autocommit (it writes at most once, or only
 * idempotently, so it needs none: a commit and two statements saved); or as
 * raw SQL, which may catch a statement's failure.
 */
export type OpMode = "tx" | "autocommit" | "raw";

interface PendingOp {
  fn: () => Promise<unknown>;
  mode: OpMode;
  resolve: (v: unknown) => void;
  reject: (e: unknown) => void;
}

export class CommitQueue {
  #conn: Connection;
  #pending: PendingOp[] = [];
  #pumping = false;
  #closed = false;

  constructor(conn: Connection) {
    this.#conn = conn;
  }

  /** Runs fn after every earlier operation has finished. */
  run<T>(fn: () => Promise<T>, mode: OpMode): Promise<T> {
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
   * Waits for every queued operation, then refuses new ones. False if it
   * was closed already.
   */
  async close(): Promise<boolean> {
    if (this.#closed) return false;
    await this.run(() => Promise.resolve(), "tx").catch(() => {}); // drain
    if (this.#closed) return false;
    this.#closed = true;
    return true;
  }

  async #pump(): Promise<void> {
    this.#pumping = true;
    try {
      while (this.#pending.length > 0) {
        const batch = this.#pending.splice(0, this.#pending.length);
        if (this.#closed) {
          const e = new OhcError("db_closed", "the database is closed");
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
      await this.#conn.exec("BEGIN TRANSACTION");
      for (const op of batch) results.push(await op.fn());
      // DuckDB aborts a transaction on any failed statement, and COMMIT then
      // reports success while committing nothing. An operation that caught
      // its own error would take the whole batch down silently: this probe
      // fails in an aborted transaction, so the batch is retried one by one.
      // The stores' own operations never catch one; raw SQL might.
      if (batch.some((op) => op.mode === "raw")) {
        await this.#conn.query("SELECT 1");
      }
      await this.#conn.exec("COMMIT");
    } catch (e) {
      await this.#conn.runQuietly("ROLLBACK");
      if (single) batch[0].reject(e);
      return false;
    }
    batch.forEach((op, i) => op.resolve(results[i]));
    return true;
  }
}
