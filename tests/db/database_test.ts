/**
 * The database layer against real DuckDB: migrations split by feature, and
 * a database made by an older ohcommodore still opening.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { OhcError } from "../../lib/errors.ts";
import { openDatabase } from "../../lib/db/database.ts";
import { mergeMigrations, type Migration } from "../../lib/db/migrate.ts";
import {
  MACHINE_MIGRATIONS,
  openMachineDatabase,
} from "../../lib/daemon/database.ts";
import { InboxStore } from "../../lib/inbox/store.ts";
import { VoyageQueue } from "../../lib/voyage/flagship/queue.ts";

const FIXTURE = new URL("../fixtures/db/v4.duckdb.gz", import.meta.url);

/** The fixture, unpacked into a fresh directory: its data.duckdb path. */
async function unpackFixture(dir: string): Promise<string> {
  const path = join(dir, "data.duckdb");
  const src = await Deno.open(FIXTURE);
  const out = await Deno.open(path, { write: true, createNew: true });
  await src.readable.pipeThrough(new DecompressionStream("gzip")).pipeTo(
    out.writable,
  );
  return path;
}

Deno.test("a database made by the old code (schema 4, one migration list) opens with every row, and works on", async () => {
  // tests/fixtures/db/v4.duckdb.gz was written by main at b070875, before
  // lib/db existed (scratch script in the commit message): two messages
  // (one done, its result queued for alpha), two sent (one queued for the
  // flagship, one with its result), a stored outbox entry, and a voyage of
  // two tasks, the first done with its attempt's cost.
  const dir = await Deno.makeTempDir({ prefix: "db_old_" });
  try {
    const path = await unpackFixture(dir);
    const db = await openMachineDatabase(path);
    const s = new InboxStore(db);
    try {
      const m1 = (await s.inbox.get("m1"))!;
      assert.equal(m1.status, "done");
      assert.equal(new TextDecoder().decode(m1.stdout!), "one\n");
      assert.equal((await s.inbox.get("m2"))?.timeout_s, 30);
      assert.equal((await s.sent.get("s2"))?.status, "done");
      assert.deepEqual(
        (await s.outbox.queued()).map((o) => `${o.kind}:${o.id}:${o.ship}`),
        ["message:o1:delta", "message:s1:flagship", "result:m1:alpha"],
      );
      const q = new VoyageQueue(db);
      assert.equal((await q.get("v1"))?.objective, "fixture");
      const tasks = await q.tasksWithRuns("v1");
      assert.deepEqual(tasks.map((t) => [t.id, t.status]), [
        ["1", "done"],
        ["2", "pending"],
      ]);
      assert.equal(tasks[0].runs[0].cost_usd, 0.5);
      // The voyage queue's own migration list took it on from version 4.
      const versions = await db.run(
        (sql) => sql.query("SELECT version FROM schema_version ORDER BY 1"),
        "autocommit",
      );
      assert.deepEqual(
        versions.map((r) => r.version),
        MACHINE_MIGRATIONS.map((m) => m.version),
      );
      assert.equal(tasks[1].attempts_before, 0);
      // It works on: new rows land beside the old ones.
      assert.equal((await q.claim("v1", "alpha"))?.id, "2");
      await s.inbox.insert({
        id: "m3",
        sender: "captain@a",
        recipient: "captain@b",
        command: "echo three",
      });
      assert.deepEqual((await s.inbox.list()).map((m) => m.id), [
        "m3",
        "m2",
        "m1",
      ]);
    } finally {
      await db.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

const table = (version: number, name: string): Migration => ({
  version,
  name,
  statements: [`CREATE TABLE ${name} (a INTEGER)`],
});

Deno.test("migration lists merge in version order; two migrations of one version are refused", () => {
  const a = [table(1, "a1"), table(3, "a3")];
  const b = [table(2, "b2"), table(4, "b4")];
  assert.deepEqual(mergeMigrations(a, b).map((m) => m.version), [1, 2, 3, 4]);
  assert.throws(
    () => mergeMigrations(a, [table(3, "b3")]),
    (e: unknown) =>
      e instanceof OhcError && e.code === "migration_conflict" &&
      /version 3: 'a3' and 'b3'/.test(e.message),
  );
});

Deno.test("a database opened with one feature's migrations gains another's later; a version it does not know is refused", async () => {
  const dir = await Deno.makeTempDir({ prefix: "db_mig_" });
  const path = join(dir, "data.duckdb");
  const inbox = [table(1, "a1"), table(3, "a3")];
  const voyage = [table(2, "b2"), table(4, "b4")];
  try {
    let db = await openDatabase(path, { migrations: inbox });
    await db.close();
    db = await openDatabase(path, {
      migrations: mergeMigrations(inbox, voyage),
    });
    const rows = await db.run(
      (sql) => sql.query("SELECT version FROM schema_version ORDER BY version"),
      "autocommit",
    );
    assert.deepEqual(rows.map((r) => r.version), [1, 2, 3, 4]);
    await db.close();
    await assert.rejects(
      openDatabase(path, { migrations: inbox }),
      (e: unknown) =>
        e instanceof OhcError && e.code === "schema_too_new" &&
        /schema version 4, newer than this ohcommodore understands \(3\)/
          .test(e.message),
    );
    // The refusal released the file: it opens again.
    db = await openDatabase(path, { migrations: [...inbox, ...voyage] });
    await db.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
