/**
 * Checking a plan's files (what `sail` sends, or what was read from disk):
 * voyage.json, spec.md, verify.sh and the tasks, every problem collected.
 */

import { byteLength, LIMITS, MAX_SHIPS, TASK_FILE_RE } from "./plan_rules.ts";
import {
  EMPTY_REPO,
  type LoadPlanOptions,
  type Plan,
  PlanError,
  type PlanFiles,
  type PlanTask,
  type VoyageFile,
} from "./plan.ts";
import {
  absolute,
  Collector,
  describe,
  isObject,
  normalise,
  parseJson,
} from "./problems.ts";
import { linkTasks, readTasks } from "./tasks.ts";

/**
 * Validates a plan given as its files (what `sail` sends), with the same
 * rules as `loadPlan`; `dir` names it in messages and resolves a relative
 * `repo`.
 */
export function parsePlan(
  dir: string,
  files: PlanFiles,
  options: LoadPlanOptions = {},
): Plan {
  const c = new Collector();
  let total = 0;
  for (const [name, text] of Object.entries(files)) {
    if (typeof text !== "string") {
      c.error(name, "must be text");
      continue;
    }
    const n = byteLength(text);
    total += n;
    const max = name.startsWith("tasks/") ? LIMITS.taskFile : LIMITS.file;
    if (n > max) c.error(name, `is ${n} bytes; at most ${max}`);
    if (
      !["voyage.json", "spec.md", "verify.sh"].includes(name) &&
      !(name.startsWith("tasks/") && TASK_FILE_RE.test(name.slice(6)))
    ) {
      c.error(name, "is not a file a plan holds");
    }
  }
  if (total > LIMITS.total) {
    c.error("", `holds ${total} bytes; at most ${LIMITS.total}`);
  }
  if (!Object.keys(files).some((f) => f.startsWith("tasks/"))) {
    c.error("tasks", "no tasks: the directory holds no *.json files");
  }
  return checkPlan(dir, absolute(dir), files, options, c);
}

/**
 * Tasks to add to a voyage that has tasks `existing` (`voyage add`), as
 * task files by name (`tasks/<name>.json`), checked with a plan's rules:
 * the same fields and limits, unique ids (also against the voyage's),
 * known blockers (added or the voyage's own), no cycle. An added task may
 * not block one the voyage has already. Throws a PlanError listing them.
 */
export function parseAddedTasks(
  files: PlanFiles,
  existing: string[],
): PlanTask[] {
  const c = new Collector();
  const fail = (): never => {
    throw new PlanError(
      "",
      c.errors,
      "fix the task files, then add them again",
    );
  };
  if (typeof files !== "object" || files === null) {
    c.error("", "no task files");
    fail();
  }
  let total = 0;
  for (const [name, text] of Object.entries(files)) {
    if (typeof text !== "string") {
      c.error(name, "must be text");
      continue;
    }
    total += byteLength(text);
    if (byteLength(text) > LIMITS.taskFile) {
      c.error(name, `is ${byteLength(text)} bytes; at most ${LIMITS.taskFile}`);
    }
    if (!(name.startsWith("tasks/") && TASK_FILE_RE.test(name.slice(6)))) {
      c.error(name, "is not a task file (tasks/<name>.json)");
    }
  }
  if (total > LIMITS.total) {
    c.error("", `holds ${total} bytes; at most ${LIMITS.total}`);
  }
  if (Object.keys(files).length + existing.length > LIMITS.tasks) {
    c.error("", `a voyage holds at most ${LIMITS.tasks} tasks`);
  }
  if (c.errors.length) fail();
  const tasks = readTasks(files, c);
  if (tasks === null && c.errors.length === 0) c.error("", "no task files");
  if (tasks !== null) linkTasks(tasks, c, new Set(existing));
  if (c.errors.length) fail();
  return tasks!;
}

/** Checks a plan's files; throws PlanError with every problem in `c`. */
export function checkPlan(
  dir: string,
  path: string,
  files: PlanFiles,
  options: LoadPlanOptions,
  c: Collector,
): Plan {
  const fail = (): never => {
    throw new PlanError(dir, c.errors);
  };
  const text = (file: string): string | null => {
    const t = files[file];
    if (typeof t === "string") return t;
    if (!c.has(file)) c.error(file, "missing");
    return null;
  };

  // voyage.json
  let voyage: VoyageFile | null = null;
  const voyageText = text("voyage.json");
  if (voyageText !== null) {
    const v = parseJson(voyageText, "voyage.json", c);
    if (v !== undefined) voyage = checkVoyage(v, options, c);
  }

  // spec.md and verify.sh
  const spec = text("spec.md");
  if (spec !== null && spec.trim() === "") c.warn("spec.md", "is empty");
  const verify = text("verify.sh");
  if (verify !== null && verify.trim() === "") {
    c.warn("verify.sh", "is empty, so the voyage is never really verified");
  }

  // tasks/*.json
  const tasks = readTasks(files, c);
  if (tasks !== null) linkTasks(tasks, c);

  if (c.errors.length > 0) fail();

  const v = voyage!;
  let repo = options.repo ?? v.repo!;
  if (options.repo === undefined && /^\.\.?(\/|$)/.test(repo)) {
    repo = normalise(`${path}/${repo}`);
  }
  return {
    dir,
    path,
    voyage: v,
    repo,
    recommendedShips: v.recommended_ships,
    name: v.name,
    spec: spec!,
    objective: extractObjective(spec!),
    verify: verify!,
    tasks: tasks!,
    warnings: c.warnings,
    files,
  };
}

function checkVoyage(
  v: unknown,
  options: LoadPlanOptions,
  c: Collector,
): VoyageFile | null {
  const f = "voyage.json";
  if (!isObject(v)) {
    c.error(f, `must be a JSON object, not ${describe(v)}`);
    return null;
  }
  let ok = true;
  if (v.repo === undefined) {
    if (options.repo === undefined) {
      c.error(
        f,
        `"repo" is missing (owner/name, a git URL, a path, or "${EMPTY_REPO}"; or pass --repo)`,
      );
      ok = false;
    }
  } else if (typeof v.repo !== "string" || v.repo.trim() === "") {
    c.error(f, `"repo" must be a non-empty string, not ${describe(v.repo)}`);
    ok = false;
  }
  if (v.recommended_ships === undefined) {
    // ocaptain's default: sail --ships, else OHCOMMODORE_DEFAULT_SHIPS.
  } else if (
    typeof v.recommended_ships !== "number" ||
    !Number.isInteger(v.recommended_ships) || v.recommended_ships < 1
  ) {
    c.error(
      f,
      `"recommended_ships" must be a whole number >= 1, not ${
        describe(v.recommended_ships)
      }`,
    );
    ok = false;
  } else if (v.recommended_ships > MAX_SHIPS) {
    c.error(
      f,
      `"recommended_ships" is ${v.recommended_ships}; a voyage sails with at most ${MAX_SHIPS} ships`,
    );
    ok = false;
  }
  for (const key of ["name", "created"]) {
    if (v[key] !== undefined && typeof v[key] !== "string") {
      c.error(f, `"${key}" must be a string, not ${describe(v[key])}`);
      ok = false;
    }
  }
  for (const key of ["max_parallel_width", "total_tasks"]) {
    const n = v[key];
    if (
      n !== undefined &&
      (typeof n !== "number" || !Number.isInteger(n) || n < 0)
    ) {
      c.error(f, `"${key}" must be a whole number, not ${describe(n)}`);
      ok = false;
    }
  }
  return ok ? v as VoyageFile : null;
}

/**
 * The Objective section of spec.md (text under a heading named "Objective",
 * up to the next heading), else the first paragraph that is not a heading.
 */
export function extractObjective(spec: string): string {
  const lines = spec.replace(/\r\n/g, "\n").split("\n");
  const start = lines.findIndex((l) => /^#{1,6}\s*objective\b/i.test(l.trim()));
  if (start >= 0) {
    const body: string[] = [];
    for (const l of lines.slice(start + 1)) {
      if (/^#{1,6}\s/.test(l.trim())) break;
      body.push(l);
    }
    const text = body.join("\n").trim();
    if (text !== "") return text;
  }
  const paragraphs = spec.replace(/\r\n/g, "\n").split(/\n\s*\n/)
    .map((p) => p.trim())
    .filter((p) => p !== "" && !/^#{1,6}\s/.test(p));
  return paragraphs[0] ?? "";
}
