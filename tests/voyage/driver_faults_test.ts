/**
 * The voyage driver when something under it fails: a database call that
 * throws inside a ship's loop, a heartbeat that cannot be stored, a task's
 * commit that cannot be landed. The daemon that runs the driver must live
 * on (an unhandled rejection would end it: Deno exits on one, and so does
 * this test), the task must not be lost, and nothing may be left behind.
 *
 * The ship is a scripted captain served in this process (the session
 * protocol of protocol.ts); the queue (in-memory DuckDB) and the
 * voyage's bare repo are real.
 */
import assert from "node:assert/strict";
import { bytesToBase64 } from "../../lib/inbox/types.ts";
import { openDatabase } from "../../lib/db/database.ts";
import { VOYAGE_MIGRATIONS } from "../../lib/voyage/flagship/queue_schema.ts";
import type { Provider } from "../../lib/providers/types.ts";
import { type RpcContext, serveOne } from "../../lib/rpc/stream.ts";
import type { ShipRecord } from "../../lib/state/fleet.ts";
import type { Transport } from "../../lib/transport/types.ts";
import type {
  HoldResult,
  RunTaskResult,
  SessionRequest,
  TaskKey,
} from "../../lib/voyage/protocol.ts";
import { VoyageDriver } from "../../lib/voyage/flagship/driver.ts";
import { branchTip, createVoyageRepo } from "../../lib/git/repo.ts";
import { readLines } from "../../lib/lines.ts";
import { type NewTask, VoyageQueue } from "../../lib/voyage/flagship/queue.ts";

/** What the scripted ship answers to `task`. */
type TaskReply = (tip: string) => RunTaskResult;

const noChange: TaskReply = (tip) => ({
  commit: null,
  base: tip,
  bundle: null,
});

/**
 * A ship that runs each task by answering it (after `work` ms of progress
 * events, its heartbeats) and holds the run until it is released; the same
 * run asked again returns the same answer, as a captain does.
 */
function scriptedShip(
  bare: string,
  branch: string,
  reply: TaskReply,
  work = 0,
): { transport: Transport; runs: TaskKey[] } {
  const runs: TaskKey[] = [];
  let held: (TaskKey & { result: RunTaskResult }) | null = null;
  const session = async (ctx: RpcContext) => {
    for await (const line of readLines(ctx.input)) {
      if (!line.trim()) continue;
      const req = JSON.parse(line) as SessionRequest;
      const a = req.args as Record<string, unknown>;
      const rel = a.release as TaskKey | undefined;
      if (rel && held?.task === rel.task) held = null;
      const tip = await branchTip(bare, branch);
      let data: unknown;
      if (req.op === "hold") {
        data = {
          held: held
            ? { task: held.task, attempt: held.attempt, state: "finished" }
            : null,
        } satisfies HoldResult;
      } else if (req.op === "release") {
        held = null;
        data = { released: true };
      } else if (req.op === "sync") {
        data = { base: tip };
      } else if (req.op === "task") {
        const t = (a.task as { id: string }).id;
        const attempt = a.attempt as number;
        if (held && held.task === t && held.attempt === attempt) {
          data = held.result; // the same run: its outcome, not a new run
        } else {
          runs.push({ task: t, attempt });
          const end = Date.now() + work;
          while (Date.now() < end) {
            ctx.emit({
              type: "progress",
              message: "working",
              subject: `${req.n}`,
            });
            await new Promise((r) => setTimeout(r, 100));
          }
          held = { task: t, attempt, result: reply(tip) };
          data = held.result;
        }
      } else {
        data = { program: "x" };
      }
      ctx.emit({ type: "reply", n: req.n, data });
    }
    return null;
  };
  const transport: Transport = {
    dest: "in-process",
    spawn() {
      const toShip = new TransformStream<Uint8Array, Uint8Array>();
      const fromShip = new TransformStream<Uint8Array, Uint8Array>();
      const served = serveOne(toShip.readable, fromShip.writable, () => ({
        "captain.session": (ctx) => session(ctx),
      }));
      return {
        stdin: toShip.writable,
        stdout: fromShip.readable,
        stderr: new ReadableStream({ start: (c) => c.close() }),
        status: served.then(() => ({ code: 0, signal: null })),
        kill() {},
      };
    },
    interactive: () => Promise.resolve(1),
  };
  return { transport, runs };
}

/** The queue with some of its methods replaced (a failing database). */
function faulty(
  queue: VoyageQueue,
  faults: Partial<Record<keyof VoyageQueue, () => boolean>>,
): VoyageQueue {
  return new Proxy(queue, {
    get(target, p, recv) {
      const v = Reflect.get(target, p, recv);
      if (typeof v !== "function") return v;
      const fail = faults[p as keyof VoyageQueue];
      return (...args: unknown[]) => {
        if (fail?.()) {
          return Promise.reject(new Error(`${String(p)}: database is locked`));
        }
        return v.apply(target, args);
      };
    },
  });
}

interface Sailed {
  state: string | undefined;
  tasks: { id: string; status: string; attempts: number }[];
  logs: string[];
  work: string[];
  runs: TaskKey[];
}

async function sail(o: {
  tasks: number;
  faults?: Parameters<typeof faulty>[1];
  reply?: TaskReply;
  work?: number;
  lease_s?: number;
}): Promise<Sailed> {
  const dir = await Deno.makeTempDir({ prefix: "ohc-driver-faults-" });
  const db = await openDatabase(":memory:", {
    migrations: VOYAGE_MIGRATIONS,
  });
  try {
    const id = "vf1";
    const repo = await createVoyageRepo({
      dir: `${dir}/voyage`,
      voyageId: id,
      source: { kind: "empty" },
    });
    const planDir = `${dir}/voyage/plan`;
    await Deno.mkdir(planDir);
    await Deno.writeTextFile(`${planDir}/verify.sh`, "true\n");
    const real = new VoyageQueue(db);
    const tasks: NewTask[] = Array.from({ length: o.tasks }, (_, i) => ({
      id: `${i + 1}`,
      subject: `task ${i + 1}`,
      description: "",
      acceptance: null,
      command: "true",
      blocked_by: [],
    }));
    await real.create(
      {
        id,
        name: id,
        state: "running",
        plan_dir: planDir,
        bare: repo.bare,
        branch: repo.branch,
        repo: null,
        agent: "shell",
        agent_command: null,
        objective: "faults",
        max_attempts: 2,
        lease_s: o.lease_s ?? 60,
      },
      tasks,
      ["s1"],
    );
    const ship = scriptedShip(
      repo.bare,
      repo.branch,
      o.reply ?? noChange,
      o.work,
    );
    const record: ShipRecord = {
      name: "s1",
      repo: null,
      repo_dir: null,
      ssh_dest: "in-process",
      status: "running",
      created_at: new Date().toISOString(),
    };
    const logs: string[] = [];
    const driver = new VoyageDriver({
      queue: faulty(real, o.faults ?? {}),
      provider: { transport: () => ship.transport } as unknown as Provider,
      ships: () => Promise.resolve([record]),
      secrets: () => ({}),
      log: (m) => logs.push(m),
    });
    await driver.start(id);
    // Bounded: the voyage settles (or the assertion below shows the logs).
    for (let i = 0; i < 1200; i++) {
      const v = await real.get(id);
      if (v && !["running", "complete"].includes(v.state)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    const work = await Array.fromAsync(
      Deno.readDir(`${dir}/voyage/work`),
    ).catch(() => []);
    return {
      state: (await real.get(id))?.state,
      tasks: (await real.tasks(id)).map((t) => ({
        id: t.id,
        status: t.status,
        attempts: t.attempts,
      })),
      logs,
      work: work.map((e) => e.name).filter((n) => n.endsWith(".bundle")),
      runs: ship.runs,
    };
  } finally {
    await db.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test("a database call that throws in a ship's loop: the loop starts again, the task is taken up again and done once", async () => {
  let calls = 0;
  const r = await sail({
    tasks: 2,
    // The first outcome cannot be recorded: the task stays the ship's.
    faults: { finishAndClaim: () => ++calls === 1 },
  });
  assert.equal(r.state, "verified", r.logs.join("\n"));
  assert.deepEqual(r.tasks.map((t) => [t.id, t.status]), [
    ["1", "done"],
    ["2", "done"],
  ]);
  // Taken up on the same ship, from what it holds: not run a second time.
  assert.deepEqual(r.runs.map((x) => x.task).sort(), ["1", "2"]);
  assert.ok(
    r.logs.some((l) => /finishAndClaim: database is locked/.test(l)),
    r.logs.join("\n"),
  );
});

Deno.test("a claim that throws: the loop starts again and the voyage sails", async () => {
  let calls = 0;
  const r = await sail({ tasks: 1, faults: { claim: () => ++calls <= 2 } });
  assert.equal(r.state, "verified", r.logs.join("\n"));
  assert.deepEqual(r.tasks.map((t) => t.status), ["done"]);
});

Deno.test("heartbeats that cannot be stored are logged; the task goes on", async () => {
  const r = await sail({
    tasks: 1,
    faults: { heartbeat: () => true },
    // Beats are sent once a third of the lease has passed.
    lease_s: 1,
    work: 1_000,
  });
  assert.equal(r.state, "verified", r.logs.join("\n"));
  assert.ok(
    r.logs.some((l) => /heartbeat: database is locked/.test(l)),
    r.logs.join("\n"),
  );
});

Deno.test("a task's commit that cannot be landed: the task fails, its downloaded bundle is removed", async () => {
  const r = await sail({
    tasks: 1,
    // A commit, with a bundle that is not one: landing it throws.
    reply: (tip) => ({
      commit: "a".repeat(40),
      base: tip,
      bundle: "x.bundle",
      bundle_data: bytesToBase64(new TextEncoder().encode("not a bundle\n")),
    }),
  });
  assert.equal(r.state, "failed", r.logs.join("\n"));
  assert.deepEqual(r.tasks.map((t) => t.status), ["failed"]);
  assert.deepEqual(r.work, []);
});
