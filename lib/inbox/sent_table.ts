/**
 * The `sent` table: the messages this machine sent, with their results
 * once back. A sent row with a `hop` and no `delivered_at` is its
 * message's outbox entry (outbox.ts).
 *
 * Each method is one operation on the database's write queue (or a step of
 * an `InboxStore.batch`); see inbox_table.ts.
 */
import { OhcError } from "../errors.ts";
import type { Runner } from "../db/database.ts";
import { checkLimit, validateEnvelope } from "./checks.ts";
import { existingIds, idsStartingWith } from "./inserts.ts";
import { bound, SENT_COLS, toSent } from "./rows.ts";
import type { Envelope, MessageResult, SentRecord } from "./types.ts";

export class SentTable {
  #db: Runner;
  #max: number;
  #now: () => Date;

  constructor(db: Runner, maxOutputBytes: number, now: () => Date) {
    this.#db = db;
    this.#max = maxOutputBytes;
    this.#now = now;
  }

  /**
   * Records a message this machine sends. Idempotent on id (`fresh`: the
   * caller just made the id up). With a `hop`, the sent row is also the
   * message's outbox entry, queued for that machine until markDelivered.
   */
  record(
    msg: Envelope,
    opts: { fresh?: boolean; hop?: string | null } = {},
  ): Promise<{ inserted: boolean }> {
    return this.#db.run(async (sql) => {
      const m = validateEnvelope(msg, this.#now().toISOString());
      if (!opts.fresh && (await existingIds(sql, "sent", [m.id])).size > 0) {
        return { inserted: false };
      }
      await sql.exec(
        `INSERT INTO sent (id, sender, recipient, command, created_at,
           timeout_s, hop)
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
    }, "autocommit");
  }

  /**
   * Stores the result of a sent message. The first result wins: false if the
   * id is unknown or already has its result.
   */
  recordResult(
    id: string,
    result: Omit<MessageResult, "id">,
  ): Promise<boolean> {
    return this.#db.run(async (sql) => {
      if (result.status !== "done" && result.status !== "error") {
        throw new OhcError(
          "invalid_status",
          `a result is done or error, not '${result.status}'`,
        );
      }
      const out = bound(result.stdout, this.#max);
      const err = bound(result.stderr, this.#max);
      const changed = await sql.exec(
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
          this.#now().toISOString(),
        ],
      );
      return changed === 1;
    }, "autocommit");
  }

  get(id: string): Promise<SentRecord | null> {
    return this.#db.run(async (sql) => {
      const rows = await sql.query(
        `SELECT ${SENT_COLS} FROM sent WHERE id = $1`,
        [id],
      );
      return rows.length ? toSent(rows[0]) : null;
    }, "autocommit");
  }

  /** Newest first. */
  list(opts: { limit?: number } = {}): Promise<SentRecord[]> {
    return this.#db.run(async (sql) => {
      checkLimit(opts.limit);
      const rows = opts.limit === undefined
        ? await sql.query(`SELECT ${SENT_COLS} FROM sent ORDER BY seq DESC`)
        : await sql.query(
          `SELECT ${SENT_COLS} FROM sent ORDER BY seq DESC LIMIT $1`,
          [opts.limit],
        );
      return rows.map(toSent);
    }, "autocommit");
  }

  /** Ids that start with `prefix` (at most `limit`): typed short ids. */
  idsStartingWith(prefix: string, limit: number): Promise<string[]> {
    return this.#db.run(
      (sql) => idsStartingWith(sql, "sent", prefix, limit),
      "autocommit",
    );
  }
}
