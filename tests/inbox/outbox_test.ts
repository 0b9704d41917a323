/**
 * The outbox and sent tables against real DuckDB (no mocks), and the
 * scheduler's one-statement step that finishes into them.
 */
import assert from "node:assert/strict";
import { DEFAULT_MAX_OUTPUT_BYTES } from "../../lib/inbox/store.ts";
import { envelope } from "../helpers/inbox.ts";
import {
  type Envelope,
  type Message,
  recordFromWire,
  recordToWire,
  resultFromWire,
  resultOf,
  resultToWire,
} from "../../lib/inbox/types.ts";
import {
  dec,
  enc,
  msg,
  nastyBytes,
  rejectsWith,
  withStore,
} from "../helpers/store.ts";

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
