/**
 * The inbox table's operations against real DuckDB (no mocks): insert,
 * list, claims, finish with bounded output, recovery, manual transitions.
 * Outbox and sent: outbox_test.ts; the database under them:
 * tests/db/lifecycle_test.ts.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { DEFAULT_MAX_OUTPUT_BYTES, openStore } from "../../lib/inbox/store.ts";
import { bound } from "../../lib/inbox/rows.ts";
import {
  dec,
  enc,
  msg,
  nastyBytes,
  rejectsWith,
  ROOT,
  STORE_URL,
  withStore,
} from "../helpers/store.ts";

// ---- inbox ---------------------------------------------------------------

Deno.test("insert then get returns the message with defaults", async () => {
  await withStore(async (s) => {
    const before = new Date().toISOString();
    assert.deepEqual(await s.inbox.insert(msg("m1", { timeout_s: 12.5 })), {
      inserted: true,
    });
    const m = await s.inbox.get("m1");
    assert.ok(m);
    assert.equal(m.id, "m1");
    assert.equal(m.sender, "captain@alpha");
    assert.equal(m.recipient, "captain@beta");
    assert.equal(m.command, "echo m1");
    assert.equal(m.status, "unread");
    assert.equal(m.timeout_s, 12.5);
    assert.ok(m.created_at >= before && m.received_at >= before);
    assert.equal(m.started_at, null);
    assert.equal(m.finished_at, null);
    assert.equal(m.exit_code, null);
    assert.equal(m.stdout, null);
    assert.equal(m.stderr, null);
    assert.equal(m.stdout_truncated, false);
    assert.equal(m.stderr_truncated, false);
    assert.equal(m.error, null);
    assert.equal(await s.inbox.get("nope"), null);
  });
});

Deno.test("insert keeps the sender's created_at, normalized to ISO UTC", async () => {
  await withStore(async (s) => {
    await s.inbox.insert(
      msg("m1", { created_at: "2020-01-02T03:04:05+02:00" }),
    );
    const m = await s.inbox.get("m1");
    assert.equal(m?.created_at, "2020-01-02T01:04:05.000Z");
    assert.equal(m?.timeout_s, null);
  });
});

Deno.test("insert is idempotent on id: a duplicate changes nothing", async () => {
  await withStore(async (s) => {
    assert.deepEqual(await s.inbox.insert(msg("dup")), { inserted: true });
    const first = await s.inbox.get("dup");
    assert.deepEqual(
      await s.inbox.insert(
        msg("dup", { command: "rm -rf /", sender: "evil@x" }),
      ),
      { inserted: false },
    );
    assert.deepEqual(await s.inbox.get("dup"), first);
    // Also once it has run: a late retry does not reset it to unread.
    await s.inbox.claimNext();
    await s.inbox.finish("dup", {
      status: "done",
      exit_code: 0,
      stdout: "x",
      stderr: "",
    });
    assert.deepEqual(await s.inbox.insert(msg("dup")), { inserted: false });
    assert.equal((await s.inbox.get("dup"))?.status, "done");
    assert.equal((await s.inbox.list()).length, 1);
  });
});

Deno.test("insert rejects malformed messages, writing nothing", async () => {
  await withStore(async (s) => {
    await rejectsWith(s.inbox.insert(msg("")), "invalid_message", /id/);
    await rejectsWith(
      s.inbox.insert({ ...msg("a"), sender: "" }),
      "invalid_message",
      /sender/,
    );
    await rejectsWith(
      s.inbox.insert(msg("a", { created_at: "yesterday-ish" })),
      "invalid_message",
      /created_at/,
    );
    await rejectsWith(
      s.inbox.insert(msg("a", { timeout_s: -1 })),
      "invalid_message",
      /timeout_s/,
    );
    await rejectsWith(
      s.inbox.insert({ ...msg("a"), command: 5 as unknown as string }),
      "invalid_message",
      /command/,
    );
    assert.equal((await s.inbox.list()).length, 0);
  });
});

Deno.test("values with quotes and SQL are stored literally (bound parameters)", async () => {
  await withStore(async (s) => {
    const nasty = `'); DROP TABLE inbox; -- "$(id)" \`id\` \\ \n\t ☃ 𝄞`;
    await s.inbox.insert(msg(nasty, { command: nasty, sender: nasty }));
    const m = await s.inbox.get(nasty);
    assert.equal(m?.command, nasty);
    assert.equal(m?.sender, nasty);
    assert.equal((await s.inbox.list()).length, 1);
  });
});

Deno.test("list: newest first, by status, limited, optionally without output", async () => {
  await withStore(async (s) => {
    for (let i = 0; i < 5; i++) await s.inbox.insert(msg(`m${i}`));
    assert.deepEqual((await s.inbox.list()).map((m) => m.id), [
      "m4",
      "m3",
      "m2",
      "m1",
      "m0",
    ]);
    await s.inbox.claimNext(); // m0
    await s.inbox.finish("m0", {
      status: "done",
      exit_code: 0,
      stdout: "out",
      stderr: "err",
    });
    await s.inbox.setStatus("m1", "pending");
    assert.deepEqual(
      (await s.inbox.list({ status: "unread" })).map((m) => m.id),
      [
        "m4",
        "m3",
        "m2",
      ],
    );
    assert.deepEqual(
      (await s.inbox.list({ status: "unread", limit: 2 })).map((m) => m.id),
      ["m4", "m3"],
    );
    assert.deepEqual((await s.inbox.list({ limit: 1 })).map((m) => m.id), [
      "m4",
    ]);
    assert.deepEqual(await s.inbox.list({ limit: 0 }), []);
    const [done] = await s.inbox.list({ status: "done" });
    assert.equal(dec.decode(done.stdout!), "out");
    const [lean] = await s.inbox.list({ status: "done", withOutput: false });
    assert.equal(lean.stdout, null);
    assert.equal(lean.exit_code, 0);
    assert.deepEqual(await s.inbox.counts(), {
      unread: 3,
      running: 0,
      pending: 1,
      done: 1,
      error: 0,
    });
    await rejectsWith(
      s.inbox.list({ status: "bogus" as "done" }),
      "invalid_status",
      /bogus/,
    );
    await rejectsWith(s.inbox.list({ limit: -1 }), "invalid_limit");
  });
});

Deno.test("delete removes one message and says whether it existed", async () => {
  await withStore(async (s) => {
    await s.inbox.insert(msg("a"));
    await s.inbox.insert(msg("b"));
    assert.equal(await s.inbox.delete("a"), true);
    assert.equal(await s.inbox.delete("a"), false);
    assert.equal(await s.inbox.get("a"), null);
    assert.deepEqual((await s.inbox.list()).map((m) => m.id), ["b"]);
    // After deletion the id may arrive again (it is a new message then).
    assert.deepEqual(await s.inbox.insert(msg("a")), { inserted: true });
  });
});

Deno.test("claimNext takes messages in arrival order, not created_at order", async () => {
  await withStore(async (s) => {
    // Sender clocks disagree: arrival order is what counts.
    await s.inbox.insert(msg("first", { created_at: "2030-01-01T00:00:00Z" }));
    await s.inbox.insert(msg("second", { created_at: "2000-01-01T00:00:00Z" }));
    await s.inbox.insert(msg("third", { created_at: "2015-01-01T00:00:00Z" }));
    const a = await s.inbox.claimNext();
    assert.equal(a?.id, "first");
    assert.equal(a?.status, "running");
    assert.ok(a?.started_at);
    assert.equal((await s.inbox.get("first"))?.status, "running");
    assert.equal((await s.inbox.claimNext())?.id, "second");
    assert.equal((await s.inbox.claimNext())?.id, "third");
    assert.equal(await s.inbox.claimNext(), null);
  });
});

Deno.test("claim(n) takes up to n oldest unread, oldest first", async () => {
  await withStore(async (s) => {
    for (let i = 0; i < 5; i++) await s.inbox.insert(msg(`m${i}`));
    await s.inbox.setStatus("m1", "pending");
    assert.deepEqual((await s.inbox.claim(3)).map((m) => m.id), [
      "m0",
      "m2",
      "m3",
    ]);
    assert.deepEqual((await s.inbox.claim(3)).map((m) => m.id), ["m4"]);
    assert.deepEqual(await s.inbox.claim(3), []);
    assert.deepEqual(await s.inbox.claim(0), []);
    await rejectsWith(s.inbox.claim(-1), "invalid_limit");
  });
});

Deno.test("20 concurrent claimNext calls on 10 messages: 10 distinct claims, 10 nulls", async () => {
  await withStore(async (s) => {
    for (let i = 0; i < 10; i++) await s.inbox.insert(msg(`c${i}`));
    const results = await Promise.all(
      Array.from({ length: 20 }, () => s.inbox.claimNext()),
    );
    const claimed = results.filter((m) => m !== null).map((m) => m!.id);
    assert.equal(claimed.length, 10);
    assert.equal(new Set(claimed).size, 10);
    assert.equal(results.filter((m) => m === null).length, 10);
    // Calls made in order are served in order: arrival order is kept.
    assert.deepEqual(claimed, Array.from({ length: 10 }, (_, i) => `c${i}`));
    assert.equal((await s.inbox.counts()).running, 10);
  });
});

Deno.test("concurrent mixed callers (insert, claim, finish) stay consistent", async () => {
  await withStore(async (s) => {
    const ids = Array.from({ length: 50 }, (_, i) => `x${i}`);
    const ran: string[] = [];
    const worker = async () => {
      for (;;) {
        const m = await s.inbox.claimNext();
        if (!m) {
          if (ran.length === ids.length) return;
          await new Promise((r) => setTimeout(r, 1));
          continue;
        }
        ran.push(m.id);
        await s.inbox.finish(m.id, {
          status: "done",
          exit_code: 0,
          stdout: m.id,
          stderr: "",
        });
      }
    };
    await Promise.all([
      (async () => {
        for (const id of ids) await s.inbox.insert(msg(id));
      })(),
      worker(),
      worker(),
      worker(),
    ]);
    assert.equal(ran.length, 50);
    assert.equal(new Set(ran).size, 50);
    assert.equal((await s.inbox.counts()).done, 50);
  });
});

// ---- finish / bounded output --------------------------------------------

Deno.test("finish stores status, exit code, outputs and error", async () => {
  await withStore(async (s) => {
    await s.inbox.insert(msg("ok"));
    await s.inbox.insert(msg("bad"));
    await s.inbox.claim(2);
    assert.ok(
      await s.inbox.finish("ok", {
        status: "done",
        exit_code: 0,
        stdout: "hello\n",
        stderr: enc.encode("warn\n"),
      }),
    );
    assert.ok(
      await s.inbox.finish("bad", {
        status: "error",
        exit_code: 7,
        stdout: "",
        stderr: "boom",
        error: "exit code 7",
      }),
    );
    const ok = (await s.inbox.get("ok"))!;
    assert.equal(ok.status, "done");
    assert.equal(ok.exit_code, 0);
    assert.deepEqual(ok.stdout, enc.encode("hello\n"));
    assert.deepEqual(ok.stderr, enc.encode("warn\n"));
    assert.equal(ok.error, null);
    assert.ok(ok.finished_at! >= ok.started_at!);
    const bad = (await s.inbox.get("bad"))!;
    assert.equal(bad.status, "error");
    assert.equal(bad.exit_code, 7);
    assert.deepEqual(bad.stdout, new Uint8Array());
    assert.equal(dec.decode(bad.stderr!), "boom");
    assert.equal(bad.error, "exit code 7");
    // A timeout: no exit code of its own.
    await s.inbox.insert(msg("slow"));
    await s.inbox.claimNext();
    await s.inbox.finish("slow", {
      status: "error",
      exit_code: null,
      stdout: "",
      stderr: "",
      error: "timed out after 300 s",
    });
    assert.equal((await s.inbox.get("slow"))?.exit_code, null);
  });
});

Deno.test("finish: 10 MB of every byte value, invalid UTF-8 and quotes is bounded, never fails", async () => {
  await withStore(async (s) => {
    const big = nastyBytes(10 * 1024 * 1024);
    await s.inbox.insert(msg("big"));
    await s.inbox.claimNext();
    assert.ok(
      await s.inbox.finish("big", {
        status: "done",
        exit_code: 0,
        stdout: big,
        stderr: big,
      }),
    );
    const m = (await s.inbox.get("big"))!;
    assert.equal(m.status, "done");
    assert.equal(m.stdout!.length, DEFAULT_MAX_OUTPUT_BYTES);
    assert.equal(m.stderr!.length, DEFAULT_MAX_OUTPUT_BYTES);
    assert.deepEqual(m.stdout, big.subarray(0, DEFAULT_MAX_OUTPUT_BYTES));
    assert.deepEqual(m.stderr, big.subarray(0, DEFAULT_MAX_OUTPUT_BYTES));
    assert.equal(m.stdout_truncated, true);
    assert.equal(m.stderr_truncated, true);
    // Every byte value survived the round trip.
    assert.equal(new Set(m.stdout).size, 256);

    // Exactly at the bound: kept whole, not flagged.
    const exact = nastyBytes(DEFAULT_MAX_OUTPUT_BYTES);
    await s.inbox.insert(msg("exact"));
    await s.inbox.claimNext();
    await s.inbox.finish("exact", {
      status: "done",
      exit_code: 0,
      stdout: exact,
      stderr: "",
    });
    const e = (await s.inbox.get("exact"))!;
    assert.deepEqual(e.stdout, exact);
    assert.equal(e.stdout_truncated, false);
    assert.equal(e.stderr_truncated, false);
  });
});

Deno.test("finish: a configurable bound, strings cut at a character boundary", async () => {
  await withStore(async (s) => {
    await s.inbox.insert(msg("a"));
    await s.inbox.claimNext();
    // "☃" is 3 bytes in UTF-8: 10 bytes hold 3 of them, not a broken 4th.
    await s.inbox.finish("a", {
      status: "done",
      exit_code: 0,
      stdout: "☃".repeat(1_000_000),
      stderr: "short",
    });
    const m = (await s.inbox.get("a"))!;
    assert.equal(dec.decode(m.stdout!), "☃☃☃");
    assert.equal(m.stdout_truncated, true);
    assert.equal(dec.decode(m.stderr!), "short");
    assert.equal(m.stderr_truncated, false);
    assert.equal(s.maxOutputBytes, 10);
    // The scheduler may have bounded the output itself and says so.
    await s.inbox.insert(msg("b"));
    await s.inbox.claimNext();
    await s.inbox.finish("b", {
      status: "done",
      exit_code: 0,
      stdout: "x",
      stderr: "",
      stdout_truncated: true,
    });
    assert.equal((await s.inbox.get("b"))?.stdout_truncated, true);
  }, { maxOutputBytes: 10 });
});

Deno.test("bound() helper", () => {
  assert.deepEqual(bound("abc", 10), {
    bytes: enc.encode("abc"),
    truncated: false,
  });
  assert.deepEqual(bound("abcdef", 3), {
    bytes: enc.encode("abc"),
    truncated: true,
  });
  assert.deepEqual(bound("𝄞x", 3), {
    bytes: new Uint8Array(),
    truncated: true,
  });
  assert.deepEqual(bound(new Uint8Array([1, 2, 3]), 2), {
    bytes: new Uint8Array([1, 2]),
    truncated: true,
  });
  assert.deepEqual(bound("", 0), { bytes: new Uint8Array(), truncated: false });
});

Deno.test("finish: unknown id is false; a message that is not running is refused", async () => {
  await withStore(async (s) => {
    const r = { status: "done", exit_code: 0, stdout: "", stderr: "" } as const;
    assert.equal(await s.inbox.finish("ghost", r), null);
    await s.inbox.insert(msg("u"));
    await rejectsWith(
      s.inbox.finish("u", r),
      "illegal_transition",
      /message u cannot finish as done: it is unread, not running/,
    );
    await s.inbox.claimNext();
    await s.inbox.finish("u", r);
    await rejectsWith(
      s.inbox.finish("u", r),
      "illegal_transition",
      /it is done/,
    );
    await rejectsWith(
      s.inbox.finish("u", { ...r, status: "pending" as "done" }),
      "invalid_status",
    );
    // Deleted while running: the scheduler's finish must not crash.
    await s.inbox.insert(msg("v"));
    await s.inbox.claimNext();
    await s.inbox.delete("v");
    assert.equal(await s.inbox.finish("v", r), null);
  });
});

// ---- interrupted recovery -------------------------------------------------

Deno.test("markInterrupted: running messages become error 'interrupted', never re-run", async () => {
  await withStore(async (s) => {
    await s.inbox.insert(msg("r1"));
    await s.inbox.insert(msg("r2"));
    await s.inbox.insert(msg("u"));
    await s.inbox.claim(2);
    assert.equal(await s.inbox.markInterrupted(), 2);
    for (const id of ["r1", "r2"]) {
      const m = (await s.inbox.get(id))!;
      assert.equal(m.status, "error");
      assert.equal(m.error, "interrupted");
      assert.ok(m.finished_at);
    }
    assert.equal(await s.inbox.markInterrupted(), 0);
    assert.equal((await s.inbox.claimNext())?.id, "u");
    assert.equal(await s.inbox.claimNext(), null);
  });
});

Deno.test("a daemon killed with SIGKILL mid-run: reopen recovers the data, the running message ends interrupted", async () => {
  const dir = await Deno.makeTempDir({ prefix: "inbox_store_kill_" });
  const path = join(dir, "data.duckdb");
  try {
    const child = new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { openStore } from ${JSON.stringify(STORE_URL)};
         const s = await openStore(${JSON.stringify(path)});
         for (const id of ["a", "b"]) {
           await s.inbox.insert({ id, sender: "x@y", recipient: "captain@z", command: "sleep 100" });
         }
         await s.inbox.claimNext();
         console.log("ready");
         setInterval(() => {}, 1000);`,
      ],
      cwd: ROOT,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const reader = child.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let seen = "";
    while (!seen.includes("ready")) {
      const { value, done } = await reader.read();
      if (done) break;
      seen += value;
    }
    assert.match(seen, /ready/, "child did not get ready");
    child.kill("SIGKILL");
    const status = await child.status;
    assert.equal(status.signal, "SIGKILL");
    await reader.cancel();
    await child.stderr.cancel();

    // The lock died with the process; committed writes are in the WAL.
    const s = await openStore(path);
    try {
      assert.equal((await s.inbox.get("a"))?.status, "running");
      assert.equal(await s.inbox.markInterrupted(), 1);
      const a = (await s.inbox.get("a"))!;
      assert.equal(a.status, "error");
      assert.equal(a.error, "interrupted");
      assert.equal((await s.inbox.claimNext())?.id, "b");
      assert.equal(await s.inbox.claimNext(), null);
    } finally {
      await s.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- manual transitions --------------------------------------------------

Deno.test("setStatus: legal manual transitions", async () => {
  await withStore(async (s) => {
    for (const id of ["a", "b", "c", "d", "e"]) await s.inbox.insert(msg(id));
    assert.equal(await s.inbox.setStatus("a", "pending"), true);
    assert.equal((await s.inbox.get("a"))?.status, "pending");
    assert.equal(await s.inbox.setStatus("a", "done"), true);
    const a = (await s.inbox.get("a"))!;
    assert.equal(a.status, "done");
    assert.ok(a.finished_at);
    assert.equal(await s.inbox.setStatus("b", "pending"), true);
    assert.equal(
      await s.inbox.setStatus("b", "error", "could not reproduce"),
      true,
    );
    assert.equal((await s.inbox.get("b"))?.error, "could not reproduce");
    assert.equal(await s.inbox.setStatus("c", "done"), true);
    assert.equal(await s.inbox.setStatus("d", "error", "skip"), true);
    assert.equal(await s.inbox.setStatus("e", "error"), true);
    assert.equal((await s.inbox.get("e"))?.error, "marked as error");
    // Pending messages are out of automatic processing.
    await s.inbox.insert(msg("f"));
    await s.inbox.setStatus("f", "pending");
    assert.equal(await s.inbox.claimNext(), null);
  });
});

Deno.test("setStatus: unknown id is false; illegal transitions are refused clearly", async () => {
  await withStore(async (s) => {
    assert.equal(await s.inbox.setStatus("ghost", "pending"), false);
    assert.equal(await s.inbox.setStatus("ghost", "done"), false);
    assert.equal(await s.inbox.setStatus("ghost", "error", "x"), false);

    await s.inbox.insert(msg("run"));
    await s.inbox.claimNext();
    let e = await rejectsWith(
      s.inbox.setStatus("run", "pending"),
      "illegal_transition",
      /^cannot read \(claim\) message run: it is running$/,
    );
    assert.match(e.hint!, /scheduler is running it/);
    await rejectsWith(
      s.inbox.setStatus("run", "done"),
      "illegal_transition",
      /^cannot mark done message run: it is running$/,
    );
    assert.equal((await s.inbox.get("run"))?.status, "running");

    await s.inbox.insert(msg("p"));
    await s.inbox.setStatus("p", "pending");
    e = await rejectsWith(
      s.inbox.setStatus("p", "pending"),
      "illegal_transition",
      /it is pending/,
    );
    assert.match(e.hint!, /already claimed/);

    await s.inbox.insert(msg("fin"));
    await s.inbox.setStatus("fin", "done");
    for (const to of ["pending", "done", "error"] as const) {
      e = await rejectsWith(
        s.inbox.setStatus("fin", to, "x"),
        "illegal_transition",
        /it is done/,
      );
    }
    assert.equal((await s.inbox.get("fin"))?.status, "done");
    assert.equal((await s.inbox.get("fin"))?.error, null);
    await rejectsWith(
      s.inbox.setStatus("fin", "unread" as "done"),
      "invalid_status",
      /unread/,
    );
  });
});
