/**
 * Makespan of examples/plans/twenty (fan-out, fan-in, a 7-task chain) with
 * 1 s tasks on 8 local ships, as a ratio to the lower bound
 * max(critical path, total work / ships) from lib/voyage/plan/dag.ts. Goal from
 * the voyages issue: at most 1.25. Prints, never asserts.
 *
 * Each task takes 1 s: a custom agent records its start, runs the task's
 * command (read from the plan's task file before sailing) and sleeps out the
 * rest of the second, then records its end. Makespan = first task start to
 * last task end, from the agent's own timestamps. Also printed: wall time
 * from `voyage sail` to `verified`, the per-task overhead (makespan − lower
 * bound, over the critical path's task count), and where the time between
 * tasks goes (from the flagship's task records).
 *
 *   deno run -A bench/voyage.ts [runs=1] [--critical-first]
 *
 * --critical-first sails a copy of the plan whose task ids are renumbered
 * so that, within each level, tasks with the longest chain after them come
 * first: the order a critical-path-first queue would hand them out in (the
 * queue hands out ready tasks in id order). Same graph, same commands.
 *
 * A scratch HOME per run (`init --provider local`), sunk with
 * `fleet sink --scuttle --force` at the end, also on failure.
 */
import { teardown } from "../tests/helpers/cli.ts";
import { parseArgs } from "node:util";
import { daemonCall } from "../lib/daemon/client.ts";
import {
  analyze,
  compareIds,
  lowerBoundMakespan,
} from "../lib/voyage/plan/dag.ts";
import { loadPlan } from "../lib/voyage/plan/read.ts";
import type { Plan } from "../lib/voyage/plan/plan.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const { values: opt, positionals } = parseArgs({
  args: Deno.args,
  options: { "critical-first": { type: "boolean", default: false } },
  allowPositionals: true,
});
const runs = Number(positionals[0] ?? 1);
const SHIPS = 8;
const TASK_S = 1;
const SOURCE = `${root}/examples/plans/twenty`;
const GOAL = 1.25;
const artifact = `${root}/dist/dev/ohcommodore`;

await new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", `${root}/scripts/artifact.ts`],
  stdout: "null",
}).output();

/**
 * A copy of `src` with ids renumbered 1..N by (level, longest chain after
 * the task, old id), so the queue's id order becomes critical-path-first.
 */
async function criticalFirstCopy(src: Plan): Promise<string> {
  const a = analyze(src.tasks);
  const after = new Map<string, number>();
  for (const id of [...a.topoOrder].reverse()) {
    const t = src.tasks.find((x) => x.id === id)!;
    after.set(id, 1 + Math.max(0, ...t.blocks.map((b) => after.get(b)!)));
  }
  const order = [...src.tasks].sort((x, y) =>
    a.levelOf[x.id] - a.levelOf[y.id] ||
    after.get(y.id)! - after.get(x.id)! ||
    compareIds(x.id, y.id)
  );
  const newId = new Map(order.map((t, i) => [t.id, String(i + 1)]));
  const dir = await Deno.makeTempDir({ prefix: "ohc-bench-plan-" });
  await Deno.mkdir(`${dir}/tasks`);
  for (const f of ["voyage.json", "spec.md", "verify.sh"]) {
    await Deno.copyFile(`${src.path}/${f}`, `${dir}/${f}`);
  }
  await Deno.chmod(`${dir}/verify.sh`, 0o755);
  for (const t of src.tasks) {
    const id = newId.get(t.id)!;
    await Deno.writeTextFile(
      `${dir}/tasks/${id}.json`,
      JSON.stringify({
        id,
        subject: t.subject,
        description: t.description,
        blockedBy: t.blockedBy.map((b) => newId.get(b)!),
        blocks: t.blocks.map((b) => newId.get(b)!),
        status: "pending",
        command: t.command,
      }),
    );
  }
  return dir;
}

const PLAN = opt["critical-first"]
  ? await criticalFirstCopy(await loadPlan(SOURCE))
  : SOURCE;
const plan = await loadPlan(PLAN);
const shape = analyze(plan.tasks);
const lowerBound = lowerBoundMakespan(plan.tasks, SHIPS, () => TASK_S);
const steps = shape.criticalPath.length;

const dec = new TextDecoder();

async function ohc(home: string, args: string[]) {
  const r = await new Deno.Command(artifact, {
    args,
    env: { HOME: home, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    clearEnv: true,
    cwd: home,
    stdin: "null",
  }).output();
  return {
    code: r.code,
    stdout: dec.decode(r.stdout),
    stderr: dec.decode(r.stderr),
  };
}

async function ohcOk(home: string, args: string[]): Promise<string> {
  const r = await ohc(home, args);
  if (r.code !== 0) {
    throw new Error(
      `ohcommodore ${args.join(" ")} exited ${r.code}\n${r.stderr}`,
    );
  }
  return r.stdout;
}

/** One call on a VM's daemon socket (what the CLI does, minus its start-up). */
function daemonOn<T>(
  vmHome: string,
  op: string,
  args: Record<string, unknown> = {},
): Promise<T> {
  return daemonCall<T>(op, args, { home: vmHome });
}

interface TaskRow {
  id: string;
  status: string;
  ship: string | null;
  attempts: number;
  started_at: string | null;
  finished_at: string | null;
}
interface Status {
  voyage: {
    id: string;
    state: string;
    created_at: string;
    finished_at: string | null;
  };
  counts: Record<string, number>;
}

/** One step of the critical path: the gap between a task and the next. */
interface Gap {
  from: string;
  to: string;
  /** Agent end of `from` -> done (landed) on the flagship. */
  landing: number;
  /** Ready (last blocker done) -> claimed by a ship. */
  handoff: number;
  /** Claimed -> the agent started on the ship. */
  dispatch: number;
  /** Position among the tasks that became ready at the same moment (1 = first). */
  claimRank: number;
  readyTogether: number;
}

interface RunResult {
  ok: boolean;
  makespan: number;
  wall: number;
  sailReturned: number;
  firstStart: number;
  /** Claimed -> agent start of the very first task (clone, tmux session). */
  firstDispatch: number;
  meanTask: number;
  gaps: Gap[];
  verify: number;
  ships: number;
}

const ms = (iso: string) => Date.parse(iso);

async function runOnce(): Promise<RunResult> {
  const home = await Deno.makeTempDir({ prefix: "ohc-bench-voyage-" });
  try {
    const times = `${home}/times.log`;
    const cmds = `${home}/cmds`;
    await Deno.mkdir(cmds);
    for (const t of plan.tasks) {
      await Deno.writeTextFile(
        `${cmds}/${t.id}.sh`,
        (t.command ?? "true") + "\n",
      );
    }
    const agent = `${home}/agent.sh`;
    await Deno.writeTextFile(
      agent,
      `#!/bin/bash
s=$(date +%s%N)
echo "start $OHC_TASK_ID $s $OHC_SHIP" >> "${times}"
bash "${cmds}/$OHC_TASK_ID.sh" || exit $?
e=$(date +%s%N)
left=$(( (s + ${TASK_S}000000000 - e) / 1000 ))
if [ "$left" -gt 0 ]; then sleep "$(printf '%d.%06d' $((left / 1000000)) $((left % 1000000)))"; fi
echo "end $OHC_TASK_ID $(date +%s%N)" >> "${times}"
`,
    );
    await ohcOk(home, ["init", "--provider", "local"]);
    const flagship = `${home}/.ohcommodore/local/flagship`;

    const t0 = Date.now();
    const id = JSON.parse(
      await ohcOk(home, [
        "voyage",
        "sail",
        PLAN,
        "--ships",
        String(SHIPS),
        "--agent",
        "custom",
        "--agent-command",
        `bash ${agent}`,
        "--json",
      ]),
    ).id as string;
    const sailReturned = Date.now() - t0;

    // Poll the flagship's daemon socket, not the CLI: a CLI start per poll
    // would take CPU from the voyage on this 2-core machine.
    let s: Status;
    const deadline = Date.now() + 150_000;
    while (true) {
      s = await daemonOn<Status>(flagship, "voyage.status", { id });
      if (!["planning", "running", "complete"].includes(s.voyage.state)) break;
      if (Date.now() > deadline) throw new Error(`voyage ${id} did not finish`);
      await new Promise((r) => setTimeout(r, 100));
    }
    const seen = Date.now();
    const verifiedAt = s.voyage.finished_at ? ms(s.voyage.finished_at) : seen;
    const ok = s.voyage.state === "verified" &&
      s.counts.done === plan.tasks.length;
    if (!ok) {
      console.log(
        `  voyage ended ${s.voyage.state}: ${JSON.stringify(s.counts)}`,
      );
    }

    const start = new Map<string, number>();
    const end = new Map<string, number>();
    for (const line of (await Deno.readTextFile(times)).trim().split("\n")) {
      const [kind, task, ns] = line.split(" ");
      (kind === "start" ? start : end).set(task, Number(ns) / 1e6);
    }
    const firstStart = Math.min(...start.values());
    const makespan = (Math.max(...end.values()) - firstStart) / 1000;
    const durations = [...end].map(([t, e]) => e - start.get(t)!);

    const rows = (await daemonOn<{ tasks: TaskRow[] }>(
      flagship,
      "voyage.tasks",
      { id },
    )).tasks;
    const byId = new Map(rows.map((r) => [r.id, r]));
    const done = (t: string) => ms(byId.get(t)!.finished_at!);
    const claimed = (t: string) => ms(byId.get(t)!.started_at!);
    const ready = (t: string) => {
      const bs = plan.tasks.find((x) => x.id === t)!.blockedBy;
      return bs.length ? Math.max(...bs.map(done)) : NaN;
    };
    const cp = shape.criticalPath;
    const gaps: Gap[] = [];
    for (let i = 1; i < cp.length; i++) {
      const [a, b] = [cp[i - 1], cp[i]];
      const r = ready(b);
      // Tasks released by the same landing compete for the ships.
      const together = plan.tasks.filter((t) =>
        t.blockedBy.length && ready(t.id) === r
      ).map((t) => claimed(t.id)).sort((x, y) => x - y);
      gaps.push({
        from: a,
        to: b,
        landing: done(a) - end.get(a)!,
        handoff: claimed(b) - r,
        dispatch: start.get(b)! - claimed(b),
        claimRank: together.indexOf(claimed(b)) + 1,
        readyTogether: together.length,
      });
    }
    const lastDone = Math.max(...rows.map((r) => done(r.id)));
    return {
      ok,
      makespan,
      wall: (Math.min(verifiedAt, seen) - t0) / 1000,
      sailReturned: sailReturned / 1000,
      firstStart: (firstStart - t0) / 1000,
      firstDispatch: start.get(cp[0])! - claimed(cp[0]),
      meanTask: durations.reduce((x, y) => x + y, 0) / durations.length,
      gaps,
      verify: (verifiedAt - lastDone) / 1000,
      ships: new Set(rows.map((r) => r.ship)).size,
    };
  } finally {
    await teardown(home);
  }
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const f = (x: number, d = 2) => x.toFixed(d);

console.log(
  `plan twenty${
    opt["critical-first"] ? " (ids renumbered critical-path-first)" : ""
  }: ${plan.tasks.length} tasks of ${TASK_S} s on ${SHIPS} ships; ` +
    `critical path ${shape.criticalPath.join(" -> ")} (${steps} tasks), ` +
    `total work ${shape.totalWork * TASK_S} s`,
);
console.log(
  `lower bound = max(${shape.criticalPathLength * TASK_S} s, ` +
    `${shape.totalWork * TASK_S} s / ${SHIPS}) = ${f(lowerBound, 1)} s; ` +
    `goal: makespan / lower bound <= ${GOAL}`,
);
const ratios: number[] = [];
try {
  for (let i = 1; i <= runs; i++) {
    const r = await runOnce();
    const ratio = r.makespan / lowerBound;
    ratios.push(ratio);
    console.log(`run ${i}${r.ok ? "" : " (NOT verified)"}:`);
    console.log(
      `  makespan ${f(r.makespan)} s   ratio ${f(ratio)}   goal <= ${GOAL} ` +
        `(${ratio <= GOAL ? "met" : "not met"})`,
    );
    console.log(
      `  per-task overhead ${f((r.makespan - lowerBound) / steps)} s ` +
        `= (makespan - lower bound) / ${steps} critical-path tasks`,
    );
    console.log(
      `  wall sail -> verified ${f(r.wall, 1)} s: sail returned after ` +
        `${f(r.sailReturned, 1)} s (provisioning), first task started at ` +
        `${f(r.firstStart, 1)} s (dispatch ${f(r.firstDispatch, 0)} ms), ` +
        `verified ${
          f(r.verify, 2)
        } s after the last task landed; ${r.ships} ships used`,
    );
    const g = r.gaps;
    const lnd = sum(g.map((x) => x.landing));
    const hnd = sum(g.map((x) => x.handoff));
    const dsp = sum(g.map((x) => x.dispatch));
    console.log(
      `  makespan = ${steps} x ${f(r.meanTask / 1000, 3)} s tasks + ` +
        `${f((lnd + hnd + dsp) / 1000)} s between critical-path tasks: ` +
        `landing ${f(lnd / 1000)} s (agent end -> done), handoff ${
          f(hnd / 1000)
        } s ` +
        `(ready -> claimed), dispatch ${
          f(dsp / 1000)
        } s (claimed -> agent start)`,
    );
    console.log("  critical path, ms:     landing  handoff  dispatch  claimed");
    for (const x of g) {
      console.log(
        `    ${(x.from + " -> " + x.to).padEnd(18)}` +
          `${f(x.landing, 0).padStart(8)}${f(x.handoff, 0).padStart(9)}` +
          `${
            f(x.dispatch, 0).padStart(10)
          }  ${x.claimRank} of ${x.readyTogether}`,
      );
    }
  }
  if (runs > 1) {
    const sorted = [...ratios].sort((a, b) => a - b);
    const mid =
      (sorted[Math.floor((runs - 1) / 2)] + sorted[Math.floor(runs / 2)]) /
      2;
    console.log(
      `ratio over ${runs} runs: min ${f(sorted[0])}, median ${f(mid)}, max ${
        f(sorted[runs - 1])
      } (goal <= ${GOAL})`,
    );
  }
} finally {
  if (PLAN !== SOURCE) await Deno.remove(PLAN, { recursive: true });
}
