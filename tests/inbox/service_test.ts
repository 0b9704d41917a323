/**
 * The inbox's moving parts above the store, on real DuckDB and real bash:
 * batches, routing, the link's pusher and intake, deferred delivery marks,
 * and the scheduler's arrival order.
 */
import assert from "node:assert/strict";
import {
  HOLD_SCRIPT,
  Scheduler,
  type SchedulerOptions,
} from "../../lib/daemon/scheduler.ts";
import { StartJournal } from "../../lib/daemon/start_journal.ts";
import {
  DELIVERED_DELAY_MS,
  type EntryKey,
  InboxService,
  type LinkEntry,
} from "../../lib/inbox/service.ts";
import { type InboxStore, openStore } from "../../lib/inbox/store.ts";
import type { Message } from "../../lib/inbox/types.ts";
import { captain, commodore, envelope } from "../helpers/inbox.ts";
import { Intake } from "../../lib/link/intake.ts";
import { OutboxPusher } from "../../lib/link/outbox_pusher.ts";
import { until } from "../helpers/wait.ts";

/** A scheduler on `s` through `svc`, wired as the daemon wires one. */
async function schedulerFor(
  s: InboxStore,
  svc: InboxService,
  dir: string,
  opts: Partial<SchedulerOptions> & { finished?: (id: string) => void } = {},
): Promise<Scheduler> {
  const holdScript = `${dir}/hold.sh`;
  await Deno.writeTextFile(holdScript, HOLD_SCRIPT);
  const { finished, ...o } = opts;
  return new Scheduler({
    unread: () => s.inbox.unread(),
    claim: (ms) => s.inbox.claimThese(ms),
    complete: async (m, r, next) => {
      const claimed = await svc.complete(m, r, next);
      finished?.(m.id);
      return claimed;
    },
  }, {
    cwd: dir,
    limit: 1,
    defaultTimeoutS: 30,
    maxOutputBytes: 1024,
    env: { PATH: "/usr/bin:/bin" },
    log: () => {},
    holdScript,
    ...o,
  });
}

const msgEntry = (id: string, from: string, to: string): LinkEntry => ({
  kind: "message",
  id,
  recipient: to,
  payload: envelope(id, from, to),
});

async function withStore(fn: (s: InboxStore) => Promise<void>) {
  const s = await openStore(":memory:");
  try {
    await fn(s);
  } finally {
    await s.close();
  }
}

Deno.test("batch: its operations commit together, or none of them does", async () => {
  await withStore(async (s) => {
    await s.batch(async (tx) => {
      await tx.inbox.insert({
        id: "a",
        sender: "x@y",
        recipient: "captain@b",
        command: "",
      });
      await tx.sent.record(envelope("a", "x@y", "captain@b"));
    });
    await assert.rejects(
      s.batch(async (tx) => {
        await tx.inbox.insert({
          id: "b",
          sender: "x@y",
          recipient: "captain@b",
          command: "",
        });
        throw new Error("changed my mind");
      }),
      /changed my mind/,
    );
    assert.deepEqual((await s.inbox.list()).map((m) => m.id), ["a"]);
    assert.ok(await s.sent.get("a"));
  });
});

Deno.test("insertMany: one batch with duplicates inside and from before keeps one of each, in order", async () => {
  await withStore(async (s) => {
    await s.inbox.insert({
      id: "old",
      sender: "x@y",
      recipient: "captain@b",
      command: "",
    });
    const ids = ["n1", "old", "n2", "n1", "n3"];
    const inserted = await s.inbox.insertMany(
      ids.map((id) => ({
        id,
        sender: "x@y",
        recipient: "captain@b",
        command: id,
      })),
    );
    assert.deepEqual(inserted, ["n1", "n2", "n3"]);
    // Arrival order is the batch's order.
    assert.deepEqual((await s.inbox.unread()).map((m) => m.id), [
      "old",
      "n1",
      "n2",
      "n3",
    ]);
    assert.equal((await s.inbox.get("n2"))?.command, "n2");
  });
});

Deno.test("the flagship stores a burst of entries in one go: its own, forwards, bounces", async () => {
  await withStore(async (s) => {
    const svc = new InboxService(s, commodore);
    svc.roster = new Set(["alpha", "beta"]);
    const queued: [string, string[]][] = [];
    const inserted: string[] = [];
    svc.onQueued = (ship, es) => queued.push([ship, es.map((e) => e.id)]);
    svc.onInserted = (ms) => inserted.push(...ms.map((m) => m.id));
    const burst = [
      msgEntry("m1", "captain@alpha", "captain@beta"),
      msgEntry("m2", "captain@alpha", "commodore"),
      msgEntry("m3", "captain@alpha", "captain@ghost"),
      msgEntry("m4", "captain@alpha", "captain@beta"),
    ];
    const acked = await svc.accept(burst, "alpha");
    assert.deepEqual(acked.map((k) => k.id), ["m1", "m2", "m3", "m4"]);
    assert.deepEqual(inserted, ["m2"]);
    assert.deepEqual(queued, [["beta", ["m1", "m4"]], ["alpha", ["m3"]]]);
    const bounce = (await s.outbox.queued("alpha"))[0];
    assert.equal(bounce.kind, "result");
    assert.match(String((bounce.payload as { error: string }).error), /ghost/);
    // A redelivery of the whole burst changes nothing and queues nothing.
    queued.length = 0;
    inserted.length = 0;
    await svc.accept(burst, "alpha");
    assert.deepEqual([queued, inserted], [[], []]);
    assert.equal(await s.outbox.countQueued(), 3);
  });
});

Deno.test("pusher: what is queued goes first, entries offered meanwhile follow, each once per session", async () => {
  await withStore(async (s) => {
    const svc = new InboxService(s, captain("alpha"));
    for (const id of ["q1", "q2"]) {
      await s.outbox.enqueue({
        ...msgEntry(id, "captain@alpha", "captain@b"),
        ship: "flag",
      });
    }
    const sent: string[][] = [];
    const pusher = new OutboxPusher(
      svc,
      "flag",
      (es) => sent.push(es.map((e) => e.id)),
    );
    pusher.offer([msgEntry("early", "captain@alpha", "captain@b")]);
    pusher.offer([msgEntry("q2", "captain@alpha", "captain@b")]); // also queued
    await pusher.start();
    pusher.offer([msgEntry("l1", "captain@alpha", "captain@b")]);
    pusher.offer([msgEntry("l2", "captain@alpha", "captain@b")]);
    await until("the second push", () => sent.length >= 2);
    assert.deepEqual(sent, [["q1", "q2", "early"], ["l1", "l2"]]);
  });
});

Deno.test("acknowledged entries are marked delivered in one batch, and before a new session reads the queue", async () => {
  await withStore(async (s) => {
    const svc = new InboxService(s, captain("alpha"));
    for (const id of ["a", "b", "c"]) {
      await s.outbox.enqueue({
        ...msgEntry(id, "captain@alpha", "captain@b"),
        ship: "flag",
      });
    }
    svc.delivered([{ kind: "message", id: "a" }]);
    svc.delivered([{ kind: "message", id: "b" }]);
    assert.equal(await s.outbox.countQueued(), 3); // not yet
    const marked = Date.now();
    await until(
      "a and b marked delivered",
      async () => await s.outbox.countQueued() === 1,
    );
    assert.ok(Date.now() - marked >= DELIVERED_DELAY_MS - 5, "gathered");
    svc.delivered([{ kind: "message", id: "c" }]);
    assert.deepEqual(await svc.queuedFor("flag"), []); // flushed first
  });
});

Deno.test("intake: entries arriving while a batch is stored go into the next one, in order", async () => {
  const batches: string[][] = [];
  const acks: EntryKey[][] = [];
  let release = () => {};
  const intake = new Intake(
    async (es) => {
      batches.push(es.map((e) => e.id));
      if (batches.length === 1) await new Promise<void>((r) => release = r);
      return es.map((e) => ({ kind: e.kind, id: e.id }));
    },
    (keys) => acks.push(keys),
    (e) => assert.fail(e.message),
  );
  intake.add([msgEntry("1", "a@a", "captain@b")]);
  for (const id of ["2", "3", "4"]) {
    intake.add([msgEntry(id, "a@a", "captain@b")]);
  }
  release();
  await until("all four acknowledged", () => acks.flat().length === 4);
  assert.deepEqual(batches, [["1"], ["2", "3", "4"]]);
  assert.deepEqual(acks.flat().map((k) => k.id), ["1", "2", "3", "4"]);
});

Deno.test("intake: a failure to store ends the session and acknowledges nothing more", async () => {
  const acks: string[] = [];
  let failed = "";
  const intake = new Intake(
    () => Promise.reject(new Error("disk full")),
    (keys) => acks.push(...keys.map((k) => k.id)),
    (e) => failed = e.message,
  );
  intake.add([msgEntry("1", "a@a", "captain@b")]);
  await until("the failure", () => failed !== "");
  assert.equal(failed, "disk full");
  assert.deepEqual(acks, []);
});

async function schedulerOrder(withJournal: boolean) {
  const dir = await Deno.makeTempDir();
  const { journal } = await StartJournal.open(`${dir}/started.log`);
  const noted: string[] = [];
  await withStore(async (s) => {
    const svc = new InboxService(s, captain("alpha"));
    // The first command holds the one slot until the gate opens, so the
    // later ones are still unread when one is taken by hand (whatever the
    // machine's load).
    const gate = `${dir}/gate`;
    const env = (id: string) => ({
      ...envelope(id, "captain@alpha", "captain@alpha"),
      command: (id === "before1"
        ? `while [ ! -e ${gate} ]; do sleep 0.01; done; `
        : "") + `echo ${id} >> order.txt; sleep 0.05`,
    });
    await s.inbox.insert(env("before1")); // stored before the scheduler began
    await s.inbox.insert(env("before2"));
    const results: string[] = [];
    svc.onQueued = () => {};
    const sch = await schedulerFor(s, svc, dir, {
      finished: (id) =>
        results.push(id),
      journal: withJournal
        ? {
          note: (id) => {
            noted.push(id);
            journal.note(id);
          },
          settled: (id) => journal.settled(id),
        }
        : undefined,
    });
    svc.onInserted = (ms) => sch.kick(ms);
    const sendAll = (async () => {
      for (const id of ["n1", "n2", "n3", "n4"]) {
        await svc.send("captain@alpha", env(id).command, null, id);
      }
    })();
    await sch.begin();
    await sendAll;
    // Taken for manual handling, as the daemon does it.
    assert.ok(sch.handling("n3"));
    await s.inbox.setStatus("n3", "pending");
    await Deno.writeTextFile(gate, "");
    await until(
      "five finishes recorded",
      async () => (await s.inbox.list({ status: "done" })).length === 5,
    );
    await sch.stop();
    const order = (await Deno.readTextFile(`${dir}/order.txt`)).trim().split(
      "\n",
    );
    assert.deepEqual(order, ["before1", "before2", "n1", "n2", "n4"]);
    assert.equal((await s.inbox.get("n3"))?.status, "pending");
    assert.deepEqual(
      (await s.inbox.list({ status: "done" })).map((m: Message) => m.id).sort(),
      ["before1", "before2", "n1", "n2", "n4"],
    );
    // Each result reached its sender (itself here) once.
    assert.equal((await s.sent.get("n4"))?.status, "done");
    // With the journal, hand-overs went through it: every id it noted
    // started, and was recorded as started and finished.
    if (withJournal) {
      assert.ok(noted.length >= 3, `noted ${noted}`);
      assert.ok(!noted.includes("n3"));
    } else assert.deepEqual(noted, []);
  });
  journal.close();
  await Deno.remove(dir, { recursive: true });
}

Deno.test("scheduler: runs in arrival order, one at a time, skips what was handled by hand, picks up what was unread before", async () => {
  await schedulerOrder(false);
});

Deno.test("scheduler with a start journal: hands each slot over ahead of the database, in the same order, and what is handled by hand never starts", async () => {
  await schedulerOrder(true);
});

Deno.test("start journal: ids noted and not yet recorded are read back by the next daemon, which ends the unread ones as interrupted", async () => {
  const dir = await Deno.makeTempDir();
  await withStore(async (s) => {
    const path = `${dir}/started.log`;
    let { journal, noted } = await StartJournal.open(path);
    assert.deepEqual(noted, []);
    for (const id of ["a", "b", "c"]) {
      await s.inbox.insert(envelope(id, "captain@x", "captain@alpha"));
    }
    await s.inbox.claimThese((await s.inbox.unread()).slice(0, 1)); // a: running
    journal.note("b"); // b: started, its claim not yet committed
    journal.close(); // the daemon dies here
    ({ journal, noted } = await StartJournal.open(path));
    assert.deepEqual(noted, ["b"]);
    assert.equal(await s.inbox.markInterrupted(noted), 2);
    journal.clear();
    assert.deepEqual(
      (await s.inbox.list()).map((m) => [m.id, m.status]),
      [["c", "unread"], ["b", "error"], ["a", "error"]],
    );
    assert.equal((await s.inbox.get("b"))?.error, "interrupted");
    // A busy scheduler always has an id pending: the journal is rewritten
    // with just those, so it stays short.
    for (let i = 0; i < 300; i++) {
      journal.note(`x${i}`);
      if (i > 0) journal.settled(`x${i - 1}`);
    }
    journal.close();
    ({ journal, noted } = await StartJournal.open(path));
    journal.close();
    assert.ok(noted.length < 300 && noted.includes("x299"), `${noted.length}`);
    assert.ok(!noted.includes("x0"));
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("scheduler: a command runs as bash -c with stdin at /dev/null and the caller's own BASH_ENV still read", async () => {
  const dir = await Deno.makeTempDir();
  await withStore(async (s) => {
    const svc = new InboxService(s, captain("alpha"));
    await Deno.writeTextFile(`${dir}/env.sh`, "greet() { echo hi-$1; }\n");
    const sch = await schedulerFor(s, svc, dir, {
      env: { PATH: "/usr/bin:/bin", BASH_ENV: `${dir}/env.sh` },
    });
    svc.onInserted = (ms) => sch.kick(ms);
    await sch.begin();
    const cmd = 'greet "$0"; cat; [ "$BASH_ENV" = ' +
      `"${dir}/env.sh" ] && echo env-kept; ` +
      'readlink /proc/self/fd/0 </dev/stdin; echo "$BASH_EXECUTION_STRING" | head -c 5';
    const env = await svc.send("captain@alpha", cmd, null);
    const rec = await svc.waitResult(env.id, 10_000);
    await sch.stop();
    assert.equal(rec.status, "done", new TextDecoder().decode(rec.stderr!));
    assert.equal(
      new TextDecoder().decode(rec.stdout!),
      `hi-bash\nenv-kept\n/dev/null\ngreet`,
    );
  });
  await Deno.remove(dir, { recursive: true });
});

Deno.test("scheduler with a start journal: a message handed its slot ahead of the database shows running there once it runs past CLAIM_AFTER_MS", async () => {
  const dir = await Deno.makeTempDir();
  await withStore(async (s) => {
    const svc = new InboxService(s, captain("alpha"));
    const { journal } = await StartJournal.open(`${dir}/started.log`);
    const sch = await schedulerFor(s, svc, dir, { journal });
    await sch.begin();
    // From another machine, so the result leaves by the outbox.
    const a = envelope("a", "captain@beta", "captain@alpha");
    const b = envelope("b", "captain@beta", "captain@alpha");
    const gate = `${dir}/gate`;
    await s.inbox.insert({ ...a, command: "sleep 0.1" });
    await s.inbox.insert({
      ...b,
      command: `while [ ! -e ${gate} ]; do sleep 0.02; done`,
    });
    sch.kick(await s.inbox.unread());
    const running = await until(
      "b recorded as running while it runs",
      async () => {
        const m = await s.inbox.get("b");
        return m?.status === "running" ? m : null;
      },
    );
    assert.equal((await s.inbox.get("a"))?.status, "done");
    assert.ok(running.started_at! >= (await s.inbox.get("a"))!.finished_at!);
    await Deno.writeTextFile(gate, "");
    const done = await until("b done", async () => {
      const m = await s.inbox.get("b");
      return m?.status === "done" ? m : null;
    });
    assert.equal(
      done.started_at,
      running.started_at,
      "one start, recorded once",
    );
    assert.deepEqual((await s.outbox.queued()).map((o) => o.id), ["a", "b"]);
    await sch.stop();
    journal.close();
  });
  await Deno.remove(dir, { recursive: true });
});
