/**
 * How the inbox tables insert: they look the keys up first, and insert
 * many rows in one statement over list parameters.
 */
import type { Sql } from "../db/database.ts";
import { type Param, str } from "../db/values.ts";

/**
 * Inserts rows of VARCHAR columns (and one optional DOUBLE column): one
 * row as VALUES, more as one statement over list parameters (a list
 * costs ~1 ms to bind, a row ~0.1 ms to insert that way).
 */
export async function insertRows(
  sql: Sql,
  table: "inbox" | "outbox",
  columns: string[],
  rows: string[][],
  double?: { column: string; values: (number | null)[] },
): Promise<void> {
  const cols = double ? [...columns, double.column] : columns;
  if (rows.length === 1) {
    const marks = cols.map((_, i) => `$${i + 1}`).join(", ");
    await sql.exec(
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
  await sql.exec(
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
export async function existingIds(
  sql: Sql,
  table: "inbox" | "sent",
  ids: string[],
): Promise<Set<string>> {
  const rows = ids.length === 1
    ? await sql.query(`SELECT id FROM ${table} WHERE id = $1`, ids)
    : await sql.query(
      `SELECT id FROM ${table} WHERE id IN (SELECT unnest($1::VARCHAR[]))`,
      [ids],
    );
  return new Set(rows.map((r) => str(r.id)));
}

/** Ids of `table` starting with `prefix`, at most `limit`, sorted. */
export async function idsStartingWith(
  sql: Sql,
  table: "inbox" | "sent",
  prefix: string,
  limit: number,
): Promise<string[]> {
  const rows = await sql.query(
    `SELECT id FROM ${table} WHERE starts_with(id, $1) ORDER BY id LIMIT $2`,
    [prefix, limit],
  );
  return rows.map((r) => str(r.id));
}
