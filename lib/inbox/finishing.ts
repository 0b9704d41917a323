/**
 * How a message finishes: its outcome (outputs bounded) stored on its row,
 * its result queued for the next hop on that same row, and for the
 * scheduler the next message claimed in the same statement.
 */
import { OhcError } from "../errors.ts";
import type { Sql } from "../db/database.ts";
import { str } from "../db/values.ts";
import { bound, MSG_COLS_NO_OUTPUT, toMessage } from "./rows.ts";
import { bytesToBase64, type FinishInput, type Message } from "./types.ts";

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

/**
 * The scheduler's step, in one statement: finishes `id` (finished: null,
 * never a throw, if it is not running), queues its result for `resultHop`
 * (the row is then the result's outbox entry) and claims `next` if it is
 * still unread.
 */
export async function complete(
  sql: Sql,
  id: string,
  result: FinishArgs,
  opts: {
    running?: Message;
    resultHop?: string | null;
    next?: Message | null;
  },
  max: number,
  now: string,
): Promise<{ finished: Message | null; claimed: Message | null }> {
  if (result.status !== "done" && result.status !== "error") {
    throw new OhcError(
      "invalid_status",
      `a message finishes as done or error, not '${result.status}'`,
    );
  }
  const outcome = outcomeOf(result, max, now);
  const at = outcome.finished_at;
  const next = opts.next ?? null;
  // One row finishes and another starts: each column takes the finished
  // row's new value or keeps (or, for started_at, sets) the other's.
  const mine = (col: string, param: string) =>
    `${col} = CASE WHEN id = $1 THEN ${param} ELSE ${col} END`;
  const changed = await sql.exec(
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
    const rows = await sql.query(
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
        opts.running ?? (await withoutOutput(sql, id))!,
        result,
        outcome,
      )
      : null,
    claimed: claimed && next
      ? { ...next, status: "running", started_at: at }
      : null,
  };
}

/**
 * complete for many messages started ahead of the database (running, or
 * still unread there), without claims, in one statement; those that
 * finished (not those deleted or handled meanwhile).
 */
export async function completeMany(
  sql: Sql,
  items: Finished[],
  max: number,
  now: string,
): Promise<Message[]> {
  if (items.length === 0) return [];
  const done = items.map(({ running, result }) =>
    finishedMessage(
      running,
      result,
      outcomeOf(result, max, now),
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
  const changed = await sql.exec(
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
  const back = await sql.query(
    `SELECT id, finished_at FROM inbox
     WHERE id IN (SELECT unnest($1::VARCHAR[]))`,
    [done.map((m) => m.id)],
  );
  const fin = new Map(back.map((r) => [str(r.id), r.finished_at]));
  return done.filter((m) => fin.get(m.id) === m.finished_at);
}

/** A message without its outputs (the cheap read after an update). */
async function withoutOutput(sql: Sql, id: string): Promise<Message | null> {
  const rows = await sql.query(
    `SELECT ${MSG_COLS_NO_OUTPUT} FROM inbox WHERE id = $1`,
    [id],
  );
  return rows.length ? toMessage(rows[0]) : null;
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
