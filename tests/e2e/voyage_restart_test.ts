/**
 * The flagship's restart is invisible to the work: its `daemon run` is
 * SIGKILLed (its supervisor restarts it) while ships are provisioned,
 * while the first wave of tasks runs, in the middle of a landing, during
 * verify.sh, and twice in a row. Real processes on a local fleet; the
 * lease is ten minutes, so a voyage that verifies did not wait one out.
 * After each: every task ran once (its command appends to a file outside
 * the fleet), every task's commit holds its own file and nothing else, and
 * the voyage verified.
 */
import assert from "node:assert/strict";
import { localFleet, ohcOk } from "../helpers/cli.ts";
import { until } from "../helpers/wait.ts";
import {
  flagshipHome,
  sailOk,
  voyageTasks,
  waitVoyage,
} from "../helpers/voyage.ts";

/** Ten minutes: a test that waited one out would time out (3 min) first. */
const LEASE = { OHCOMMODORE_TASK_LEASE: "600" };

/** Pid of the `daemon run` whose HOME is `vmHome`, or null. */
function daemonPid(vmHome: string): number | null {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (!cmd.includes("daemon\0run")) continue;
      const env = Deno.readTextFileSync(`/proc/${e.name}/environ`);
      if (env.split("\0").includes(`HOME=${vmHome}`)) return Number(e.name);
    } catch { /* gone */ }
  }
  return null;
}

/** SIGKILLs the flagship's daemon; returns once a new one runs. */
async function killFlagshipDaemon(home: string): Promise<void> {
  const vm = await flagshipHome(home);
  const pid = daemonPid(vm);
  assert.ok(pid, "the flagship's daemon is not running");
  Deno.kill(pid, "SIGKILL");
  await until("the flagship's daemon to restart", () => {
    const now = daemonPid(vm);
    return now !== null && now !== pid;
  });
}

/**
 * Three independent pairs of tasks on three ships: task n (1..3) sleeps,
 * then n+3 builds on it. Each task's command records its run in `runs`
 * (outside the fleet) and writes its own file t<n>.txt.
 */
async function writeRestartPlan(
  home: string,
  verify = "true",
): Promise<{ plan: string; runs: string }> {
  const plan = `${home}/plan`;
  const runs = `${home}/runs.log`;
  await Deno.mkdir(`${plan}/tasks`, { recursive: true });
  await Deno.writeTextFile(
    `${plan}/voyage.json`,
    JSON.stringify({ name: "restart", repo: "empty", recommended_ships: 3 }),
  );
  await Deno.writeTextFile(`${plan}/spec.md`, "# Restart\n");
  await Deno.writeTextFile(
    `${plan}/verify.sh`,
    `#!/bin/bash\nset -e\n${verify}\nfor n in 1 2 3 4 5 6; do test "$(cat t$n.txt)" = $n; done\n`,
  );
  for (let n = 1; n <= 6; n++) {
    await Deno.writeTextFile(
      `${plan}/tasks/${n}.json`,
      JSON.stringify({
        id: String(n),
        subject: `task ${n}`,
        blockedBy: n > 3 ? [String(n - 3)] : [],
        command: `echo ${n} >> ${runs}; sleep ${
          n <= 3 ? 2 : 1
        }; echo ${n} > t${n}.txt`,
      }),
    );
  }
  return { plan, runs };
}

/** Lines of a file (none when it is missing). */
async function lines(file: string): Promise<string[]> {
  const text = await Deno.readTextFile(file).catch(() => "");
  return text.split("\n").filter((l) => l);
}

async function git(dir: string, ...args: string[]): Promise<string> {
  const r = await new Deno.Command("git", { args, cwd: dir }).output();
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
  return new TextDecoder().decode(r.stdout);
}

/**
 * The voyage verified; each task ran once and landed once, its commit
 * holding its own file only.
 */
async function assertClean(home: string, id: string, runs: string) {
  const s = await waitVoyage(home, id, 180_000);
  const ts = await voyageTasks(home, id);
  assert.equal(s.voyage.state, "verified", JSON.stringify(ts, null, 1));
  const ran = await lines(runs);
  assert.deepEqual(ran.toSorted(), ["1", "2", "3", "4", "5", "6"], "runs");
  for (const t of ts) assert.equal(t.status, "done");
  await ohcOk(home, ["voyage", "clone", id, "-d", `${home}/result-${id}`]);
  const log = await git(
    `${home}/result-${id}`,
    "log",
    "--format=%x1e%(trailers:key=Voyage-Task,valueonly)",
    "--name-only",
  );
  const landed: string[] = [];
  for (const entry of log.split("\x1e").slice(1)) {
    const [task, ...files] = entry.split("\n").map((l) => l.trim()).filter(
      (l) => l,
    );
    if (!task) continue; // the voyage's first commit
    landed.push(task);
    assert.deepEqual(files, [`t${task}.txt`], `task ${task}'s commit`);
  }
  assert.deepEqual(landed.toSorted(), ["1", "2", "3", "4", "5", "6"], "landed");
}

Deno.test("flagship SIGKILLed while its ships are provisioned", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const { plan, runs } = await writeRestartPlan(home);
  const local = `${home}/.ohcommodore/local`;
  const sailing = sailOk(home, [plan, "--agent", "shell"], LEASE);
  // The first ship's folder: the voyage is registered, ships are coming.
  await until("a voyage ship to be provisioned", async () => {
    for await (const e of Deno.readDir(local)) {
      if (/^v[a-z0-9]{6}-\d$/.test(e.name)) return true;
    }
    return false;
  });
  await killFlagshipDaemon(home);
  const id = await sailing;
  await assertClean(home, id, runs);
});

Deno.test("flagship SIGKILLed while the first wave runs: running tasks go on and land once", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const { plan, runs } = await writeRestartPlan(home);
  const id = await sailOk(home, [plan, "--agent", "shell"], LEASE);
  await until(
    "the first wave to run",
    async () => (await lines(runs)).length >= 3,
    { timeoutMs: 60_000 },
  );
  await killFlagshipDaemon(home);
  await assertClean(home, id, runs);
});

Deno.test("flagship SIGKILLed in the middle of a landing: it lands once, not run again", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const { plan, runs } = await writeRestartPlan(home);
  const id = await sailOk(home, [plan, "--agent", "shell"], LEASE);
  const bare = `${await flagshipHome(
    home,
  )}/.ohcommodore/voyages/${id}/repo.git`;
  // Hold the landing lock: the next landing fetches its commit, then waits.
  const lock = await Deno.open(`${bare}/ohcommodore-landing.lock`, {
    create: true,
    write: true,
  });
  await lock.lock(true);
  try {
    await until("a landing to be under way", async () => {
      try {
        for await (
          const _ of Deno.readDir(`${bare}/refs/ohcommodore/incoming`)
        ) {
          return true;
        }
      } catch { /* no landing yet */ }
      return false;
    }, { timeoutMs: 60_000 });
    await killFlagshipDaemon(home);
  } finally {
    await lock.unlock();
    lock.close();
  }
  await assertClean(home, id, runs);
});

Deno.test("flagship SIGKILLed during verify.sh: verify runs again and the voyage verifies", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const gate = `${home}/gate`;
  await Deno.mkdir(gate);
  const { plan, runs } = await writeRestartPlan(
    home,
    `echo run >> ${gate}/verifying; while [ ! -e ${gate}/go ]; do sleep 0.05; done`,
  );
  const id = await sailOk(home, [plan, "--agent", "shell"], LEASE);
  await until(
    "verify.sh to run",
    async () => (await lines(`${gate}/verifying`)).length >= 1,
    { timeoutMs: 60_000 },
  );
  await killFlagshipDaemon(home);
  await until(
    "verify.sh to run again",
    async () => (await lines(`${gate}/verifying`)).length >= 2,
  );
  await Deno.writeTextFile(`${gate}/go`, "");
  await assertClean(home, id, runs);
});

Deno.test("flagship SIGKILLed twice in a row (the second while it re-learns): nothing runs twice", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const { plan, runs } = await writeRestartPlan(home);
  const id = await sailOk(home, [plan, "--agent", "shell"], LEASE);
  await until(
    "the first wave to run",
    async () => (await lines(runs)).length >= 3,
    { timeoutMs: 60_000 },
  );
  await killFlagshipDaemon(home);
  await killFlagshipDaemon(home);
  await assertClean(home, id, runs);
});
