/**
 * The inbox's tables (inbox, outbox, sent), as versioned migrations
 * (lib/db/migrate.ts). Versions are one numbering with the voyage queue's
 * (lib/voyage/flagship/queue_schema.ts): take the next free one across both.
 *
 * Design notes (DuckDB specifics, for every table on the database):
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

import type { Migration } from "../db/migrate.ts";

export const INBOX_MIGRATIONS: readonly Migration[] = [
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
];
