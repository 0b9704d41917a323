/**
 * DAG analysis: levels, widths, critical path (by count and by weight),
 * recommended ships, topological order, cycles, readyTasks and the makespan
 * lower bound used by the benchmark.
 */
import assert from "node:assert/strict";
import {
  analyze,
  chainRanks,
  compareIds,
  criticalPath,
  CycleError,
  type DagTask,
  findCycles,
  formatCycle,
  lowerBoundMakespan,
  readyTasks,
  recommendShips,
  topoOrder,
} from "../../lib/voyage/plan/dag.ts";
import { loadPlan } from "../../lib/voyage/plan/read.ts";

const root = new URL("../../", import.meta.url).pathname;

/** tasks("2:1", "3:1,2") -> [{id:"2",blockedBy:["1"]}, ...]; "1" alone = no blockers. */
function tasks(...specs: string[]): DagTask[] {
  return specs.map((s) => {
    const [id, deps = ""] = s.split(":");
    return { id, blockedBy: deps === "" ? [] : deps.split(",") };
  });
}

Deno.test("compareIds: numeric ids by value, then the rest", () => {
  const ids = ["10", "b", "2", "1", "a", "02"];
  assert.deepEqual(ids.sort(compareIds), ["1", "02", "2", "10", "a", "b"]);
});

Deno.test("levels, widest level, critical path of a diamond", () => {
  const a = analyze(tasks("1", "2:1", "3:1", "4:1", "5:2,3,4"));
  assert.deepEqual(a.levels, [["1"], ["2", "3", "4"], ["5"]]);
  assert.deepEqual(a.levelOf, { "1": 0, "2": 1, "3": 1, "4": 1, "5": 2 });
  assert.equal(a.widestLevelWidth, 3);
  assert.equal(a.widestLevelIndex, 1);
  assert.deepEqual(a.criticalPath, ["1", "2", "5"]);
  assert.equal(a.criticalPathLength, 3);
  assert.equal(a.totalTasks, 5);
  assert.equal(a.totalWork, 5);
  assert.equal(a.recommendedShips, 3);
  assert.deepEqual(a.topoOrder, ["1", "2", "3", "4", "5"]);
});

Deno.test("level is 1 + the highest blocker level, not the nearest", () => {
  // 4 waits for 1 (level 0) and 3 (level 2): level 3.
  const a = analyze(tasks("1", "2:1", "3:2", "4:1,3"));
  assert.deepEqual(a.levels, [["1"], ["2"], ["3"], ["4"]]);
  assert.deepEqual(a.criticalPath, ["1", "2", "3", "4"]);
});

Deno.test("empty plan", () => {
  const a = analyze([]);
  assert.deepEqual(a.levels, []);
  assert.equal(a.widestLevelWidth, 0);
  assert.equal(a.widestLevelIndex, -1);
  assert.deepEqual(a.criticalPath, []);
  assert.equal(a.recommendedShips, 1);
  assert.equal(lowerBoundMakespan([], 3, () => 1), 0);
});

Deno.test("recommended ships: widest level, capped, at least 1", () => {
  assert.equal(recommendShips(0), 1);
  assert.equal(recommendShips(3), 3);
  assert.equal(recommendShips(30), 8);
  assert.equal(recommendShips(30, 12), 12);
  const wide = tasks(...Array.from({ length: 20 }, (_, i) => String(i + 1)));
  assert.equal(analyze(wide).recommendedShips, 8);
  assert.equal(analyze(wide, { shipCap: 4 }).recommendedShips, 4);
  assert.equal(analyze(wide, { shipCap: 4 }).shipCap, 4);
});

Deno.test("critical path with weights picks the heaviest chain", () => {
  const g = tasks("1", "2:1", "3:2", "4:1", "5:3,4");
  const w: Record<string, number> = { "1": 1, "2": 1, "3": 1, "4": 10, "5": 1 };
  const a = analyze(g, { weightOf: (t) => w[t.id] });
  assert.deepEqual(a.criticalPath, ["1", "4", "5"]);
  assert.equal(a.criticalPathLength, 12);
  assert.equal(a.totalWork, 14);
  // By count the longer chain wins.
  assert.deepEqual(criticalPath(g).path, ["1", "2", "3", "5"]);
  assert.throws(() => criticalPath(g, () => -1), RangeError);
});

Deno.test("critical path ties go to the smallest ids", () => {
  assert.deepEqual(criticalPath(tasks("3", "1", "2")).path, ["1"]);
  // 2 -> 3 and 1 -> 4 are equally long: the one ending at the smaller id wins.
  assert.deepEqual(criticalPath(tasks("1", "2", "3:2", "4:1")).path, [
    "2",
    "3",
  ]);
  // Among blockers of equal length, the smallest id is stepped through.
  assert.deepEqual(criticalPath(tasks("1", "2", "3:2,1")).path, [
    "1",
    "3",
  ]);
});

Deno.test("topoOrder: blockers first, ties by id", () => {
  const order = topoOrder(tasks("10", "2:10", "1", "3:1,2"));
  assert.deepEqual(order, ["1", "10", "2", "3"]);
  assert.throws(() => topoOrder(tasks("1:9")), /blocked by unknown task 9/);
  assert.throws(() => topoOrder(tasks("1", "1")), /duplicate task id 1/);
});

Deno.test("cycles: found, named from the smallest id, in blocker order", () => {
  // 1 blocks 3, 3 blocks 2, 2 blocks 1; 4 is fine; 5 and 6 block each other.
  const g = tasks("1:2", "2:3", "3:1", "4", "5:6", "6:5", "7:7");
  const cycles = findCycles(g);
  assert.deepEqual(cycles, [["1", "3", "2"], ["5", "6"], ["7"]]);
  assert.equal(formatCycle(cycles[0]), "1 -> 3 -> 2 -> 1");
  assert.throws(() => topoOrder(g), (e: unknown) => {
    assert.ok(e instanceof CycleError);
    assert.equal(
      e.message,
      "dependency cycle: 1 -> 3 -> 2 -> 1; 5 -> 6 -> 5; 7 -> 7",
    );
    return true;
  });
  assert.throws(() => analyze(g), CycleError);
  assert.deepEqual(findCycles(tasks("1", "2:1", "3:1,2")), []);
});

Deno.test("cycles: a shortest cycle is named inside a tangled component", () => {
  // Edges (blocker -> blocked): 1->2, 2->3, 3->1 and 2->1: two cycles in
  // one component; the shorter, 1 -> 2 -> 1, is named.
  const g = [
    { id: "1", blockedBy: ["3", "2"] },
    { id: "2", blockedBy: ["1"] },
    { id: "3", blockedBy: ["2"] },
  ];
  assert.deepEqual(findCycles(g), [["1", "2"]]);
});

Deno.test("cycles: a long chain does not overflow the stack", () => {
  const n = 20000;
  const g: DagTask[] = Array.from({ length: n }, (_, i) => ({
    id: String(i + 1),
    blockedBy: i === 0 ? [String(n)] : [String(i)],
  }));
  const [cycle] = findCycles(g);
  assert.equal(cycle.length, n);
  assert.equal(cycle[0], "1");
  g[0] = { id: "1", blockedBy: [] };
  assert.deepEqual(findCycles(g), []);
  assert.equal(analyze(g).criticalPath.length, n);
});

Deno.test("readyTasks: blockers done, not claimed, not done, id order", () => {
  const g = tasks("10", "2", "1", "3:1,2", "4:3", "5:1");
  assert.deepEqual(readyTasks(g, [], []).map((t) => t.id), ["1", "2", "10"]);
  assert.deepEqual(readyTasks(g, [], ["1"]).map((t) => t.id), ["2", "10"]);
  assert.deepEqual(readyTasks(g, ["1"], []).map((t) => t.id), ["2", "5", "10"]);
  assert.deepEqual(
    readyTasks(g, ["1", "2"], ["5"]).map((t) => t.id),
    ["3", "10"],
  );
  assert.deepEqual(
    readyTasks(g, new Set(["1", "2", "3", "10"]), new Set(["4"])).map((t) =>
      t.id
    ),
    ["5"],
  );
  assert.deepEqual(readyTasks(g, ["1", "2", "3", "4", "5", "10"]), []);
  // Returns the caller's own objects (the queue keeps its fields).
  const rich = [{ id: "1", blockedBy: [], subject: "x" }];
  assert.equal(readyTasks(rich, [])[0], rich[0]);
});

Deno.test("readyTasks: a failed (never done) blocker keeps dependents blocked", () => {
  const g = tasks("1", "2:1", "3:2", "4");
  // 1 failed: it is neither done nor claimed, so it would be offered again,
  // but nothing after it ever is.
  assert.deepEqual(readyTasks(g, ["4"], ["1"]).map((t) => t.id), []);
});

Deno.test("lowerBoundMakespan = max(critical path, work / ships)", () => {
  const g = tasks("1", "2:1", "3:1", "4:1", "5:1", "6:2,3,4,5");
  assert.equal(lowerBoundMakespan(g, 1, () => 1), 6);
  assert.equal(lowerBoundMakespan(g, 2, () => 1), 3);
  assert.equal(lowerBoundMakespan(g, 4, () => 1), 3);
  const d: Record<string, number> = {
    "1": 2,
    "2": 5,
    "3": 1,
    "4": 1,
    "5": 1,
    "6": 2,
  };
  assert.equal(lowerBoundMakespan(g, 8, (t) => d[t.id]), 9);
  assert.equal(lowerBoundMakespan(g, 1, (t) => d[t.id]), 12);
  assert.throws(() => lowerBoundMakespan(g, 0, () => 1), RangeError);
  assert.throws(() => lowerBoundMakespan(g, 1.5, () => 1), RangeError);
});

Deno.test("example plans: the numbers voyage check and the benchmark rely on", async () => {
  const twenty = await loadPlan(`${root}examples/plans/twenty`);
  const a = analyze(twenty.tasks);
  assert.equal(a.totalTasks, 20);
  assert.ok(a.criticalPath.length >= 7, "critical path of at least 7");
  assert.deepEqual(
    a.criticalPath,
    ["1", "9", "10", "11", "12", "13", "14", "15", "20"],
  );
  assert.equal(a.widestLevelWidth, 8);
  assert.deepEqual(a.levels[1], ["2", "3", "4", "5", "6", "7", "8", "9"]);
  assert.equal(a.recommendedShips, 8);
  // Fan-in: 16 waits for the 7 parts; 20 closes everything.
  assert.deepEqual(
    twenty.tasks.find((t) => t.id === "16")!.blockedBy,
    ["2", "3", "4", "5", "6", "7", "8"],
  );
  assert.equal(a.topoOrder.at(-1), "20");
  // A 7-task chain: 9 -> 10 -> ... -> 15, each blocked only by the one before.
  for (let id = 10; id <= 15; id++) {
    assert.deepEqual(
      twenty.tasks.find((t) => t.id === String(id))!.blockedBy,
      [String(id - 1)],
    );
  }
  // 1 s tasks on 8 ships: the bound is the 9-task chain, not 20 / 8.
  assert.equal(lowerBoundMakespan(twenty.tasks, 8, () => 1), 9);

  const demo = analyze((await loadPlan(`${root}examples/plans/demo`)).tasks);
  assert.equal(demo.totalTasks, 6);
  assert.equal(demo.widestLevelWidth, 3);
  assert.equal(demo.recommendedShips, 3);
  assert.deepEqual(demo.levels, [["1"], ["2", "3", "4"], ["5"], ["6"]]);

  const conflict = await loadPlan(`${root}examples/plans/conflict`);
  const c = analyze(conflict.tasks);
  assert.deepEqual(c.levels, [["1"], ["2", "3"]]);
  // The two greeting tasks are independent: both ready once 1 is done.
  assert.deepEqual(
    readyTasks(conflict.tasks, ["1"]).map((t) => t.id),
    ["2", "3"],
  );
});

Deno.test("chainRanks: tasks on the longest chain to the end", () => {
  const r = chainRanks([
    { id: "1", blockedBy: [] },
    { id: "2", blockedBy: ["1"] },
    { id: "3", blockedBy: ["1"] },
    { id: "4", blockedBy: ["3"] },
    { id: "5", blockedBy: ["2", "4"] },
  ]);
  assert.deepEqual(Object.fromEntries(r), { 1: 4, 2: 2, 3: 3, 4: 2, 5: 1 });
});
