/**
 * What waits to leave this machine. Mostly rows of the other two tables: a
 * sent row with a hop is its message's outbox entry, a finished inbox row
 * with a result_hop its result's (schema version 3); the `outbox` table
 * holds what the flagship stores on its way between two ships, and
 * bounces.
 *
 * Each method is one operation on the database's write queue (or a step of
 * an `InboxStore.batch`); see inbox_table.ts.
 */
import { OhcError } from "../errors.ts";
import type { Runner } from "../db/database.ts";
import { num, str } from "../db/values.ts";
import { insertRows } from "./inserts.ts";
import {
  MSG_COLS,
  OUTBOX_COLS,
  resultAsOutbox,
  SENT_COLS,
  sentAsOutbox,
  toOutbox,
} from "./rows.ts";
import type { NewOutboxEntry, OutboxEntry, OutboxKind } from "./types.ts";

export interface OutboxKey {
  kind: OutboxKind;
  id: string;
}

/**
 * Where entries wait (see the header): what each table's queued rows are,
 * the column naming the machine they go to next, and what a listing reads.
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

export class Outbox {
  #db: Runner;
  #now: () => Date;

  constructor(db: Runner, now: () => Date) {
    this.#db = db;
    this.#now = now;
  }

  /** Idempotent on (kind, id). */
  async enqueue(entry: NewOutboxEntry): Promise<{ inserted: boolean }> {
    return { inserted: (await this.enqueueMany([entry])).length === 1 };
  }

  /**
   * enqueue for many, in order, in two statements (one when `fresh`: the
   * caller knows no entry exists yet); the entries inserted.
   */
  enqueueMany(
    entries: NewOutboxEntry[],
    opts: { fresh?: boolean } = {},
  ): Promise<NewOutboxEntry[]> {
    return this.#db.run(async (sql) => {
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
          ? await sql.query("SELECT kind, id FROM outbox WHERE id = $1", [
            entries[0].id,
          ])
          : await sql.query(
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
      const now = this.#now().toISOString();
      await insertRows(
        sql,
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
    }, "autocommit");
  }

  /**
   * Queued entries: the outbox's, then this machine's sent messages, then
   * the results of messages it ran, each in order (so each sender's order
   * is kept: a sender's messages are all in one of them).
   */
  queued(ship?: string): Promise<OutboxEntry[]> {
    return this.#db.run(async (sql) => {
      // One after the other: statements on one connection do not overlap.
      const rows = async (q: keyof typeof QUEUES) =>
        await sql.query(
          `SELECT ${QUEUES[q].cols} FROM ${QUEUES[q].table}
           WHERE ${queuedWhere(q, ship)} ORDER BY seq`,
          ship === undefined ? [] : [ship],
        );
      return [
        ...(await rows("outbox")).map(toOutbox),
        ...(await rows("sent")).map(sentAsOutbox),
        ...(await rows("results")).map(resultAsOutbox),
      ];
    }, "autocommit");
  }

  /** How many of the keys are known entries; marking twice is harmless. */
  markDelivered(keys: OutboxKey[]): Promise<number> {
    return this.#db.run(async (sql) => {
      let known = 0;
      const at = this.#now().toISOString();
      for (const kind of ["message", "result"] as const) {
        const ids = keys.filter((k) => k.kind === kind).map((k) => k.id);
        if (ids.length === 0) continue;
        // Where an entry of this kind may live: its own record (always, on a
        // ship), or the outbox (what the flagship stored on its way, and
        // entries from before schema version 3).
        const own = await sql.exec(
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
        known += await sql.exec(
          `UPDATE outbox SET state = 'delivered',
             delivered_at = coalesce(delivered_at, $1)
           WHERE kind = $2 AND id IN (SELECT unnest($3::VARCHAR[]))`,
          [at, kind, ids],
        );
      }
      return known;
    }, "autocommit");
  }

  /** Counts a delivery attempt; returns the new count, or null if unknown. */
  noteAttempt(
    id: string,
    kind: OutboxKind = "message",
  ): Promise<number | null> {
    return this.#db.run(async (sql) => {
      const rows = await sql.query(
        `UPDATE outbox SET attempts = attempts + 1
         WHERE kind = $1 AND id = $2 RETURNING attempts`,
        [kind, id],
      );
      return rows.length ? num(rows[0].attempts) : null;
    }, "autocommit");
  }

  countQueued(ship?: string): Promise<number> {
    return this.#db.run(async (sql) => {
      const counts = (["outbox", "sent", "results"] as const).map((q) =>
        `(SELECT count(*) FROM ${QUEUES[q].table} WHERE ${
          queuedWhere(q, ship)
        })`
      );
      const rows = await sql.query(
        `SELECT ${counts.join(" + ")} AS n`,
        ship === undefined ? [] : [ship],
      );
      return num(rows[0].n);
    }, "autocommit");
  }
}
