/**
 * The voyage queue's tables (voyages, tasks, task_events, voyage_ships,
 * task_attempts) on the flagship daemon's database, as versioned
 * migrations (lib/db/migrate.ts). Versions are one numbering with the
 * inbox's (lib/inbox/schema.ts, whose notes on DuckDB hold here too): take
 * the next free one across both. Until these lists were split, all were
 * one list; a database made then holds the same versions and opens.
 */
import type { Migration } from "../../db/migrate.ts";

export const VOYAGE_MIGRATIONS: readonly Migration[] = [
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
    version: 4,
    name: "voyage model; task_attempts: each attempt's outcome, cost and usage",
    // voyages has no nextval() default, so ADD COLUMN replays from the WAL
    // (see version 3 in lib/inbox/schema.ts).
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
    // (see version 3 in lib/inbox/schema.ts).
    statements: [
      `ALTER TABLE tasks ADD COLUMN attempts_before INTEGER DEFAULT 0`,
    ],
  },
];
