import assert from "node:assert/strict";
import { openDatabase } from "../../lib/db/database.ts";
import { VOYAGE_MIGRATIONS } from "../../lib/voyage/flagship/queue_schema.ts";
import { type NewTask, VoyageQueue } from "../../lib/voyage/flagship/queue.ts";

function voyage(id: string, leaseS = 60, maxAttempts = 2) {
  return {
    id,
    name: id,
    state: "running" as const,
    plan_dir: "/p",
    bare: "/b.git",
    branch: `voyage/${id}`,
    repo: null,
    agent: "shell",
    agent_command: null,
    objective: "test",
    max_attempts: maxAttempts,
    lease_s: leaseS,
  };
}

const task = (id: string, blocked_by: string[] = []): NewTask => ({
  id,
  subject: `task ${id}`,
  description: "",
  acceptance: null,
  command: "true",
  blocked_by,
});

async function withQueue(
  fn: (q: VoyageQueue, clock: { t: number }) => Promise<void>,
) {
  const db = await openDatabase(":memory:", {
    migrations: VOYAGE_MIGRATIONS,
  });
  const clock = { t: Date.parse("2026-01-01T00:00:00Z") };
  try {
    await fn(new VoyageQueue(db, () => new Date(clock.t)), clock);
  } finally {
    await db.close();
  }
}

Deno.test("8 ships racing on 100 tasks: each task is claimed exactly once", async () => {
  await withQueue(async (q) => {
    const ships = Array.from({ length: 8 }, (_, i) => `s${i}`);
    await q.create(
      voyage("v1"),
      Array.from({ length: 100 }, (_, i) => task(String(i + 1))),
      ships,
    );
    const claimed: string[] = [];
    await Promise.all(ships.map(async (s) => {
      while (true) {
        const t = await q.claim("v1", s);
        if (!t) break;
        claimed.push(t.id);
        assert.ok(await q.finish("v1", t.id, s, { ok: true }));
      }
    }));
    assert.equal(claimed.length, 100);
    assert.equal(new Set(claimed).size, 100);
    assert.deepEqual(await q.settled("v1"), { settled: true, allDone: true });
  });
});

Deno.test("a task is handed out only when all its blockers are done", async () => {
  await withQueue(async (q) => {
    await q.create(voyage("v2"), [
      task("1"),
      task("2", ["1"]),
      task("3", ["1", "2"]),
    ], ["a", "b"]);
    const t1 = await q.claim("v2", "a");
    assert.equal(t1?.id, "1");
    assert.equal(await q.claim("v2", "b"), null); // 2 waits for 1
    await q.finish("v2", "1", "a", { ok: true, commit: "abc" });
    assert.equal((await q.claim("v2", "b"))?.id, "2");
    assert.equal(await q.claim("v2", "a"), null); // 3 waits for 2
    await q.finish("v2", "2", "b", { ok: true });
    assert.equal((await q.claim("v2", "a"))?.id, "3");
  });
});

Deno.test("a silent ship loses its task after the lease; the retry counts; the limit fails it", async () => {
  await withQueue(async (q, clock) => {
    await q.create(voyage("v3", 10, 2), [task("1"), task("2", ["1"])], [
      "a",
      "b",
    ]);
    assert.equal((await q.claim("v3", "a"))?.id, "1");
    clock.t += 5_000;
    assert.ok(await q.heartbeat("v3", "a", "1")); // lease renewed to +10 s
    clock.t += 8_000;
    assert.equal(await q.claim("v3", "b"), null); // still a's
    clock.t += 5_000;
    const again = await q.claim("v3", "b"); // a stopped heartbeating
    assert.equal(again?.id, "1");
    assert.equal(again?.attempts, 2);
    // a's late result is ignored: the task is b's now.
    assert.equal(await q.finish("v3", "1", "a", { ok: true }), false);
    clock.t += 11_000;
    assert.equal(await q.claim("v3", "a"), null); // expired past the limit: failed
    const [t1, t2] = await q.tasks("v3");
    assert.equal(t1.status, "failed");
    assert.match(t1.error ?? "", /stopped heartbeating/);
    assert.equal(t2.status, "pending"); // blocked for good
    assert.deepEqual(await q.settled("v3"), { settled: true, allDone: false });
    const events = (await q.events("v3")).map((e) =>
      `${e.task_id}:${e.event}:${e.ship}`
    );
    assert.deepEqual(events.slice(1), [
      "1:claimed:a",
      "1:lease expired:a",
      "1:claimed:b",
      "1:failed:b",
    ]);
  });
});

Deno.test("failures retry up to the limit; a conflict fails at once and keeps its branch", async () => {
  await withQueue(async (q) => {
    await q.create(voyage("v4", 60, 3), [task("1"), task("2")], ["a"]);
    for (let i = 1; i <= 3; i++) {
      const t = await q.claim("v4", "a");
      assert.equal(t?.id, "1");
      await q.finish("v4", "1", "a", { ok: false, error: `exit ${i}` });
    }
    const t2 = await q.claim("v4", "a");
    assert.equal(t2?.id, "2");
    await q.finish("v4", "2", "a", {
      ok: false,
      final: true,
      error: "conflict",
      conflict: ["a.txt"],
      side_branch: "voyage/v4/task-2",
    });
    const [one, two] = await q.tasks("v4");
    assert.equal(one.status, "failed");
    assert.equal(one.attempts, 3);
    assert.equal(two.status, "failed");
    assert.deepEqual(two.conflict, ["a.txt"]);
    assert.equal(two.side_branch, "voyage/v4/task-2");
  });
});

Deno.test("listing voyages before and after the first one exists", async () => {
  await withQueue(async (q) => {
    assert.deepEqual(await q.list(), []);
    await q.create(voyage("vlongname1"), [task("1")], [
      "ship-with-a-long-name",
    ]);
    const [v] = await q.list();
    assert.equal(v.id, "vlongname1");
    assert.equal(v.branch, "voyage/vlongname1");
  });
});

Deno.test("of the tasks one landing releases, the one on the longest chain goes first", async () => {
  await withQueue(async (q) => {
    // 1 releases 2, 3 and 4; only 4 has a chain behind it (4 -> 5 -> 6).
    await q.create(voyage("v5"), [
      task("1"),
      task("2", ["1"]),
      task("3", ["1"]),
      task("4", ["1"]),
      task("5", ["4"]),
      task("6", ["5", "2"]),
    ], ["a", "b"]);
    assert.equal((await q.claim("v5", "a"))?.id, "1");
    await q.finish("v5", "1", "a", { ok: true });
    assert.equal((await q.claim("v5", "a"))?.id, "4");
    assert.equal((await q.claim("v5", "b"))?.id, "2"); // ties: plan order
  });
});

Deno.test("each ended attempt is kept with the agent's cost and usage: retried, lost to the lease, done", async () => {
  await withQueue(async (q, clock) => {
    await q.create({ ...voyage("v9", 60, 3), model: "sonnet" }, [task("1")], [
      "a",
      "b",
    ]);
    assert.equal((await q.get("v9"))?.model, "sonnet");
    const stats = (cost: number) => ({
      cost_usd: cost,
      usage: { input_tokens: 2000, output_tokens: 500 },
      model: "claude-sonnet-5",
      turns: 1,
      duration_ms: 900,
      session_id: `s-${cost}`,
      api_retries: 2,
    });
    await q.claim("v9", "a");
    await q.finish("v9", "1", "a", {
      ok: false,
      error: "API error 529",
      agent: stats(0),
    });
    await q.claim("v9", "b");
    clock.t += 61_000; // b stops heartbeating
    const third = await q.claim("v9", "a");
    assert.equal(third?.attempts, 3);
    await q.finish("v9", "1", "a", {
      ok: true,
      commit: "c",
      agent: stats(0.018),
    });
    const [t] = await q.tasksWithRuns("v9");
    assert.equal(t.status, "done");
    assert.deepEqual(
      t.runs.map((r) => [r.attempt, r.ship, r.outcome, r.cost_usd]),
      [[1, "a", "retry", 0], [2, "b", "lost", null], [3, "a", "done", 0.018]],
    );
    assert.equal(t.runs[0].error, "API error 529");
    assert.equal(t.runs[1].error, "ship b stopped heartbeating");
    assert.deepEqual(t.runs[2].usage, {
      input_tokens: 2000,
      output_tokens: 500,
    });
    assert.equal(t.runs[2].model, "claude-sonnet-5");
    assert.equal(t.runs[2].api_retries, 2);
    assert.equal(t.runs[2].session_id, "s-0.018");
    assert.deepEqual(await q.tasksWithRuns("v9", "pending"), []);
  });
});

Deno.test("ships gone: their tasks back in the queue at once (failed past the limit), none claimed by them; no ship left sinks the voyage", async () => {
  await withQueue(async (q) => {
    await q.create(
      voyage("v1", 600, 2),
      [task("1"), task("2"), task("3")],
      ["a", "b"],
    );
    const t1 = (await q.claim("v1", "a"))!;
    const t2 = (await q.claim("v1", "b"))!;
    assert.deepEqual(await q.shipsGone(["a"], "was destroyed"), ["v1"]);
    let ts = await q.tasks("v1");
    assert.equal(ts.find((t) => t.id === t1.id)!.status, "pending");
    assert.equal(ts.find((t) => t.id === t1.id)!.error, "ship a was destroyed");
    assert.equal(ts.find((t) => t.id === t2.id)!.status, "running");
    // A gone ship claims nothing, even before its loop notices.
    assert.equal(await q.claim("v1", "a"), null);
    // Its task goes to the other ship; the retry counts.
    assert.ok(await q.finish("v1", t2.id, "b", { ok: true }));
    const again = (await q.claim("v1", "b"))!;
    assert.equal(again.id, t1.id);
    assert.equal(again.attempts, 2);
    // The last ship goes: its task fails (its last attempt), the voyage sinks.
    await q.shipsGone(["b"], "was destroyed");
    ts = await q.tasks("v1");
    assert.equal(ts.find((t) => t.id === t1.id)!.status, "failed");
    assert.equal((await q.get("v1"))!.state, "sunk");
    assert.deepEqual(await q.shipsGone(["b"], "was destroyed"), []);
  });
});

Deno.test("renewLeases: a restarted flagship gives running tasks a fresh lease", async () => {
  await withQueue(async (q, clock) => {
    await q.create(voyage("v1", 60), [task("1"), task("2")], ["a", "b"]);
    await q.claim("v1", "a");
    clock.t += 59_000;
    assert.equal(await q.renewLeases("v1"), 1);
    clock.t += 59_000; // past the first lease, within the new one
    const t = await q.claim("v1", "b");
    assert.equal(t!.id, "2"); // task 1 stayed with a
    assert.equal((await q.tasks("v1", "running")).length, 2);
  });
});

Deno.test("retry: failed tasks back in the queue with a fresh set of tries; an ended voyage sails again", async () => {
  await withQueue(async (q) => {
    await q.create(voyage("v1", 60, 1), [task("1"), task("2", ["1"])], ["s"]);
    let t = (await q.claim("v1", "s"))!;
    await q.finish("v1", t.id, "s", { ok: false, error: "boom" });
    const settled = await q.settled("v1");
    assert.deepEqual(settled, { settled: true, allDone: false });
    await q.setVoyageState("v1", "failed", {}, ["running"]);
    // Only failed tasks may be named; unknown ones are refused.
    await assert.rejects(
      () => q.retry("v1", ["2"]),
      /task 2 of voyage v1 is pending, not failed/,
    );
    await assert.rejects(() => q.retry("v1", ["9"]), /voyage v1 has no task 9/);
    const r = await q.retry("v1");
    assert.deepEqual(r, {
      voyage: "v1",
      tasks: ["1"],
      reopened: true,
      open: 2,
    });
    assert.equal((await q.get("v1"))!.state, "running");
    // Attempt 2, though the limit is 1: the limit counts from the retry.
    t = (await q.claim("v1", "s"))!;
    assert.equal(t.attempts, 2);
    assert.ok(await q.finish("v1", t.id, "s", { ok: false, error: "again" }));
    const [one] = await q.tasks("v1");
    assert.equal(one.status, "failed");
    assert.equal(one.attempts_before, 1);
    // Nothing failed and the voyage still running: nothing to retry.
    await q.retry("v1", ["1"]);
    await assert.rejects(() => q.retry("v1"), /has no failed task to retry/);
    const events = (await q.events("v1")).map((e) => e.event);
    assert.ok(events.includes("retried"));
    assert.ok(events.includes("voyage running"));
  });
});

Deno.test("retry of an ended voyage with every task done runs verify again; a verified one has nothing to retry", async () => {
  await withQueue(async (q) => {
    await q.create(voyage("v1"), [task("1")], ["s"]);
    const t = (await q.claim("v1", "s"))!;
    await q.finish("v1", t.id, "s", { ok: true });
    await q.setVoyageState("v1", "complete", {}, ["running"]);
    await assert.rejects(() => q.retry("v1"), /running verify\.sh/);
    await q.setVoyageState("v1", "failed", {
      verify_code: 3,
      verify_output: "no",
    }, ["complete"]);
    const r = await q.retry("v1");
    assert.deepEqual(r, { voyage: "v1", tasks: [], reopened: true, open: 0 });
    const v = (await q.get("v1"))!;
    assert.equal(v.state, "running");
    assert.equal(v.verify_code, null);
    await q.setVoyageState("v1", "complete", {}, ["running"]);
    await q.setVoyageState("v1", "verified", {
      verify_code: 0,
      verify_output: "",
    }, ["complete"]);
    await assert.rejects(() => q.retry("v1"), /is verified: nothing to retry/);
  });
});

Deno.test("a sink is never undone by the driver's later steps; a verify that ends after it is still recorded", async () => {
  await withQueue(async (q) => {
    await q.create(voyage("v1"), [task("1")], ["s"]);
    await q.setVoyageState("v1", "complete", {}, ["running"]);
    assert.ok(await q.sink("v1"));
    assert.equal(await q.sink("v1"), false);
    assert.equal(
      await q.setVoyageState("v1", "verified", {
        verify_code: 0,
        verify_output: "ok",
      }, ["complete"]),
      false,
    );
    const v = (await q.get("v1"))!;
    assert.equal(v.state, "sunk");
    assert.equal(v.verify_code, 0);
    assert.ok(v.finished_at);
  });
});

Deno.test("added tasks: new ids only, blockers known, appended after the plan's; an ended voyage sails again", async () => {
  await withQueue(async (q) => {
    await q.create(voyage("v1"), [task("1")], ["s"]);
    const t = (await q.claim("v1", "s"))!;
    await q.finish("v1", t.id, "s", { ok: true });
    await q.setVoyageState("v1", "failed", {}, ["running"]);
    await assert.rejects(
      () => q.addTasks("v1", [task("1")]),
      /has a task 1 already/,
    );
    await assert.rejects(
      () => q.addTasks("v1", [task("2", ["7"])]),
      /unknown task 7/,
    );
    const r = await q.addTasks("v1", [task("3", ["2"]), task("2", ["1"])]);
    assert.deepEqual(r, {
      voyage: "v1",
      tasks: ["3", "2"],
      reopened: true,
      open: 2,
    });
    assert.deepEqual((await q.tasks("v1")).map((x) => [x.id, x.ord]), [
      ["1", 0],
      ["3", 1],
      ["2", 2],
    ]);
    // Task 2 first (3 waits for it).
    assert.equal((await q.claim("v1", "s"))!.id, "2");
  });
});

Deno.test("eight concurrent adds of the same task: exactly one lands", async () => {
  await withQueue(async (q) => {
    await q.create(voyage("v1"), [task("1")], ["s"]);
    const results = await Promise.allSettled(
      Array.from({ length: 8 }, () => q.addTasks("v1", [task("x", ["1"])])),
    );
    assert.equal(results.filter((r) => r.status === "fulfilled").length, 1);
    assert.equal((await q.tasks("v1")).filter((t) => t.id === "x").length, 1);
  });
});

Deno.test("purge forgets a voyage; short ids find voyages by prefix", async () => {
  await withQueue(async (q) => {
    await q.create(voyage("vabcd11"), [task("1")], ["s1"]);
    await q.create(voyage("vabcd22"), [task("1")], ["s2"]);
    assert.deepEqual(await q.idsStartingWith("vabc", 10), [
      "vabcd11",
      "vabcd22",
    ]);
    assert.deepEqual(await q.idsStartingWith("vabcd2", 10), ["vabcd22"]);
    assert.deepEqual(await q.idsStartingWith("v%", 10), []);
    await q.addShips("vabcd11", ["s3"]);
    assert.deepEqual((await q.ships("vabcd11")).map((s) => s.ship), [
      "s1",
      "s3",
    ]);
    await q.purge("vabcd11");
    assert.equal(await q.get("vabcd11"), null);
    assert.deepEqual(await q.tasks("vabcd11"), []);
    assert.deepEqual(await q.ships("vabcd11"), []);
    assert.deepEqual(await q.events("vabcd11"), []);
    assert.equal((await q.tasks("vabcd22")).length, 1);
  });
});
