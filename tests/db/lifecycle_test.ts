/**
 * The database under the inbox store against real DuckDB (no mocks):
 * migrations, reopening, closing, the one-owner lock (child processes are
 * real `deno` processes on the same file) and DuckDB's pitfalls the layer
 * works around (statement reuse, an aborted transaction's COMMIT).
 */
import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import { InboxStore, openStore } from "../../lib/inbox/store.ts";
import { isLockError, openDatabase } from "../../lib/db/database.ts";
import { migrate } from "../../lib/db/migrate.ts";
import {
  MACHINE_MIGRATIONS,
  openMachineDatabase,
} from "../../lib/daemon/database.ts";
import { INBOX_MIGRATIONS } from "../../lib/inbox/schema.ts";
import {
  DB_URL,
  denoEval,
  denoRun,
  MACHINE_DB_URL,
  msg,
  rejectsWith,
  ROOT,
  STORE_URL,
  withStore,
} from "../helpers/store.ts";
import { envelope as env } from "../helpers/inbox.ts";

Deno.test("a version 2 database is upgraded with its rows, and reopens after a SIGKILL right after the upgrade", async () => {
  const dir = await Deno.makeTempDir({ prefix: "inbox_store_v2_" });
  const path = join(dir, "data.duckdb");
  try {
    const { DuckDBInstance } = await import("@duckdb/node-api");
    const db = await DuckDBInstance.create(path);
    const conn = await db.connect();
    await migrate(conn, MACHINE_MIGRATIONS.slice(0, 2));
    await conn.run(
      `INSERT INTO inbox (id, sender, recipient, command, created_at, received_at)
       VALUES ('old', 'captain@a', 'captain@b', 'echo old', 't', 't')`,
    );
    await conn.run(
      `INSERT INTO sent (id, sender, recipient, command, created_at)
       VALUES ('old-sent', 'captain@b', 'captain@a', 'echo', 't')`,
    );
    await conn.run("CHECKPOINT");
    conn.closeSync();
    db.closeSync();
    // Upgrade, write, and die before any checkpoint: all of it is in the WAL.
    const child = await denoEval(
      `import { InboxStore } from ${JSON.stringify(STORE_URL)};
       import { openMachineDatabase } from ${JSON.stringify(MACHINE_DB_URL)};
       const s = new InboxStore(await openMachineDatabase(${
        JSON.stringify(path)
      }), {}, true);
       await s.inbox.insert({ id: "new", sender: "captain@a", recipient: "captain@b", command: "x" });
       await s.sent.record({ id: "new-sent", sender: "captain@b", recipient: "captain@a", command: "y", created_at: new Date().toISOString(), timeout_s: null }, { hop: "flag" });
       Deno.kill(Deno.pid, "SIGKILL");`,
    );
    assert.notEqual(child.code, 0);
    const s = new InboxStore(await openMachineDatabase(path), {}, true);
    try {
      assert.deepEqual((await s.inbox.list()).map((m) => m.id), ["new", "old"]);
      assert.equal((await s.sent.get("old-sent"))?.status, "sent");
      assert.deepEqual((await s.outbox.queued()).map((o) => o.id), [
        "new-sent",
      ]);
    } finally {
      await s.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- migrations, reopen, lifecycle ---------------------------------------

Deno.test("migrations run once; reopening keeps the data", async () => {
  const dir = await Deno.makeTempDir({ prefix: "inbox_store_mig_" });
  const path = join(dir, "nested", "dir", "data.duckdb"); // parents created
  try {
    let s = await openStore(path);
    await s.inbox.insert(msg("keep"));
    await s.outbox.enqueue({
      id: "o",
      recipient: "captain@b",
      ship: "b",
      payload: env("o", "a@a", "captain@b"),
    });
    await s.sent.record(env("o", "a@a", "captain@b"));
    await s.close();
    s = await openStore(path);
    assert.equal((await s.inbox.get("keep"))?.command, "echo keep");
    assert.equal(await s.outbox.countQueued(), 1);
    assert.equal((await s.sent.get("o"))?.status, "sent");
    // Arrival order continues after reopen (sequences persisted).
    await s.inbox.insert(msg("later"));
    assert.deepEqual((await s.inbox.list()).map((m) => m.id), [
      "later",
      "keep",
    ]);
    await s.close();

    const { DuckDBInstance } = await import("@duckdb/node-api");
    const db = await DuckDBInstance.create(path);
    const conn = await db.connect();
    try {
      const rows = (await conn.runAndReadAll(
        "SELECT version, name FROM schema_version ORDER BY version",
      )).getRowObjectsJS();
      assert.deepEqual(
        rows,
        INBOX_MIGRATIONS.map((m) => ({ version: m.version, name: m.name })),
      );
      assert.deepEqual(await migrate(conn, INBOX_MIGRATIONS), []);
    } finally {
      conn.closeSync();
      db.closeSync();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a failing migration rolls back whole; a newer schema is refused", async () => {
  const { DuckDBInstance } = await import("@duckdb/node-api");
  const db = await DuckDBInstance.create(":memory:");
  const conn = await db.connect();
  try {
    const m1 = {
      version: 1,
      name: "one",
      statements: ["CREATE TABLE t1 (a INTEGER)"],
    };
    const m2 = {
      version: 2,
      name: "two",
      statements: ["CREATE TABLE t2 (a INTEGER)", "THIS IS NOT SQL"],
    };
    assert.deepEqual(await migrate(conn, [m1]), [1]);
    assert.deepEqual(await migrate(conn, [m1]), []);
    await rejectsWith(
      migrate(conn, [m1, m2]),
      "migration_failed",
      /^schema migration 2 \(two\) failed: Parser Error/,
    );
    const tables = (await conn.runAndReadAll(
      "SELECT table_name FROM information_schema.tables ORDER BY table_name",
    )).getRowObjectsJS().map((r) => r.table_name);
    assert.deepEqual(tables, ["schema_version", "t1"]);
    await rejectsWith(
      migrate(conn, []),
      "schema_too_new",
      /schema version 1, newer than this ohcommodore understands \(0\)/,
    );
  } finally {
    conn.closeSync();
    db.closeSync();
  }
});

Deno.test("close: idempotent, later calls fail clearly, the WAL is checkpointed away", async () => {
  const dir = await Deno.makeTempDir({ prefix: "inbox_store_close_" });
  const path = join(dir, "data.duckdb");
  try {
    const s = await openStore(path);
    await s.inbox.insert(msg("a"));
    const pending = s.inbox.get("a"); // queued before close: still served
    const closing = s.close();
    assert.equal((await pending)?.id, "a");
    await closing;
    await s.close();
    await rejectsWith(s.inbox.get("a"), "db_closed", /closed/);
    const names = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    assert.deepEqual(names, ["data.duckdb"]);
    // And it can be opened again in this process.
    const again = await openStore(path);
    assert.equal((await again.inbox.get("a"))?.id, "a");
    await again.close();
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("in-memory store works and is private", async () => {
  const a = await openStore(":memory:");
  const b = await openStore(":memory:");
  try {
    await a.inbox.insert(msg("m"));
    assert.equal((await a.inbox.get("m"))?.id, "m");
    assert.equal(await b.inbox.get("m"), null);
  } finally {
    await a.close();
    await b.close();
  }
});

Deno.test("openStore rejects a bad bound", async () => {
  await rejectsWith(
    openStore(":memory:", { maxOutputBytes: -1 }),
    "invalid_option",
  );
});

// ---- locking -------------------------------------------------------------

Deno.test("the same file opened twice in one process is refused", async () => {
  await withStore(async (_s, path) => {
    await rejectsWith(
      openStore(path),
      "db_locked",
      /already open in this process/,
    );
    // Also when two opens race.
    const dir2 = await Deno.makeTempDir({ prefix: "inbox_store_race_" });
    const p2 = join(dir2, "data.duckdb");
    const both = await Promise.allSettled([openStore(p2), openStore(p2)]);
    assert.deepEqual(both.map((r) => r.status).sort(), [
      "fulfilled",
      "rejected",
    ]);
    for (const r of both) if (r.status === "fulfilled") await r.value.close();
    await Deno.remove(dir2, { recursive: true });
    // Whatever the spelling.
    const dir = dirname(path);
    await Deno.symlink(dir, dir + ".link");
    try {
      await rejectsWith(
        openStore(join(dir + ".link", "..", basename(dir), "data.duckdb")),
        "db_locked",
      );
      await rejectsWith(
        openStore(join(dir + ".link", "data.duckdb")),
        "db_locked",
      );
    } finally {
      await Deno.remove(dir + ".link");
    }
  });
});

Deno.test("a second process cannot open the file while the daemon holds it", async () => {
  await withStore(async (s, path) => {
    await s.inbox.insert(msg("held"));
    // Through openStore: an OhcError "db_locked" carrying DuckDB's text.
    const viaStore = await denoEval(
      `import { openStore } from ${JSON.stringify(STORE_URL)};
       import { isLockError } from ${JSON.stringify(DB_URL)};
       try { await openStore(${JSON.stringify(path)}); console.log("OPENED"); }
       catch (e) { console.log(JSON.stringify({ code: e.code, lock: isLockError(e), message: e.message, hint: e.hint })); }`,
    );
    assert.equal(viaStore.code, 0, viaStore.stderr);
    const got = JSON.parse(viaStore.stdout);
    assert.equal(got.code, "db_locked");
    assert.equal(got.lock, true);
    assert.match(got.hint, /daemon/);
    // DuckDB's exact text (1.5.5), which the daemon design relies on:
    //   IO Error: Could not set lock on file "<path>": Conflicting lock is
    //   held in <executable of the holder> (PID <pid>). See also
    //   https://duckdb.org/docs/stable/connect/concurrency
    // It fails at once (no waiting), for read-write and read-only opens
    // alike. The holder is named by executable path (e.g.
    // /usr/lib/node_modules/deno/deno) and its PID.
    const esc = path.replace(/[.*+?^${}()|[\]\\/]/g, "\\$&");
    assert.match(
      got.message,
      new RegExp(
        `^IO Error: Could not set lock on file "${esc}": Conflicting lock is held in .+ \\(PID ${Deno.pid}\\)\\. See also https://duckdb\\.org/docs/stable/connect/concurrency$`,
      ),
    );
    // Raw DuckDB, read-only too: the same lock error, so even readers must
    // go through the daemon.
    const raw = await denoEval(
      `const { DuckDBInstance } = await import("@duckdb/node-api");
       for (const opts of [{}, { access_mode: "READ_ONLY" }]) {
         try { await DuckDBInstance.create(${
        JSON.stringify(path)
      }, opts); console.log("OPENED"); }
         catch (e) { console.log(e.message); }
       }`,
    );
    const lines = raw.stdout.trim().split("\n");
    assert.equal(lines.length, 2, raw.stdout + raw.stderr);
    for (const line of lines) {
      assert.match(line, /^IO Error: Could not set lock on file /);
      assert.ok(line.includes(`(PID ${Deno.pid})`), line);
      assert.ok(isLockError(new Error(line)));
    }
  });
});

Deno.test("after the holder closes, another process can open the file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "inbox_store_handover_" });
  const path = join(dir, "data.duckdb");
  try {
    const s = await openStore(path);
    await s.inbox.insert(msg("handed"));
    await s.close();
    const r = await denoEval(
      `import { openStore } from ${JSON.stringify(STORE_URL)};
       const s = await openStore(${JSON.stringify(path)});
       console.log((await s.inbox.get("handed")).status);
       await s.close();`,
    );
    assert.equal(r.stdout.trim(), "unread", r.stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("importing the store does not load DuckDB (no --allow-ffi needed until openStore)", async () => {
  const r = await denoRun(
    `import { openStore } from ${JSON.stringify(STORE_URL)};
     import "${new URL("lib/inbox/types.ts", ROOT).href}";
     console.log("imported");
     try { await openStore(":memory:"); console.log("OPENED"); }
     catch (e) { console.log(e.name); }`,
    ["--allow-read", "--allow-write", "--allow-env"],
  );
  assert.equal(r.stdout, "imported\nNotCapable\n", r.stderr);
});

Deno.test("a sorted listing first run on an empty table stays right once rows exist (DuckDB statement reuse)", async () => {
  const s = await openStore(":memory:");
  try {
    assert.deepEqual(await s.inbox.list(), []);
    await s.inbox.insert({
      id: "id-1234567890123",
      sender: "captain@alpha-long-name",
      recipient: "captain@beta-long-name",
      command: "echo a command longer than twelve bytes",
    });
    const [m] = await s.inbox.list();
    assert.equal(m.id, "id-1234567890123");
    assert.equal(m.sender, "captain@alpha-long-name");
    assert.equal(m.command, "echo a command longer than twelve bytes");
  } finally {
    await s.close();
  }
});

Deno.test("a duplicate among concurrent operations fails none of them (group commit)", async () => {
  const s = await openStore(":memory:");
  try {
    await s.inbox.insert(msg("dup"));
    const results = await Promise.all([
      s.inbox.insert(msg("a1")),
      s.inbox.insert(msg("dup")),
      s.inbox.insert(msg("a2")),
      s.outbox.enqueue({
        id: "o1",
        recipient: "captain@b",
        ship: "b",
        payload: env("o1", "a@a", "captain@b"),
      }),
      s.outbox.enqueue({
        id: "o1",
        recipient: "captain@b",
        ship: "b",
        payload: env("o1", "a@a", "captain@b"),
      }),
    ]);
    assert.deepEqual(results.map((r) => r.inserted), [
      true,
      false,
      true,
      true,
      false,
    ]);
    assert.deepEqual((await s.inbox.list()).map((m) => m.id).sort(), [
      "a1",
      "a2",
      "dup",
    ]);
  } finally {
    await s.close();
  }
});

Deno.test("an operation that swallows a failed statement cannot silently lose the others in its batch", async () => {
  const dir = await Deno.makeTempDir();
  const db = await openDatabase(`${dir}/data.duckdb`, {
    migrations: INBOX_MIGRATIONS,
  });
  const s = new InboxStore(db, {}, true);
  try {
    await s.inbox.insert(msg("dup"));
    // One batch: an insert, then a transaction that fails a statement and
    // hides it (as insert-once code once did). DuckDB would report the
    // commit as done and keep nothing.
    const r = await Promise.allSettled([
      s.inbox.list(), // in flight, so the next two queue up as one batch
      s.inbox.insert(msg("before")),
      db.transaction(async (q) => {
        await q(
          "INSERT INTO inbox (id, sender, recipient, command, created_at, received_at) VALUES ('dup', 'a', 'b', 'c', 'x', 'y')",
        ).catch(() => {});
      }),
    ]);
    assert.equal(r[1].status, "fulfilled");
    const ids = (await s.inbox.list()).map((m) => m.id).sort();
    assert.deepEqual(ids, ["before", "dup"]);
  } finally {
    await s.close();
  }
});
