/**
 * Versioned migrations. `schema_version` holds one row per applied
 * migration; each runs once, inside one transaction together with its
 * `schema_version` row, so a crash or a failing statement leaves the
 * database as it was before that migration.
 *
 * Each feature keeps its own list (the inbox's, the voyage queue's), and a
 * database is opened with the lists of the features that use it. Versions
 * are one numbering across all lists (a database made before the lists were
 * split holds 1..4 in one sequence, and must open): a migration runs when
 * its version is not applied yet, in version order, so a feature's later
 * migration always follows its earlier ones.
 */

import type { DuckDBConnection } from "@duckdb/node-api";
import { OhcError } from "../errors.ts";

export interface Migration {
  version: number;
  name: string;
  statements: readonly string[];
}

/** The versions applied to this database, ascending. */
export async function appliedVersions(
  conn: DuckDBConnection,
): Promise<number[]> {
  await conn.run(`CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    applied_at VARCHAR NOT NULL
  )`);
  const reader = await conn.runAndReadAll(
    "SELECT version FROM schema_version ORDER BY version",
  );
  return reader.getRowObjects().map((r) => Number(r.version));
}

/** The lists of several features as one, in version order. */
export function mergeMigrations(
  ...lists: (readonly Migration[])[]
): Migration[] {
  const all = lists.flat().sort((a, b) => a.version - b.version);
  for (let i = 1; i < all.length; i++) {
    if (all[i].version === all[i - 1].version) {
      throw new OhcError(
        "migration_conflict",
        `two migrations have version ${all[i].version}: ` +
          `'${all[i - 1].name}' and '${all[i].name}'`,
        "give the newer one the next free version",
      );
    }
  }
  return all;
}

/**
 * Applies every migration of `migrations` not applied yet, in version
 * order. Returns the versions it applied (empty when the database was
 * already current). A database holding a version this code does not know
 * was written by a newer ohcommodore: refused rather than guessed at.
 */
export async function migrate(
  conn: DuckDBConnection,
  migrations: readonly Migration[],
  now: () => Date = () => new Date(),
): Promise<number[]> {
  const ordered = mergeMigrations(migrations);
  const done = new Set(await appliedVersions(conn));
  const known = new Set(ordered.map((m) => m.version));
  const unknown = [...done].filter((v) => !known.has(v));
  if (unknown.length > 0) {
    throw new OhcError(
      "schema_too_new",
      `database is at schema version ${Math.max(...done)}, newer than ` +
        `this ohcommodore understands (${ordered.at(-1)?.version ?? 0})`,
      "upgrade ohcommodore on this machine",
    );
  }
  const applied: number[] = [];
  for (const m of ordered) {
    if (done.has(m.version)) continue;
    await conn.run("BEGIN TRANSACTION");
    try {
      for (const sql of m.statements) await conn.run(sql);
      await conn.run(
        "INSERT INTO schema_version (version, name, applied_at) VALUES ($1, $2, $3)",
        [m.version, m.name, now().toISOString()],
      );
      await conn.run("COMMIT");
    } catch (err) {
      await conn.run("ROLLBACK").catch(() => {});
      const reason = err instanceof Error ? err.message : String(err);
      throw new OhcError(
        "migration_failed",
        `schema migration ${m.version} (${m.name}) failed: ${
          reason.split("\n")[0]
        }`,
      );
    }
    applied.push(m.version);
  }
  return applied;
}
