/**
 * The shape of a voyage: pure graph logic over tasks and their blockers.
 * Nothing here reads files or touches a VM; plan.ts validates a plan with
 * `findCycles`, `voyage check` prints `analyze`, the task queue hands out
 * work with `readyTasks` and `chainRanks`, and the benchmark measures against
 * `lowerBoundMakespan`.
 *
 * Edges point from a blocker to the task it blocks: in a printed chain or
 * cycle, `1 -> 3` means "1 must finish before 3 starts".
 */

/** The least a task needs for graph work: its id and what blocks it. */
export interface DagTask {
  readonly id: string;
  readonly blockedBy: readonly string[];
}

/** Default ceiling on the recommended ship count (see `recommendShips`). */
export const DEFAULT_SHIP_CAP = 8;

export interface AnalyzeOptions<T extends DagTask = DagTask> {
  /** Cost of one task on the critical path; default 1, so length = task count. */
  weightOf?: (task: T) => number;
  /** Upper bound for the recommended ship count; default DEFAULT_SHIP_CAP. */
  shipCap?: number;
}

export interface Analysis {
  totalTasks: number;
  /** levels[0] = tasks with no blockers; level = 1 + highest blocker level. Ids in id order. */
  levels: string[][];
  /** The level of each task id. */
  levelOf: Record<string, number>;
  /** Size of the widest level (0 for an empty plan). */
  widestLevelWidth: number;
  /** Index of the first level that has that width (-1 for an empty plan). */
  widestLevelIndex: number;
  /** Longest chain of task ids, first to last (blocker before blocked). */
  criticalPath: string[];
  /** Sum of the weights along the critical path (its task count by default). */
  criticalPathLength: number;
  /** Sum of all weights (the task count by default). */
  totalWork: number;
  /** min(widest level, cap), at least 1: see `recommendShips`. */
  recommendedShips: number;
  /** The cap that was applied. */
  shipCap: number;
  /** Every task id, blockers before the tasks they block, ties in id order. */
  topoOrder: string[];
}

/**
 * Orders task ids: numeric ids ("1".."N", the usual case) by value, numeric
 * before non-numeric, the rest as plain strings. Every list this module
 * returns is in this order, so output is deterministic.
 */
export function compareIds(a: string, b: string): number {
  const na = /^\d+$/.test(a), nb = /^\d+$/.test(b);
  if (na && nb) {
    const d = Number(a) - Number(b);
    if (d !== 0) return d;
    // "01" and "1": same value, fall through to a stable string order.
  } else if (na !== nb) {
    return na ? -1 : 1;
  }
  return a < b ? -1 : a > b ? 1 : 0;
}

/** Thrown when graph functions get a graph that is not a DAG. */
export class CycleError extends Error {
  constructor(readonly cycles: string[][]) {
    super(
      `dependency cycle: ${cycles.map(formatCycle).join("; ")}`,
    );
    this.name = "CycleError";
  }
}

/** `["1","3","2"]` -> `"1 -> 3 -> 2 -> 1"`. */
export function formatCycle(cycle: readonly string[]): string {
  return [...cycle, cycle[0]].join(" -> ");
}

/**
 * Every dependency cycle, at most one per strongly connected component,
 * each as a list of ids in edge order (blocker first) starting at its
 * smallest id, so `1 blocks 3, 3 blocks 2, 2 blocks 1` gives ["1","3","2"].
 * Self-dependencies count as cycles of one. Blockers that name no task are
 * ignored here (plan.ts reports them separately).
 */
export function findCycles(tasks: readonly DagTask[]): string[][] {
  const ids = new Set(tasks.map((t) => t.id));
  // succ: blocker -> tasks it blocks, in id order.
  const succ = new Map<string, string[]>();
  for (const id of ids) succ.set(id, []);
  for (const t of tasks) {
    for (const b of new Set(t.blockedBy)) {
      if (ids.has(b)) succ.get(b)!.push(t.id);
    }
  }
  for (const list of succ.values()) list.sort(compareIds);
  const order = [...ids].sort(compareIds);

  // Tarjan's strongly connected components, iterative (plans can be long chains).
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const onStack = new Set<string>();
  const stack: string[] = [];
  const components: string[][] = [];
  let next = 0;
  for (const root of order) {
    if (index.has(root)) continue;
    const work: { id: string; i: number }[] = [{ id: root, i: 0 }];
    index.set(root, next);
    low.set(root, next++);
    stack.push(root);
    onStack.add(root);
    while (work.length > 0) {
      const frame = work[work.length - 1];
      const out = succ.get(frame.id)!;
      if (frame.i < out.length) {
        const w = out[frame.i++];
        if (!index.has(w)) {
          index.set(w, next);
          low.set(w, next++);
          stack.push(w);
          onStack.add(w);
          work.push({ id: w, i: 0 });
        } else if (onStack.has(w)) {
          low.set(frame.id, Math.min(low.get(frame.id)!, index.get(w)!));
        }
        continue;
      }
      work.pop();
      if (work.length > 0) {
        const parent = work[work.length - 1].id;
        low.set(parent, Math.min(low.get(parent)!, low.get(frame.id)!));
      }
      if (low.get(frame.id) === index.get(frame.id)) {
        const comp: string[] = [];
        let w: string;
        do {
          w = stack.pop()!;
          onStack.delete(w);
          comp.push(w);
        } while (w !== frame.id);
        components.push(comp);
      }
    }
  }

  const cycles: string[][] = [];
  for (const comp of components) {
    if (comp.length === 1) {
      const id = comp[0];
      if (succ.get(id)!.includes(id)) cycles.push([id]);
      continue;
    }
    cycles.push(cycleWithin(new Set(comp), succ));
  }
  return cycles.sort((a, b) => compareIds(a[0], b[0]));
}

/** A shortest cycle through the smallest id of a strongly connected component. */
function cycleWithin(
  comp: Set<string>,
  succ: Map<string, string[]>,
): string[] {
  const start = [...comp].sort(compareIds)[0];
  // Breadth-first from start inside the component until an edge returns to it.
  const parent = new Map<string, string>();
  const queue = [start];
  const seen = new Set([start]);
  while (queue.length > 0) {
    const v = queue.shift()!;
    for (const w of succ.get(v)!) {
      if (!comp.has(w)) continue;
      if (w === start) {
        const path = [v];
        while (path[0] !== start) path.unshift(parent.get(path[0])!);
        return path;
      }
      if (!seen.has(w)) {
        seen.add(w);
        parent.set(w, v);
        queue.push(w);
      }
    }
  }
  return [start]; // unreachable: every node of an SCC lies on a cycle
}

function checkGraph(tasks: readonly DagTask[]): Map<string, DagTask> {
  const byId = new Map<string, DagTask>();
  for (const t of tasks) {
    if (byId.has(t.id)) throw new Error(`duplicate task id ${t.id}`);
    byId.set(t.id, t);
  }
  for (const t of tasks) {
    for (const b of t.blockedBy) {
      if (!byId.has(b)) {
        throw new Error(`task ${t.id} is blocked by unknown task ${b}`);
      }
    }
  }
  return byId;
}

/**
 * All ids with every blocker before the tasks it blocks (Kahn's algorithm,
 * always taking the smallest ready id, so the order is deterministic).
 * Throws CycleError if the graph has a cycle, Error on unknown blockers or
 * duplicate ids.
 */
export function topoOrder(tasks: readonly DagTask[]): string[] {
  checkGraph(tasks);
  const pending = new Map<string, number>();
  const succ = new Map<string, string[]>();
  for (const t of tasks) {
    const blockers = new Set(t.blockedBy);
    pending.set(t.id, blockers.size);
    for (const b of blockers) {
      if (!succ.has(b)) succ.set(b, []);
      succ.get(b)!.push(t.id);
    }
  }
  let ready = tasks.filter((t) => pending.get(t.id) === 0).map((t) => t.id);
  const order: string[] = [];
  while (ready.length > 0) {
    ready.sort(compareIds);
    const id = ready.shift()!;
    order.push(id);
    const released: string[] = [];
    for (const s of succ.get(id) ?? []) {
      const left = pending.get(s)! - 1;
      pending.set(s, left);
      if (left === 0) released.push(s);
    }
    ready = ready.concat(released);
  }
  if (order.length !== tasks.length) throw new CycleError(findCycles(tasks));
  return order;
}

/**
 * The recommended ship count: min(widest level, cap), and at least 1.
 *
 * Why: the widest level is the largest set of tasks that the plan itself
 * says can run at the same time (none of them blocks another), so more ships
 * than that would mostly sit idle while paying for VMs; fewer would leave
 * that level's work queued. It is the rule ocaptain's dag_analyzer used, so
 * plans written for it keep their meaning. The cap keeps a very wide plan
 * (say 30 independent edits) from creating 30 VMs by default: past a handful
 * of ships the flagship's integration of commits becomes the bottleneck and
 * merges conflict more. The count is advice: `--ships N` overrides it, and
 * voyage.json's own `recommended_ships` is shown beside it, never silently
 * replaced.
 */
export function recommendShips(
  widestLevelWidth: number,
  cap = DEFAULT_SHIP_CAP,
): number {
  return Math.max(1, Math.min(widestLevelWidth, Math.max(1, cap)));
}

/**
 * Longest chain by total weight (by task count when every weight is 1).
 * Ties go to the chain that ends at, and steps through, the smallest ids.
 */
export function criticalPath<T extends DagTask>(
  tasks: readonly T[],
  weightOf: (task: T) => number = () => 1,
): { path: string[]; length: number } {
  const order = topoOrder(tasks);
  const byId = new Map(tasks.map((t) => [t.id, t] as const));
  const dist = new Map<string, number>();
  const via = new Map<string, string | undefined>();
  for (const id of order) {
    const t = byId.get(id)!;
    let best: string | undefined;
    for (const b of [...new Set(t.blockedBy)].sort(compareIds)) {
      if (best === undefined || dist.get(b)! > dist.get(best)!) best = b;
    }
    dist.set(
      id,
      weight(weightOf, t) + (best === undefined ? 0 : dist.get(best)!),
    );
    via.set(id, best);
  }
  let end: string | undefined;
  for (const id of [...order].sort(compareIds)) {
    if (end === undefined || dist.get(id)! > dist.get(end)!) end = id;
  }
  if (end === undefined) return { path: [], length: 0 };
  const path: string[] = [];
  for (let id: string | undefined = end; id !== undefined; id = via.get(id)) {
    path.unshift(id);
  }
  return { path, length: dist.get(end)! };
}

function weight<T>(weightOf: (task: T) => number, t: T): number {
  const w = weightOf(t);
  if (!Number.isFinite(w) || w < 0) {
    throw new RangeError(
      `task ${
        (t as DagTask).id
      }: weight must be a finite number >= 0, got ${w}`,
    );
  }
  return w;
}

/** Levels, widths, critical path and the recommended ship count. */
export function analyze<T extends DagTask>(
  tasks: readonly T[],
  options: AnalyzeOptions<T> = {},
): Analysis {
  const weightOf = options.weightOf ?? (() => 1);
  const shipCap = options.shipCap ?? DEFAULT_SHIP_CAP;
  const order = topoOrder(tasks);
  const byId = new Map(tasks.map((t) => [t.id, t] as const));

  const levelOf: Record<string, number> = {};
  const levels: string[][] = [];
  for (const id of order) {
    let level = 0;
    for (const b of byId.get(id)!.blockedBy) {
      level = Math.max(level, levelOf[b] + 1);
    }
    levelOf[id] = level;
    (levels[level] ??= []).push(id);
  }
  for (const level of levels) level.sort(compareIds);

  let widestLevelWidth = 0, widestLevelIndex = -1;
  levels.forEach((level, i) => {
    if (level.length > widestLevelWidth) {
      widestLevelWidth = level.length;
      widestLevelIndex = i;
    }
  });

  const cp = criticalPath(tasks, weightOf);
  let totalWork = 0;
  for (const t of tasks) totalWork += weight(weightOf, t);

  return {
    totalTasks: tasks.length,
    levels,
    levelOf,
    widestLevelWidth,
    widestLevelIndex,
    criticalPath: cp.path,
    criticalPathLength: cp.length,
    totalWork,
    recommendedShips: recommendShips(widestLevelWidth, shipCap),
    shipCap,
    topoOrder: order,
  };
}

/**
 * Tasks that may start now: not done, not claimed, and every blocker done.
 * In id order, so the queue hands out work deterministically. A task whose
 * blocker failed (never done) is never ready, and neither is anything after
 * it.
 */
export function readyTasks<T extends DagTask>(
  tasks: readonly T[],
  doneIds: Iterable<string>,
  claimedIds: Iterable<string> = [],
): T[] {
  const done = new Set(doneIds);
  const claimed = new Set(claimedIds);
  return tasks
    .filter((t) =>
      !done.has(t.id) && !claimed.has(t.id) &&
      t.blockedBy.every((b) => done.has(b))
    )
    .sort((a, b) => compareIds(a.id, b.id));
}

/**
 * For each task, how many tasks the longest chain starting at it holds
 * (itself included): 1 for a task nothing waits on. The queue hands out the
 * ready task with the highest rank first (critical-path-first list
 * scheduling), so when one landing releases many tasks the one on the
 * longest chain starts first instead of whichever has the smallest id.
 * Linear in tasks plus edges; blockers that are not in `tasks` are ignored
 * (plans are validated when they are loaded).
 */
export function chainRanks(tasks: readonly DagTask[]): Map<string, number> {
  const blocks = new Map<string, string[]>();
  for (const t of tasks) {
    for (const b of new Set(t.blockedBy)) {
      if (!blocks.has(b)) blocks.set(b, []);
      blocks.get(b)!.push(t.id);
    }
  }
  const rank = new Map<string, number>();
  const visit = (id: string, depth: number): number => {
    const known = rank.get(id);
    if (known !== undefined) return known;
    // A cycle would recurse forever; plans with cycles never get this far.
    if (depth > tasks.length) throw new CycleError(findCycles(tasks));
    let best = 0;
    for (const s of blocks.get(id) ?? []) {
      best = Math.max(best, visit(s, depth + 1));
    }
    rank.set(id, best + 1);
    return best + 1;
  };
  for (const t of tasks) visit(t.id, 0);
  return rank;
}

/**
 * The least time any schedule on `ships` ships can take:
 * max(critical path duration, total work / ships). No schedule beats the
 * longest chain (its tasks run one after another), nor the work spread
 * perfectly evenly. The benchmark reports makespan / this bound.
 */
export function lowerBoundMakespan<T extends DagTask>(
  tasks: readonly T[],
  ships: number,
  durationOf: (task: T) => number,
): number {
  if (!Number.isInteger(ships) || ships < 1) {
    throw new RangeError(`ships must be a positive integer, got ${ships}`);
  }
  if (tasks.length === 0) return 0;
  const cp = criticalPath(tasks, durationOf);
  let total = 0;
  for (const t of tasks) total += weight(durationOf, t);
  return Math.max(cp.length, total / ships);
}
