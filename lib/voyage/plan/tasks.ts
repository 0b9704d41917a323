/**
 * A plan's task files: each checked on its own (fields, ids, limits), then
 * joined across files (known blockers, no cycle).
 */

import { compareIds, findCycles, formatCycle } from "./dag.ts";
import { taskFieldProblems } from "./plan_rules.ts";
import {
  PLAN_TASK_STATUSES,
  type PlanFiles,
  type PlanTask,
  type PlanTaskStatus,
} from "./plan.ts";
import {
  Collector,
  describe,
  isObject,
  type Obj,
  parseJson,
} from "./problems.ts";

/** A task as read from its file, before edges are joined across files. */
export interface RawTask extends PlanTask {
  ownBlockedBy: string[];
  ownBlocks: string[];
  /** Has an `owner`, `metadata.ship` or `metadata.assignee`. */
  preassigned: boolean;
}

export function readTasks(files: PlanFiles, c: Collector): RawTask[] | null {
  const names = Object.keys(files).filter((f) => f.startsWith("tasks/"))
    .map((f) => f.slice("tasks/".length));
  if (names.length === 0) return null;
  names.sort((a, b) => compareIds(a.slice(0, -5), b.slice(0, -5)));

  const tasks: RawTask[] = [];
  let allRead = !c.errors.some((e) => e.file.startsWith("tasks"));
  for (const name of names) {
    const file = `tasks/${name}`;
    const v = parseJson(files[file], file, c);
    if (v === undefined) {
      allRead = false;
      continue;
    }
    const t = checkTask(v, file, c);
    if (t === null) allRead = false;
    else tasks.push(t);
  }
  // Cross-file checks on a partial set would report blockers as unknown
  // only because their file was bad; they run once every file reads.
  return allRead ? tasks : null;
}

function checkId(v: unknown): string | null {
  if (typeof v === "string" && v.trim() !== "") return v.trim();
  if (typeof v === "number" && Number.isInteger(v) && v >= 0) return String(v);
  return null;
}

function checkIdList(
  o: Obj,
  key: string,
  file: string,
  c: Collector,
): string[] | null {
  const v = o[key];
  if (v === undefined || v === null) return [];
  if (!Array.isArray(v)) {
    c.error(file, `"${key}" must be a list of task ids, not ${describe(v)}`);
    return null;
  }
  const out: string[] = [];
  for (const item of v) {
    const id = checkId(item);
    if (id === null) {
      c.error(
        file,
        `"${key}" must hold task ids (strings or whole numbers), not ${
          describe(item)
        }`,
      );
      return null;
    }
    if (!out.includes(id)) out.push(id);
  }
  return out;
}

function checkTask(v: unknown, file: string, c: Collector): RawTask | null {
  if (!isObject(v)) {
    c.error(file, `must be a JSON object, not ${describe(v)}`);
    return null;
  }
  const before = c.errors.length;
  const str = (o: Obj, key: string, where = ""): string | undefined => {
    const x = o[key];
    if (x === undefined || x === null) return undefined;
    if (typeof x !== "string") {
      c.error(file, `"${where}${key}" must be a string, not ${describe(x)}`);
      return undefined;
    }
    return x;
  };

  let id: string | null = null;
  if (v.id === undefined || v.id === null) c.error(file, `"id" is missing`);
  else {
    id = checkId(v.id);
    if (id === null) {
      c.error(
        file,
        `"id" must be a non-empty string or a whole number, not ${
          describe(v.id)
        }`,
      );
    }
  }

  const subject = str(v, "subject");
  const title = str(v, "title");
  const heading = subject ?? title;
  if (v.subject == null && v.title == null) {
    c.error(file, `"subject" is missing (or the older shape's "title")`);
  } else if (heading !== undefined && heading.trim() === "") {
    c.error(file, `"${subject !== undefined ? "subject" : "title"}" is empty`);
  }
  const description = str(v, "description") ?? "";
  const activeForm = str(v, "activeForm");
  const owner = str(v, "owner");
  const created = str(v, "created");
  const updated = str(v, "updated");

  let status: PlanTaskStatus = "pending";
  if (v.status !== undefined && v.status !== null) {
    if (PLAN_TASK_STATUSES.includes(v.status as PlanTaskStatus)) {
      status = v.status as PlanTaskStatus;
    } else {
      c.error(
        file,
        `"status" must be one of ${PLAN_TASK_STATUSES.join(", ")}, not ${
          describe(v.status)
        }`,
      );
    }
  }

  let metadata: Obj = {};
  if (v.metadata !== undefined && v.metadata !== null) {
    if (isObject(v.metadata)) metadata = v.metadata;
    else {
      c.error(
        file,
        `"metadata" must be an object, not ${describe(v.metadata)}`,
      );
    }
  }
  const ownCommand = str(v, "command");
  const metaCommand = str(metadata, "command", "metadata.");
  const acceptance = str(v, "acceptance") ??
    str(metadata, "acceptance", "metadata.") ??
    extractAcceptance(description);

  const ownBlockedBy = checkIdList(v, "blockedBy", file, c);
  const ownBlocks = checkIdList(v, "blocks", file, c);

  if (c.errors.length > before) return null;
  const command = ownCommand ?? metaCommand;
  for (
    const p of taskFieldProblems({
      id: id!,
      subject: heading!,
      description,
      acceptance,
      command,
    })
  ) c.error(file, p);
  if (c.errors.length > before) return null;

  // Warnings: worth a look, never fatal.
  const stem = file.slice("tasks/".length, -".json".length);
  if (stem !== id) {
    c.warn(file, `holds task ${id}; the file name suggests ${stem}`);
  }
  if (description.trim() === "") {
    c.warn(file, `task ${id} has no description: agents see only its subject`);
  }
  if (status !== "pending") {
    c.warn(
      file,
      `task ${id} has status "${status}"; every task of a new voyage starts pending`,
    );
  }
  if (
    ownCommand !== undefined && metaCommand !== undefined &&
    ownCommand !== metaCommand
  ) {
    c.warn(
      file,
      `task ${id} has both "command" and "metadata.command"; "command" is used`,
    );
  }

  const preassigned = owner ?? metadata.ship ?? metadata.assignee;
  const t: RawTask = {
    id: id!,
    subject: heading!.trim(),
    description,
    blockedBy: [],
    blocks: [],
    status,
    metadata,
    shape: subject === undefined ? "older" : "new",
    file,
    ownBlockedBy: ownBlockedBy!,
    ownBlocks: ownBlocks!,
    preassigned: typeof preassigned === "string" && preassigned !== "",
  };
  if (activeForm !== undefined) t.activeForm = activeForm;
  if (command !== undefined) t.command = command;
  if (acceptance !== undefined) t.acceptance = acceptance;
  if (owner !== undefined) t.owner = owner;
  if (created !== undefined) t.created = created;
  if (updated !== undefined) t.updated = updated;
  return t;
}

/**
 * Cross-file checks and normalisation: duplicate ids, unknown blockers,
 * self-dependencies, cycles; then blockedBy = own blockedBy ∪ inverse of
 * everyone's blocks, and blocks = inverse of that. Mutates `tasks` in place
 * (dropping duplicates and the private fields).
 */
export function linkTasks(
  tasks: RawTask[],
  c: Collector,
  existing: ReadonlySet<string> = new Set(),
): void {
  const byId = new Map<string, RawTask>();
  const unique: RawTask[] = [];
  for (const t of tasks) {
    const first = byId.get(t.id);
    if (first) {
      c.error(
        t.file,
        `duplicate task id ${t.id}: also in ${first.file}`,
      );
      continue;
    }
    if (existing.has(t.id)) {
      c.error(t.file, `the voyage has a task ${t.id} already`);
      continue;
    }
    byId.set(t.id, t);
    unique.push(t);
  }

  const edges = new Map<string, Set<string>>(); // task -> its blockers
  // Blockers among the voyage's own tasks (added tasks only): no cycle
  // can pass through them, since they block no added task's blocker.
  const outside = new Map<string, Set<string>>();
  for (const t of unique) {
    edges.set(t.id, new Set());
    outside.set(t.id, new Set());
  }
  for (const t of unique) {
    for (const b of t.ownBlockedBy) {
      if (b === t.id) {
        c.error(t.file, `task ${t.id} is blocked by itself`);
      } else if (byId.has(b)) edges.get(t.id)!.add(b);
      else if (existing.has(b)) outside.get(t.id)!.add(b);
      else c.error(t.file, `task ${t.id} is blocked by unknown task ${b}`);
    }
    for (const d of t.ownBlocks) {
      if (d === t.id) {
        c.error(t.file, `task ${t.id} blocks itself`);
      } else if (byId.has(d)) edges.get(d)!.add(t.id);
      else if (existing.has(d)) {
        c.error(
          t.file,
          `task ${t.id} blocks task ${d}, which the voyage has already; an added task may block only added tasks`,
        );
      } else c.error(t.file, `task ${t.id} blocks unknown task ${d}`);
    }
  }
  const graph = unique.map((t) => ({
    id: t.id,
    blockedBy: [...edges.get(t.id)!],
  }));
  for (const cycle of findCycles(graph)) {
    if (cycle.length === 1) continue; // self-dependencies are reported above
    c.error(
      byId.get(cycle[0])!.file,
      `dependency cycle ${
        formatCycle(cycle)
      } (each must finish before the next; files ${
        cycle.map((id) => byId.get(id)!.file).join(", ")
      })`,
    );
  }

  const dependents = new Map<string, string[]>();
  for (const t of unique) dependents.set(t.id, []);
  for (const [id, blockers] of edges) {
    for (const b of blockers) dependents.get(b)!.push(id);
  }
  for (const t of unique) {
    t.blockedBy = [...edges.get(t.id)!, ...outside.get(t.id)!].sort(
      compareIds,
    );
    t.blocks = dependents.get(t.id)!.sort(compareIds);
  }

  unique.sort((a, b) => compareIds(a.id, b.id));
  const preassigned = unique.filter((t) => t.preassigned).map((t) => t.id);
  if (preassigned.length > 0) {
    c.warn(
      "tasks",
      `${preassigned.length === 1 ? "task" : "tasks"} ${
        preassigned.join(", ")
      } name a ship (owner, metadata.ship or metadata.assignee); ignored: the flagship gives each ready task to the next free ship`,
    );
  }
  tasks.length = 0;
  for (const t of unique) {
    const { ownBlockedBy: _a, ownBlocks: _b, preassigned: _c, ...clean } = t;
    tasks.push(clean as RawTask);
  }
}

/**
 * The "Acceptance:" part of a description (SKILL.md's template ends with
 * "Files: …\n\nAcceptance: …"): from the label to the next "Label:"
 * paragraph or the end. Undefined when there is none.
 */
export function extractAcceptance(description: string): string | undefined {
  const paragraphs = description.replace(/\r\n/g, "\n").split(/\n\s*\n/);
  const i = paragraphs.findIndex((p) =>
    /^\s*(acceptance( criteria)?)\s*:/i.test(p)
  );
  if (i < 0) return undefined;
  const out = [paragraphs[i].replace(/^\s*acceptance( criteria)?\s*:\s*/i, "")];
  for (const p of paragraphs.slice(i + 1)) {
    if (/^\s*[A-Z][A-Za-z ]{0,30}:/.test(p)) break;
    out.push(p);
  }
  const text = out.join("\n\n").trim();
  return text === "" ? undefined : text;
}
