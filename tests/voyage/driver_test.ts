/**
 * The voyage driver against a ship served in this process: the captain's
 * own session handler behind a Transport whose spawn() runs it on streams,
 * a real queue (in-memory database), a real bare repo, tmux. What it pins: a
 * ship that has the voyage tip gets no bundle, one with an older tip a thin
 * one, and a ship that lacks what the driver believed it had still gets
 * the task done (need_base, then the full bundle).
 *
 * HOME is the ship's home for this whole file (deno test runs each file in
 * its own process).
 */
import assert from "node:assert/strict";
import { openDatabase } from "../../lib/db/database.ts";
import { VOYAGE_MIGRATIONS } from "../../lib/voyage/flagship/queue_schema.ts";
import { serveOne } from "../../lib/rpc/stream.ts";
import type { ShipRecord } from "../../lib/state/fleet.ts";
import type { Identity } from "../../lib/state/identity.ts";
import { paths } from "../../lib/state/paths.ts";
import type { RemoteProcess, Transport } from "../../lib/transport/types.ts";
import type { Provider } from "../../lib/providers/types.ts";
import { VoyageDriver } from "../../lib/voyage/flagship/driver.ts";
import { bundleVoyage } from "../../lib/git/bundle.ts";
import { prepareCheckout } from "../../lib/git/checkout.ts";
import { commitTask } from "../../lib/git/commit.ts";
import { integrateTask } from "../../lib/git/land.ts";
import { createVoyageRepo } from "../../lib/git/repo.ts";
import { type NewTask, VoyageQueue } from "../../lib/voyage/flagship/queue.ts";
import { killServer } from "../../lib/voyage/ship/tmux.ts";
import { captainHandlers } from "../../roles/captain.ts";
import { shipCheckout } from "../../lib/voyage/protocol.ts";
import type { RunTaskResult } from "../../lib/voyage/protocol.ts";
import { CaptainSession } from "../../lib/voyage/flagship/session.ts";
import { base64ToBytes, bytesToBase64 } from "../../lib/inbox/types.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

/**
 * A ship in this process. `before(request)` runs before each session
 * request reaches the captain (a test's chance to change the ship).
 */
function inProcessShip(
  self: Identity,
  home: string,
  before: (
    req: { op: string; args: { task?: { id: string } } },
  ) => Promise<void>,
): Transport {
  return {
    dest: "in-process",
    spawn(): RemoteProcess {
      const toShip = new TransformStream<Uint8Array, Uint8Array>();
      const fromShip = new TransformStream<Uint8Array, Uint8Array>();
      let buf = "";
      let first = true;
      const inspect = new TransformStream<Uint8Array, Uint8Array>({
        async transform(chunk, c) {
          buf += dec.decode(chunk, { stream: true });
          let nl: number;
          while ((nl = buf.indexOf("\n")) >= 0) {
            const line = buf.slice(0, nl + 1);
            buf = buf.slice(nl + 1);
            if (!first) await before(JSON.parse(line));
            first = false;
            c.enqueue(enc.encode(line));
          }
        },
      });
      const served = serveOne(
        toShip.readable.pipeThrough(inspect),
        fromShip.writable,
        () => captainHandlers(self, home),
      );
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
}

async function sailChain(
  before: (
    req: { op: string; args: { task?: { id: string } } },
    bare: { bare: string; branch: string },
    shipHome: string,
  ) => Promise<void>,
): Promise<{ logs: string[]; tasks: { id: string; status: string }[] }> {
  const dir = await Deno.makeTempDir({ prefix: "ohc-driver-" });
  const shipHome = `${dir}/ship`;
  await Deno.mkdir(shipHome);
  const db = await openDatabase(":memory:", {
    migrations: VOYAGE_MIGRATIONS,
  });
  try {
    const id = "vd1";
    const repo = await createVoyageRepo({
      dir: `${dir}/voyage`,
      voyageId: id,
      source: { kind: "empty" },
    });
    const planDir = `${dir}/voyage/plan`;
    await Deno.mkdir(planDir);
    await Deno.writeTextFile(
      `${planDir}/verify.sh`,
      "test -f a.txt && test -f b.txt && test -f c.txt\n",
    );
    const queue = new VoyageQueue(db);
    const task = (n: string, file: string, blocked_by: string[]): NewTask => ({
      id: n,
      subject: `write ${file}`,
      description: "",
      acceptance: null,
      command: `echo ${n} > ${file}`,
      blocked_by,
    });
    await queue.create({
      id,
      name: id,
      state: "running",
      plan_dir: planDir,
      bare: repo.bare,
      branch: repo.branch,
      repo: null,
      agent: "shell",
      agent_command: null,
      objective: "a chain of three",
      max_attempts: 2,
      lease_s: 60,
    }, [
      task("1", "a.txt", []),
      task("2", "b.txt", ["1"]),
      task("3", "c.txt", ["2"]),
    ], ["s1"]);
    const self = {
      role: "captain",
      name: "s1",
      flagship: "f",
    } as unknown as Identity;
    const t = inProcessShip(
      self,
      shipHome,
      (req) => before(req, repo, shipHome),
    );
    const ship: ShipRecord = {
      name: "s1",
      repo: null,
      repo_dir: null,
      ssh_dest: "in-process",
      status: "running",
      created_at: new Date().toISOString(),
    };
    const logs: string[] = [];
    const driver = new VoyageDriver({
      queue,
      provider: { transport: () => t } as unknown as Provider,
      ships: () => Promise.resolve([ship]),
      secrets: () => ({}),
      log: (m) => logs.push(m),
    });
    await driver.start(id);
    for (let i = 0; i < 600; i++) {
      const v = await queue.get(id);
      if (v && !["running", "complete"].includes(v.state)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await queue.get(id))?.state, "verified", logs.join("\n"));
    return { logs, tasks: await queue.tasks(id) };
  } finally {
    await killServer(paths.tmuxSocket(shipHome));
    await db.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

const sent = (logs: string[], task: string) =>
  logs.filter((l) => l.includes(`task ${task}: `) && /bundle/.test(l))
    .map((l) => l.replace(/^.*task \d+: /, ""));

Deno.test("a ship that has the tip gets no bundle; an older tip, a thin one", async () => {
  const { logs, tasks } = await sailChain(async (req, repo, shipHome) => {
    // Someone else lands while task 2 runs: task 2 lands as a rebase, so
    // the ship has an older tip when task 3 comes.
    if (req.op !== "task" || req.args.task?.id !== "2") return;
    const other = `${shipHome}/../other`;
    await prepareCheckout({ bare: repo.bare, branch: repo.branch, dir: other });
    await Deno.writeTextFile(`${other}/x.txt`, "x\n");
    const { commit } = await commitTask({
      checkout: other,
      taskId: "9",
      subject: "elsewhere",
    });
    const r = await integrateTask({
      ...repo,
      taskId: "9",
      source: other,
      commit: commit!,
      worktreeDir: `${other}/../wt`,
    });
    assert.ok(r.ok);
  });
  assert.deepEqual(tasks.map((t) => t.status), ["done", "done", "done"]);
  assert.deepEqual(sent(logs, "1"), ["full bundle"]);
  assert.deepEqual(sent(logs, "2"), ["no bundle"]);
  assert.deepEqual(sent(logs, "3"), ["thin bundle"]);
});

Deno.test("a ship that lacks the tip the driver thought it had still gets its task done", async () => {
  let removed = false;
  const { logs, tasks } = await sailChain(async (req, _repo, shipHome) => {
    // The checkout vanishes between tasks 1 and 2 (a person, a reimage).
    if (req.op === "task" && req.args.task?.id === "2" && !removed) {
      removed = true;
      await Deno.remove(
        `${shipHome}/${shipCheckout("vd1")}`,
        { recursive: true },
      );
    }
  });
  assert.deepEqual(tasks.map((t) => t.status), ["done", "done", "done"]);
  const two = sent(logs, "2");
  assert.equal(two[0], "no bundle");
  assert.match(two[1], /lacks its base .*; full bundle/);
  assert.deepEqual(sent(logs, "3"), ["no bundle"]);
});

Deno.test("a flagship that stopped after landing a task, before recording it: the new driver records it, nothing runs or lands twice", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ohc-driver-" });
  const shipHome = `${dir}/ship`;
  await Deno.mkdir(shipHome);
  const db = await openDatabase(":memory:", {
    migrations: VOYAGE_MIGRATIONS,
  });
  try {
    const id = "vd2";
    const repo = await createVoyageRepo({
      dir: `${dir}/voyage`,
      voyageId: id,
      source: { kind: "empty" },
    });
    const planDir = `${dir}/voyage/plan`;
    await Deno.mkdir(planDir);
    await Deno.writeTextFile(`${planDir}/verify.sh`, "test -f a.txt\n");
    const runs = `${dir}/runs.log`;
    const queue = new VoyageQueue(db);
    const v = {
      id,
      name: id,
      state: "running" as const,
      plan_dir: planDir,
      bare: repo.bare,
      branch: repo.branch,
      repo: null,
      agent: "shell",
      agent_command: null,
      objective: "one task",
      max_attempts: 2,
      lease_s: 60,
    };
    await queue.create(v, [{
      id: "1",
      subject: "write a.txt",
      description: "",
      acceptance: null,
      command: `echo 1 >> ${runs}; echo 1 > a.txt`,
      blocked_by: [],
    }], ["s1"]);
    const self = { role: "captain", name: "s1", flagship: "f" } as Identity;
    const t = inProcessShip(self, shipHome, () => Promise.resolve());
    // The first flagship: claims task 1, the ship runs it, and it lands...
    const claimed = (await queue.claim(id, "s1"))!;
    const session = new CaptainSession(t, id, {});
    const res = await session.request<RunTaskResult>("task", {
      voyage_id: id,
      branch: repo.branch,
      bundle_data: await bundleOf(repo.bare, `${dir}/base.bundle`),
      objective: v.objective,
      agent: "shell",
      agent_command: null,
      attempt: claimed.attempts,
      task: {
        id: "1",
        subject: claimed.subject,
        description: "",
        acceptance: null,
        command: claimed.command,
      },
    });
    await session.close();
    await Deno.writeFile(`${dir}/t1.bundle`, base64ToBytes(res.bundle_data!));
    const landed = await integrateTask({
      ...repo,
      taskId: "1",
      source: `${dir}/t1.bundle`,
      commit: res.commit!,
      worktreeDir: `${dir}/wt`,
      expect: { voyage: id, task: "1", attempt: 1 },
    });
    assert.ok(landed.ok);
    // ... and the flagship dies before the queue records it.
    const logs: string[] = [];
    const driver = new VoyageDriver({
      queue,
      provider: { transport: () => t } as unknown as Provider,
      ships: () =>
        Promise.resolve([{
          name: "s1",
          repo: null,
          repo_dir: null,
          ssh_dest: "in-process",
          status: "running",
          created_at: new Date().toISOString(),
        }]),
      secrets: () => ({}),
      log: (m) => logs.push(m),
    });
    await driver.resume();
    for (let i = 0; i < 600; i++) {
      const now = await queue.get(id);
      if (now && !["running", "complete"].includes(now.state)) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    assert.equal((await queue.get(id))?.state, "verified", logs.join("\n"));
    assert.equal(await Deno.readTextFile(runs), "1\n");
    const [t1] = await queue.tasks(id);
    assert.equal(t1.commit_sha, landed.ok ? landed.tip : "");
    assert.equal(t1.attempts, 1);
    assert.ok(logs.some((l) => /resuming it/.test(l)), logs.join("\n"));
    assert.ok(logs.some((l) => /landed before/.test(l)), logs.join("\n"));
  } finally {
    await killServer(paths.tmuxSocket(shipHome));
    await db.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});

async function bundleOf(bare: string, file: string): Promise<string> {
  await bundleVoyage({ bare, file });
  return bytesToBase64(await Deno.readFile(file));
}

Deno.test("a ship's checkout holds one task run: another task or a sync is refused until the run is released; the same run is never started twice", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ohc-driver-" });
  const shipHome = `${dir}/ship`;
  await Deno.mkdir(shipHome);
  try {
    const id = "vd3";
    const repo = await createVoyageRepo({
      dir: `${dir}/voyage`,
      voyageId: id,
      source: { kind: "empty" },
    });
    const runs = `${dir}/runs.log`;
    const self = { role: "captain", name: "s1", flagship: "f" } as Identity;
    const t = inProcessShip(self, shipHome, () => Promise.resolve());
    const base = {
      voyage_id: id,
      branch: repo.branch,
      bundle_data: await bundleOf(repo.bare, `${dir}/base.bundle`),
    };
    const taskArgs = (n: string, attempt = 1) => ({
      ...base,
      objective: "o",
      agent: "shell" as const,
      agent_command: null,
      attempt,
      task: {
        id: n,
        subject: `task ${n}`,
        description: "",
        acceptance: null,
        command: `echo ${n} >> ${runs}; echo ${n} > t${n}.txt`,
      },
    });
    const s = new CaptainSession(t, id, {});
    const one = await s.request<RunTaskResult>("task", taskArgs("1"));
    assert.ok(one.commit);
    assert.deepEqual(await s.request("hold", { voyage_id: id }), {
      held: { task: "1", attempt: 1, state: "finished" },
    });
    const busy = (e: Error & { code?: string }) =>
      e.code === "busy" &&
      /holds task 1 \(attempt 1, finished\)/.test(e.message);
    await assert.rejects(s.request("task", taskArgs("2")), busy);
    await assert.rejects(s.request("task", taskArgs("1", 2)), busy);
    await assert.rejects(s.request("sync", base), busy);
    // The same run again: its recorded outcome, nothing runs.
    const again = await s.request<RunTaskResult>("task", taskArgs("1"));
    assert.equal(again.commit, one.commit);
    assert.equal(await Deno.readTextFile(runs), "1\n");
    // Released with the next task: that one runs, in a clean checkout.
    const two = await s.request<RunTaskResult>("task", {
      ...taskArgs("2"),
      release: { task: "1", attempt: 1 },
    });
    assert.ok(two.commit);
    assert.equal(await Deno.readTextFile(runs), "1\n2\n");
    const files = await new Deno.Command("git", {
      args: ["show", "--name-only", "--format=", two.commit],
      cwd: `${shipHome}/${shipCheckout(id)}`,
    }).output();
    assert.equal(new TextDecoder().decode(files.stdout).trim(), "t2.txt");
    assert.deepEqual(
      await s.request("release", { voyage_id: id, task: "2", attempt: 1 }),
      {
        released: true,
      },
    );
    assert.deepEqual(await s.request("hold", { voyage_id: id }), {
      held: null,
    });
    await s.close();
  } finally {
    await killServer(paths.tmuxSocket(shipHome));
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
});
