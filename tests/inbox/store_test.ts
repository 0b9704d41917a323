/**
 * The inbox store against real DuckDB (no mocks). Child processes are real
 * `deno` processes on the same database file.
 */

import assert from "node:assert/strict";
import { basename, dirname, join } from "node:path";
import { OhcError } from "../../lib/errors.ts";
import {
  DEFAULT_MAX_OUTPUT_BYTES,
  InboxStore,
  openStore,
} from "../../lib/inbox/store.ts";
import { isLockError } from "../../lib/db/database.ts";
import { bound } from "../../lib/inbox/rows.ts";
import { envelope } from "../helpers/inbox.ts";
import { migrate } from "../../lib/db/migrate.ts";
import { openDatabase } from "../../lib/db/database.ts";
import {
  MACHINE_MIGRATIONS,
  openMachineDatabase,
} from "../../lib/daemon/database.ts";
import { INBOX_MIGRATIONS } from "../../lib/inbox/schema.ts";
import {
  type Envelope,
  type Message,
  type NewMessage,
  recordFromWire,
  recordToWire,
  resultFromWire,
  resultOf,
  resultToWire,
} from "../../lib/inbox/types.ts";

const ROOT = new URL("../../", import.meta.url);
const STORE_URL = new URL("lib/inbox/store.ts", ROOT).href;
const DB_URL = new URL("lib/db/database.ts", ROOT).href;
const MACHINE_DB_URL = new URL("lib/daemon/database.ts", ROOT).href;
const dec = new TextDecoder();
const enc = new TextEncoder();

function msg(id: string, extra: Partial<NewMessage> = {}): NewMessage {
  return {
    id,
    sender: "captain@alpha",
    recipient: "captain@beta",
    command: `echo ${id}`,
    ...extra,
  };
}

async function withStore(
  fn: (s: InboxStore, path: string) => Promise<void>,
  opts: { maxOutputBytes?: number } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "inbox_store_test_" });
  const path = join(dir, "data.duckdb");
  const store = await openStore(path, opts);
  try {
    await fn(store, path);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

async function rejectsWith(
  p: Promise<unknown>,
  code: string,
  re?: RegExp,
): Promise<OhcError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof OhcError, `expected OhcError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (re) assert.match(err.message, re);
    return err;
  }
  assert.fail(`expected rejection with ${code}`);
}

/** Runs a TypeScript snippet with `deno eval` (all permissions) at the project root. */
async function denoEval(
  code: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await output(["eval", code]);
}

/** Runs a snippet with `deno run` and only the given permissions. */
async function denoRun(
  code: string,
  perms: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(file, code);
    const config = new URL("deno.json", ROOT).pathname;
    return await output(["run", "--config", config, ...perms, file]);
  } finally {
    await Deno.remove(file);
  }
}

async function output(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** Every byte value, invalid UTF-8 and quotes, repeated to `size` bytes. */
function nastyBytes(size: number): Uint8Array {
  const unit = new Uint8Array([
    ...Array.from({ length: 256 }, (_, i) => i),
    0xc3, // truncated 2-byte sequence
    0xff,
    0xfe, // never valid in UTF-8
    0xed,
    0xa0,
    0x80, // encoded surrogate
    ...enc.encode(`'";\\ $(rm -rf /) \`x\` ''\0`),
  ]);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += unit.length) {
    out.set(unit.subarray(0, Math.min(unit.length, size - i)), i);
  }
  return out;
}

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

// ---- outbox --------------------------------------------------------------

const env = envelope;

Deno.test("outbox: idempotent enqueue, per-sender order, per ship, delivery", async () => {
  await withStore(async (s) => {
    // Two senders interleaved, for two ships.
    const plan: [string, string, string][] = [
      ["a1", "captain@alpha", "beta"],
      ["g1", "captain@gamma", "beta"],
      ["a2", "captain@alpha", "delta"],
      ["a3", "captain@alpha", "beta"],
      ["g2", "captain@gamma", "beta"],
    ];
    for (const [id, sender, ship] of plan) {
      const r = await s.outbox.enqueue({
        id,
        recipient: `captain@${ship}`,
        ship,
        payload: env(id, sender, `captain@${ship}`),
      });
      assert.deepEqual(r, { inserted: true });
    }
    assert.deepEqual(
      await s.outbox.enqueue({
        id: "a1",
        recipient: "captain@beta",
        ship: "beta",
        payload: {
          ...env("a1", "captain@alpha", "captain@beta"),
          command: "x",
        },
      }),
      { inserted: false },
    );
    const all = await s.outbox.queued();
    assert.deepEqual(all.map((e) => e.id), ["a1", "g1", "a2", "a3", "g2"]);
    assert.equal(all[0].kind, "message");
    assert.equal(all[0].state, "queued");
    assert.equal(all[0].attempts, 0);
    assert.equal(all[0].delivered_at, null);
    assert.equal(all[0].payload.id, "a1");
    assert.equal((all[0].payload as Envelope).command, "echo a1");
    const beta = await s.outbox.queued("beta");
    assert.deepEqual(beta.map((e) => e.id), ["a1", "g1", "a3", "g2"]);
    // Each sender's own order is kept within it.
    assert.deepEqual(
      beta.filter((e) => (e.payload as Envelope).sender === "captain@alpha")
        .map((e) => e.id),
      ["a1", "a3"],
    );
    assert.equal(await s.outbox.countQueued(), 5);
    assert.equal(await s.outbox.countQueued("beta"), 4);
    assert.equal(await s.outbox.countQueued("nowhere"), 0);
    assert.deepEqual(await s.outbox.queued("nowhere"), []);

    assert.equal(await s.outbox.noteAttempt("a1"), 1);
    assert.equal(await s.outbox.noteAttempt("a1"), 2);
    assert.equal(await s.outbox.noteAttempt("ghost"), null);
    assert.equal(
      await s.outbox.markDelivered([{ kind: "message", id: "a1" }]),
      1,
    );
    // harmless twice
    assert.equal(
      await s.outbox.markDelivered([{ kind: "message", id: "a1" }]),
      1,
    );
    assert.equal(
      await s.outbox.markDelivered([
        { kind: "message", id: "ghost" },
        { kind: "result", id: "a1" },
      ]),
      0,
    );
    assert.deepEqual((await s.outbox.queued("beta")).map((e) => e.id), [
      "g1",
      "a3",
      "g2",
    ]);
    assert.equal(await s.outbox.countQueued(), 4);
  });
});

Deno.test("outbox: a result and the message it answers share an id", async () => {
  await withStore(async (s) => {
    await s.outbox.enqueue({
      id: "m",
      recipient: "captain@beta",
      ship: "beta",
      payload: env("m", "captain@alpha", "captain@beta"),
    });
    const wire = resultToWire({
      id: "m",
      status: "error",
      exit_code: 3,
      stdout: nastyBytes(1000),
      stderr: new Uint8Array(),
      stdout_truncated: false,
      stderr_truncated: true,
      error: "exit code 3",
      started_at: "2026-01-01T00:00:00.000Z",
      finished_at: "2026-01-01T00:00:01.000Z",
    });
    assert.deepEqual(
      await s.outbox.enqueue({
        kind: "result",
        id: "m",
        recipient: "captain@alpha",
        ship: "alpha",
        payload: wire,
      }),
      { inserted: true },
    );
    const q = await s.outbox.queued();
    assert.deepEqual(q.map((e) => [e.kind, e.ship]), [
      ["message", "beta"],
      ["result", "alpha"],
    ]);
    assert.equal(q[1].kind, "result");
    if (q[1].kind === "result") {
      assert.deepEqual(resultFromWire(q[1].payload).stdout, nastyBytes(1000));
    }
    assert.equal(
      await s.outbox.markDelivered([{ kind: "result", id: "m" }]),
      1,
    );
    assert.deepEqual((await s.outbox.queued()).map((e) => e.kind), ["message"]);
    await rejectsWith(
      s.outbox.enqueue({
        id: "x",
        recipient: "captain@beta",
        ship: "beta",
        payload: env("y", "a@b", "captain@beta"),
      }),
      "invalid_outbox",
      /payload id/,
    );
    await rejectsWith(
      s.outbox.enqueue({
        id: "x",
        recipient: "captain@beta",
        ship: "",
        payload: env("x", "a@b", "captain@beta"),
      }),
      "invalid_outbox",
      /ship/,
    );
  });
});

// ---- sent ----------------------------------------------------------------

Deno.test("sent: record, then the result comes back once", async () => {
  await withStore(async (s) => {
    const e = env("s1", "captain@alpha", "captain@beta");
    assert.deepEqual(await s.sent.record(e), { inserted: true });
    assert.deepEqual(await s.sent.record({ ...e, command: "other" }), {
      inserted: false,
    });
    let r = (await s.sent.get("s1"))!;
    assert.equal(r.status, "sent");
    assert.equal(r.command, "echo s1");
    assert.equal(r.exit_code, null);
    assert.equal(r.stdout, null);
    assert.equal(r.result_at, null);
    assert.equal(await s.sent.get("ghost"), null);

    // The far side ran it; its result record travels back.
    const big = nastyBytes(200_000);
    const result = {
      status: "error" as const,
      exit_code: 7,
      stdout: big,
      stderr: enc.encode("e"),
      stdout_truncated: false,
      stderr_truncated: false,
      error: "exit code 7",
      started_at: "2026-01-01T00:00:00.000Z",
      finished_at: "2026-01-01T00:00:02.000Z",
    };
    assert.equal(await s.sent.recordResult("s1", result), true);
    r = (await s.sent.get("s1"))!;
    assert.equal(r.status, "error");
    assert.equal(r.exit_code, 7);
    assert.deepEqual(r.stdout, big.subarray(0, DEFAULT_MAX_OUTPUT_BYTES));
    assert.equal(r.stdout_truncated, true);
    assert.deepEqual(r.stderr, enc.encode("e"));
    assert.equal(r.error, "exit code 7");
    assert.equal(r.started_at, result.started_at);
    assert.ok(r.result_at);
    // A retried delivery of the result: the first one wins.
    assert.equal(
      await s.sent.recordResult("s1", {
        ...result,
        status: "done",
        exit_code: 0,
      }),
      false,
    );
    assert.equal((await s.sent.get("s1"))?.exit_code, 7);
    assert.equal(await s.sent.recordResult("ghost", result), false);

    await s.sent.record(env("s2", "captain@alpha", "commodore"));
    assert.deepEqual((await s.sent.list()).map((x) => x.id), ["s2", "s1"]);
    assert.deepEqual((await s.sent.list({ limit: 1 })).map((x) => x.id), [
      "s2",
    ]);
  });
});

Deno.test("sent with a hop is its own outbox entry: queued, listed, counted, then delivered", async () => {
  await withStore(async (s) => {
    const e = env("s1", "captain@alpha", "captain@beta");
    await s.sent.record(e, { fresh: true, hop: "flag" });
    await s.sent.record(env("s0", "captain@alpha", "captain@alpha"));
    await s.outbox.enqueue({
      id: "o1",
      recipient: "captain@gamma",
      ship: "gamma",
      payload: env("o1", "captain@x", "captain@gamma"),
    });
    const q = await s.outbox.queued("flag");
    assert.deepEqual(q.map((o) => [o.kind, o.id, o.ship, o.state]), [
      ["message", "s1", "flag", "queued"],
    ]);
    assert.deepEqual(q[0].payload, e);
    assert.deepEqual((await s.outbox.queued()).map((o) => o.id), ["o1", "s1"]);
    assert.equal(await s.outbox.countQueued(), 2);
    assert.equal(await s.outbox.countQueued("flag"), 1);
    assert.equal(
      await s.outbox.markDelivered([{ kind: "message", id: "s1" }]),
      1,
    );
    assert.equal(
      await s.outbox.markDelivered([{ kind: "message", id: "s0" }]),
      0,
    );
    assert.deepEqual(await s.outbox.queued("flag"), []);
    assert.equal(await s.outbox.countQueued(), 1);
    assert.equal((await s.sent.get("s1"))?.status, "sent");
  });
});

Deno.test("complete: finishes one message, queues its result on its own row and claims the next, in one statement", async () => {
  await withStore(async (s) => {
    for (const id of ["a", "b", "c"]) await s.inbox.insert(msg(id));
    const [a] = await s.inbox.claim(1);
    const outcome = {
      status: "done" as const,
      exit_code: 0,
      stdout: "out-a",
      stderr: "",
    };
    const [b, c] = (await s.inbox.unread()).slice(0, 2);
    const r = await s.inbox.complete("a", outcome, {
      running: a,
      resultHop: "flag",
      next: b,
    });
    assert.equal(r.finished?.status, "done");
    assert.equal(r.claimed?.id, "b");
    assert.equal((await s.inbox.get("a"))?.status, "done");
    assert.equal(dec.decode((await s.inbox.get("a"))!.stdout!), "out-a");
    const running = (await s.inbox.get("b"))!;
    assert.equal(running.status, "running");
    assert.equal(running.started_at, r.claimed?.started_at);
    assert.equal(running.finished_at, null, "the claim touches no outcome");
    // a's row is the queued result for the flagship.
    const q = await s.outbox.queued("flag");
    assert.deepEqual(q.map((o) => [o.kind, o.id, o.recipient]), [
      ["result", "a", "captain@alpha"],
    ]);
    assert.equal(
      q[0].kind === "result" && atob(q[0].payload.stdout_b64),
      "out-a",
    );
    assert.equal(
      await s.outbox.markDelivered([{ kind: "result", id: "a" }]),
      1,
    );
    assert.equal(await s.outbox.countQueued(), 0);

    // c is handled by hand meanwhile: b still finishes, nothing is claimed.
    await s.inbox.setStatus("c", "pending");
    const r2 = await s.inbox.complete("b", outcome, { running, next: c });
    assert.equal(r2.finished?.id, "b");
    assert.equal(r2.claimed, null);
    assert.equal((await s.inbox.get("c"))?.status, "pending");
    assert.equal(await s.outbox.countQueued(), 0, "no hop: nothing to send");
    // A message that is not running does not finish; the claim still can.
    await s.inbox.insert(msg("d"));
    const [d] = await s.inbox.unread();
    const r3 = await s.inbox.complete("b", outcome, { next: d });
    assert.equal(r3.finished, null);
    assert.equal(r3.claimed?.id, "d");
    // The manual path: a result queued for a row finished by hand.
    assert.equal(
      await s.inbox.queueResult("c", "flag"),
      false,
      "c is not finished",
    );
    await s.inbox.setStatus("c", "done");
    assert.equal(await s.inbox.queueResult("c", "flag"), true);
    assert.deepEqual((await s.outbox.queued()).map((o) => o.id), ["c"]);
  });
});

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

Deno.test("resultOf + wire round trip carries exact bytes", async () => {
  await withStore(async (s) => {
    await s.inbox.insert(msg("m"));
    assert.equal(resultOf((await s.inbox.get("m"))!), null);
    await s.inbox.claimNext();
    const bytes = nastyBytes(5000);
    await s.inbox.finish("m", {
      status: "done",
      exit_code: 0,
      stdout: bytes,
      stderr: "",
    });
    const res = resultOf((await s.inbox.get("m"))!)!;
    const back = resultFromWire(JSON.parse(JSON.stringify(resultToWire(res))));
    assert.deepEqual(back, res);
    assert.deepEqual(back.stdout, bytes);
    // Whole records (Message, SentRecord) too, null outputs included.
    const m = (await s.inbox.get("m"))!;
    const wire = JSON.parse(JSON.stringify(recordToWire(m)));
    assert.equal(typeof wire.stdout_b64, "string");
    assert.deepEqual(recordFromWire<Message>(wire), m);
    await s.inbox.insert(msg("n"));
    const n = (await s.inbox.get("n"))!;
    assert.deepEqual(
      recordFromWire<Message>(JSON.parse(JSON.stringify(recordToWire(n)))),
      n,
    );
  });
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
