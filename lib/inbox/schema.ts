/**
 * The inbox database's schema, as versioned migrations. `schema_version`
 * holds one row per applied migration; each migration runs once, inside one
 * transaction together with its `schema_version` row, so a crash or a failing
 * statement leaves the database at the previous version.
 *
 * Design notes (DuckDB specifics):
 * - Arrival order is a per-table sequence (`seq`), not a timestamp: created_at
 *   is the sender's clock and received_at can tie.
 * - Timestamps are ISO 8601 strings made in JS (UTC, lexically sortable); no
 *   TIMESTAMP conversion, no time zone settings involved.
 * - Outputs are BLOBs: command output is bytes, not necessarily UTF-8, and a
 *   DuckDB VARCHAR must be valid UTF-8.
 * - No secondary indexes on columns that change (status, state): DuckDB turns
 *   an UPDATE of an indexed column into delete+insert, which has had
 *   constraint quirks; these tables are small and columnar scans are cheap.
 */

import type { DuckDBConnection } from "@duckdb/node-api";
import { OhcError } from "../errors.ts";

export interface Migration {
  version: number;
  name: string;
  statements: readonly string[];
}

export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: "inbox, outbox, sent",
    statements: [
      `CREATE SEQUENCE inbox_seq START 1`,
      `CREATE TABLE inbox (
        id               VARCHAR PRIMARY KEY,
        seq              BIGINT  NOT NULL DEFAULT nextval('inbox_seq'),
        sender           VARCHAR NOT NULL,
        recipient        VARCHAR NOT NULL,
        command          VARCHAR NOT NULL,
        status           VARCHAR NOT NULL DEFAULT 'unread'
          CHECK (status IN ('unread', 'running', 'pending', 'done', 'error')),
        created_at       VARCHAR NOT NULL,
        received_at      VARCHAR NOT NULL,
        started_at       VARCHAR,
        finished_at      VARCHAR,
        exit_code        INTEGER,
        stdout           BLOB,
        stderr           BLOB,
        stdout_truncated BOOLEAN NOT NULL DEFAULT false,
        stderr_truncated BOOLEAN NOT NULL DEFAULT false,
        error            VARCHAR,
        timeout_s        DOUBLE
      )`,
      `CREATE SEQUENCE outbox_seq START 1`,
      `CREATE TABLE outbox (
        kind         VARCHAR NOT NULL CHECK (kind IN ('message', 'result')),
        id           VARCHAR NOT NULL,
        seq          BIGINT  NOT NULL DEFAULT nextval('outbox_seq'),
        recipient    VARCHAR NOT NULL,
        ship         VARCHAR NOT NULL,
        payload      VARCHAR NOT NULL,
        state        VARCHAR NOT NULL DEFAULT 'queued'
          CHECK (state IN ('queued', 'delivered')),
        attempts     INTEGER NOT NULL DEFAULT 0,
        created_at   VARCHAR NOT NULL,
        delivered_at VARCHAR,
        PRIMARY KEY (kind, id)
      )`,
      `CREATE SEQUENCE sent_seq START 1`,
      `CREATE TABLE sent (
        id               VARCHAR PRIMARY KEY,
        seq              BIGINT  NOT NULL DEFAULT nextval('sent_seq'),
        sender           VARCHAR NOT NULL,
        recipient        VARCHAR NOT NULL,
        command          VARCHAR NOT NULL,
        created_at       VARCHAR NOT NULL,
        timeout_s        DOUBLE,
        status           VARCHAR NOT NULL DEFAULT 'sent'
          CHECK (status IN ('sent', 'done', 'error')),
        exit_code        INTEGER,
        stdout           BLOB,
        stderr           BLOB,
        stdout_truncated BOOLEAN NOT NULL DEFAULT false,
        stderr_truncated BOOLEAN NOT NULL DEFAULT false,
        error            VARCHAR,
        started_at       VARCHAR,
        finished_at      VARCHAR,
        result_at        VARCHAR
      )`,
    ],
  },
  {
    version: 2,
    name: "voyage queue (flagship): voyages, tasks, task_events, voyage_ships",
    statements: [
      `CREATE TABLE voyages (
        id            VARCHAR PRIMARY KEY,
        name          VARCHAR,
        state         VARCHAR NOT NULL
          CHECK (state IN ('planning', 'running', 'complete', 'verified', 'failed', 'sunk')),
        plan_dir      VARCHAR NOT NULL,
        bare          VARCHAR NOT NULL,
        branch        VARCHAR NOT NULL,
        repo          VARCHAR,
        agent         VARCHAR NOT NULL,
        agent_command VARCHAR,
        objective     VARCHAR NOT NULL,
        max_attempts  INTEGER NOT NULL,
        lease_s       DOUBLE  NOT NULL,
        created_at    VARCHAR NOT NULL,
        finished_at   VARCHAR,
        verify_code   INTEGER,
        verify_output VARCHAR
      )`,
      `CREATE TABLE tasks (
        voyage_id   VARCHAR NOT NULL,
        id          VARCHAR NOT NULL,
        ord         INTEGER NOT NULL,
        subject     VARCHAR NOT NULL,
        description VARCHAR NOT NULL,
        acceptance  VARCHAR,
        command     VARCHAR,
        blocked_by  VARCHAR NOT NULL,
        status      VARCHAR NOT NULL
          CHECK (status IN ('pending', 'running', 'done', 'failed')),
        ship        VARCHAR,
        attempts    INTEGER NOT NULL DEFAULT 0,
        lease_until VARCHAR,
        started_at  VARCHAR,
        finished_at VARCHAR,
        commit_sha  VARCHAR,
        error       VARCHAR,
        conflict    VARCHAR,
        side_branch VARCHAR,
        PRIMARY KEY (voyage_id, id)
      )`,
      `CREATE SEQUENCE task_events_seq START 1`,
      `CREATE TABLE task_events (
        seq       BIGINT NOT NULL DEFAULT nextval('task_events_seq'),
        voyage_id VARCHAR NOT NULL,
        task_id   VARCHAR,
        ship      VARCHAR,
        event     VARCHAR NOT NULL,
        detail    VARCHAR,
        at_time   VARCHAR NOT NULL
      )`,
      `CREATE TABLE voyage_ships (
        voyage_id       VARCHAR NOT NULL,
        ship            VARCHAR NOT NULL,
        state           VARCHAR NOT NULL,
        current_task    VARCHAR,
        task_started_at VARCHAR,
        last_heartbeat  VARCHAR,
        PRIMARY KEY (voyage_id, ship)
      )`,
    ],
  },
  {
    version: 3,
    name: "sent messages and finished messages are their own outbox entries",
    // A message this machine sends is queued while its sent row has a hop
    // and no delivered_at; the result of a message it ran, while its inbox
    // row has a result_hop and no result_delivered_at. One insert (or one
    // update) per message instead of a second row in the outbox, which now
    // holds only what the flagship stores on its way between two ships.
    //
    // The tables are rebuilt, not altered: DuckDB 1.5 cannot replay an
    // ALTER TABLE ... ADD COLUMN on a table with a nextval() default from
    // the WAL ("GetDefaultDatabase with no default database set"), so a
    // crash before the next checkpoint would leave a database that no
    // longer opens (reproduced by the SIGKILL test in store_test.ts).
    statements: [
      `CREATE TABLE inbox_v3 (
        id               VARCHAR PRIMARY KEY,
        seq              BIGINT  NOT NULL DEFAULT nextval('inbox_seq'),
        sender           VARCHAR NOT NULL,
        recipient        VARCHAR NOT NULL,
        command          VARCHAR NOT NULL,
        status           VARCHAR NOT NULL DEFAULT 'unread'
          CHECK (status IN ('unread', 'running', 'pending', 'done', 'error')),
        created_at       VARCHAR NOT NULL,
        received_at      VARCHAR NOT NULL,
        started_at       VARCHAR,
        finished_at      VARCHAR,
        exit_code        INTEGER,
        stdout           BLOB,
        stderr           BLOB,
        stdout_truncated BOOLEAN NOT NULL DEFAULT false,
        stderr_truncated BOOLEAN NOT NULL DEFAULT false,
        error            VARCHAR,
        timeout_s        DOUBLE,
        result_hop          VARCHAR,
        result_delivered_at VARCHAR
      )`,
      `INSERT INTO inbox_v3 SELECT *, NULL, NULL FROM inbox`,
      `DROP TABLE inbox`,
      `ALTER TABLE inbox_v3 RENAME TO inbox`,
      `CREATE TABLE sent_v3 (
        id               VARCHAR PRIMARY KEY,
        seq              BIGINT  NOT NULL DEFAULT nextval('sent_seq'),
        sender           VARCHAR NOT NULL,
        recipient        VARCHAR NOT NULL,
        command          VARCHAR NOT NULL,
        created_at       VARCHAR NOT NULL,
        timeout_s        DOUBLE,
        status           VARCHAR NOT NULL DEFAULT 'sent'
          CHECK (status IN ('sent', 'done', 'error')),
        exit_code        INTEGER,
        stdout           BLOB,
        stderr           BLOB,
        stdout_truncated BOOLEAN NOT NULL DEFAULT false,
        stderr_truncated BOOLEAN NOT NULL DEFAULT false,
        error            VARCHAR,
        started_at       VARCHAR,
        finished_at      VARCHAR,
        result_at        VARCHAR,
        hop              VARCHAR,
        delivered_at     VARCHAR
      )`,
      `INSERT INTO sent_v3 SELECT *, NULL, NULL FROM sent`,
      `DROP TABLE sent`,
      `ALTER TABLE sent_v3 RENAME TO sent`,
    ],
  },
  {
    version: 4,
    name: "voyage model; task_attempts: each attempt's outcome, cost and usage",
    // voyages has no nextval() default, so ADD COLUMN replays from the WAL
    // (see version 3).
    statements: [
      `ALTER TABLE voyages ADD COLUMN model VARCHAR`,
      `CREATE TABLE task_attempts (
        voyage_id   VARCHAR NOT NULL,
        task_id     VARCHAR NOT NULL,
        attempt     INTEGER NOT NULL,
        ship        VARCHAR,
        started_at  VARCHAR,
        finished_at VARCHAR NOT NULL,
        outcome     VARCHAR NOT NULL,
        error       VARCHAR,
        cost_usd    DOUBLE,
        usage       VARCHAR,
        model       VARCHAR,
        turns       INTEGER,
        duration_ms BIGINT,
        session_id  VARCHAR,
        api_retries INTEGER,
        PRIMARY KEY (voyage_id, task_id, attempt)
      )`,
    ],
  },
  {
    version: 5,
    name: "tasks.attempts_before: a retried task's attempt limit counts anew",
    // tasks has no nextval() default, so ADD COLUMN replays from the WAL
    // (see version 3).
    statements: [
      `ALTER TABLE tasks ADD COLUMN attempts_before INTEGER DEFAULT 0`,
    ],
  },
];

/** The version this code writes and understands. */
export const SCHEMA_VERSION: number = MIGRATIONS[MIGRATIONS.length - 1].version;

/** The highest applied version; 0 for a fresh database. */
export async function schemaVersion(conn: DuckDBConnection): Promise<number> {
  await ensureVersionTable(conn);
  const reader = await conn.runAndReadAll(
    "SELECT coalesce(max(version), 0) AS v FROM schema_version",
  );
  return Number(reader.getRowObjects()[0].v);
}

/**
 * Brings the database up to the latest migration. Returns the versions it
 * applied (empty when the database was already current). A database written
 * by a newer ohcommodore is refused rather than guessed at.
 */
export async function migrate(
  conn: DuckDBConnection,
  migrations: readonly Migration[] = MIGRATIONS,
  now: () => Date = () => new Date(),
): Promise<number[]> {
  const current = await schemaVersion(conn);
  const latest = migrations.length
    ? migrations[migrations.length - 1].version
    : 0;
  if (current > latest) {
    throw new OhcError(
      "schema_too_new",
      `inbox database is at schema version ${current}, newer than this ohcommodore understands (${latest})`,
      "upgrade ohcommodore on this machine",
    );
  }
  const applied: number[] = [];
  for (const m of migrations) {
    if (m.version <= current) continue;
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
        `inbox schema migration ${m.version} (${m.name}) failed: ${
          reason.split("\n")[0]
        }`,
      );
    }
    applied.push(m.version);
  }
  return applied;
}

async function ensureVersionTable(conn: DuckDBConnection): Promise<void> {
  await conn.run(`CREATE TABLE IF NOT EXISTS schema_version (
    version    INTEGER PRIMARY KEY,
    name       VARCHAR NOT NULL,
    applied_at VARCHAR NOT NULL
  )`);
}
