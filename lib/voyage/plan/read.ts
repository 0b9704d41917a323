/**
 * Reading a plan from disk: only regular files inside its directory, each
 * within its limit (plan_rules.ts); then checked like a sent plan.
 */

import { byteLength, LIMITS, TASK_FILE_RE } from "./plan_rules.ts";
import {
  type LoadPlanOptions,
  type Plan,
  PlanError,
  type PlanFiles,
} from "./plan.ts";
import { absolute, Collector } from "./problems.ts";
import { checkPlan } from "./check.ts";

/**
 * Reads `file` (plan-relative) if it is a regular file inside the plan of
 * at most `max` bytes; else records why not and returns null. Nothing that
 * is not a regular file is opened (a FIFO would block the read).
 */
export async function readPlanFile(
  root: string,
  file: string,
  max: number,
  c: Collector,
): Promise<string | null> {
  const target = await insidePlan(root, file, c);
  if (target === null) return null;
  let st: Deno.FileInfo;
  try {
    st = await Deno.stat(target);
  } catch (e) {
    c.error(file, `cannot be read: ${(e as Error).message}`);
    return null;
  }
  if (st.isDirectory) {
    c.error(file, "is a directory, not a file");
    return null;
  }
  if (!st.isFile) {
    c.error(file, "is not a regular file (a FIFO, socket or device)");
    return null;
  }
  if (st.size > max) {
    c.error(file, `is ${st.size} bytes; at most ${max}`);
    return null;
  }
  try {
    const bytes = await Deno.readFile(target);
    if (bytes.length > max) {
      c.error(file, `is ${bytes.length} bytes; at most ${max}`);
      return null;
    }
    return new TextDecoder().decode(bytes);
  } catch (e) {
    c.error(file, `cannot be read: ${(e as Error).message}`);
    return null;
  }
}

/**
 * The real path of plan-relative `file`, when it (after any symbolic
 * links) lies inside the plan directory `root` (itself a real path); else
 * records why and returns null.
 */
async function insidePlan(
  root: string,
  file: string,
  c: Collector,
): Promise<string | null> {
  let real: string;
  try {
    real = await Deno.realPath(`${root}/${file}`);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      // A dangling link is missing too, but say where it points.
      const link = await Deno.readLink(`${root}/${file}`).catch(() => null);
      c.error(
        file,
        link === null ? "missing" : "is a symbolic link to nothing",
      );
    } else c.error(file, `cannot be read: ${(e as Error).message}`);
    return null;
  }
  if (!real.startsWith(root === "/" ? "/" : `${root}/`)) {
    c.error(file, "is a symbolic link leading outside the plan directory");
    return null;
  }
  return real;
}

/** Drops a byte-order mark. */
export const unBom = (t: string) => t.charCodeAt(0) === 0xfeff ? t.slice(1) : t;

/** Loads and validates a plan directory. Throws PlanError listing every problem. */
export async function loadPlan(
  dir: string,
  options: LoadPlanOptions = {},
): Promise<Plan> {
  const path = absolute(dir);
  const c = new Collector();
  let root: string;
  try {
    const st = await Deno.stat(path);
    if (!st.isDirectory) {
      c.error(
        "",
        "is not a directory (a plan is a directory with voyage.json, spec.md, verify.sh and tasks/)",
      );
      throw new PlanError(dir, c.errors);
    }
    root = await Deno.realPath(path);
  } catch (e) {
    if (e instanceof PlanError) throw e;
    c.error("", "plan directory not found");
    throw new PlanError(dir, c.errors);
  }
  const files = await readPlanDir(root, c);
  return checkPlan(dir, path, files, options, c);
}

/**
 * Reads task files for `voyage add`: each path a task file (`*.json`), or
 * a directory whose `tasks/*.json` (a plan) or own `*.json` are read, with
 * a plan's care (regular files inside it, within their limits). The files
 * by the names `parseAddedTasks` takes; a PlanError when one cannot be read.
 */
export async function readAddedTaskFiles(
  paths: string[],
): Promise<PlanFiles> {
  const c = new Collector();
  const files: PlanFiles = {};
  const take = async (root: string, file: string, shown: string) => {
    const one = new Collector();
    const text = await readPlanFile(root, file, LIMITS.taskFile, one);
    for (const e of one.errors) c.error(shown, e.message);
    if (text === null) return;
    const name = `tasks/${file.slice(file.lastIndexOf("/") + 1)}`;
    if (files[name] !== undefined) {
      c.error(shown, `has the same file name as another task file given`);
    } else files[name] = unBom(text);
  };
  for (const given of paths) {
    const path = absolute(given);
    let st: Deno.FileInfo;
    try {
      st = await Deno.stat(path);
    } catch {
      c.error(given, "not found");
      continue;
    }
    if (st.isFile) {
      const dir = path.slice(0, path.lastIndexOf("/")) || "/";
      const base = path.slice(path.lastIndexOf("/") + 1);
      if (!TASK_FILE_RE.test(base)) {
        c.error(
          given,
          "a task file is named <name>.json (letters, digits, '.', '_' and '-')",
        );
        continue;
      }
      await take(await Deno.realPath(dir), base, given);
      continue;
    }
    const root = await Deno.realPath(path);
    const sub = await Deno.stat(`${root}/tasks`).then(
      (s) => s.isDirectory,
      () => false,
    );
    const dir = sub ? "tasks/" : "";
    let found = 0;
    for await (const e of Deno.readDir(`${root}/${dir}`)) {
      if (!e.name.endsWith(".json") || e.isDirectory) continue;
      if (!TASK_FILE_RE.test(e.name)) {
        c.error(
          `${given}/${dir}${JSON.stringify(e.name).slice(1, -1)}`,
          "task file names use letters, digits, '.', '_' and '-'",
        );
        continue;
      }
      found++;
      await take(root, `${dir}${e.name}`, `${given}/${dir}${e.name}`);
    }
    if (found === 0) c.error(given, "holds no task files (*.json)");
  }
  if (c.errors.length) {
    throw new PlanError(
      "",
      c.errors,
      "fix the task files, then add them again",
    );
  }
  return files;
}

/**
 * Reads what a plan holds: voyage.json, spec.md, verify.sh and
 * tasks/*.json, each a regular file inside `root` within its limit.
 * Records what is wrong in `c`.
 */
async function readPlanDir(root: string, c: Collector): Promise<PlanFiles> {
  const files: PlanFiles = {};
  let total = 0;
  const take = async (file: string, max: number) => {
    const text = await readPlanFile(root, file, max, c);
    if (text === null) return;
    total += byteLength(text);
    files[file] = unBom(text);
  };
  await take("voyage.json", LIMITS.file);
  await take("spec.md", LIMITS.file);
  await take("verify.sh", LIMITS.file);

  const names: string[] = [];
  const tasksDir = await insidePlan(root, "tasks", c);
  if (tasksDir === null) {
    if (c.has("tasks") && c.errors.at(-1)?.message === "missing") {
      c.errors.pop();
      c.error(
        "tasks",
        "missing: a plan needs a tasks/ directory with one JSON file per task",
      );
    }
    return files;
  }
  try {
    for await (const e of Deno.readDir(tasksDir)) {
      if (!e.name.endsWith(".json") || e.isDirectory) continue;
      if (!TASK_FILE_RE.test(e.name)) {
        c.error(
          `tasks/${JSON.stringify(e.name).slice(1, -1)}`,
          "task file names use letters, digits, '.', '_' and '-' (at most 100), not starting with '.' or '-'",
        );
        continue;
      }
      names.push(e.name);
    }
  } catch (e) {
    if (e instanceof Deno.errors.NotADirectory) {
      c.error("tasks", "must be a directory with one JSON file per task");
    } else c.error("tasks", `cannot be read: ${(e as Error).message}`);
    return files;
  }
  if (names.length === 0) {
    if (!c.has("tasks") && !c.errors.some((e) => e.file.startsWith("tasks/"))) {
      c.error("tasks", "no tasks: the directory holds no *.json files");
    }
    return files;
  }
  if (names.length > LIMITS.tasks) {
    c.error("tasks", `holds ${names.length} tasks; at most ${LIMITS.tasks}`);
    return files;
  }
  for (const name of names) {
    await take(`tasks/${name}`, LIMITS.taskFile);
    if (total > LIMITS.total) {
      c.error("", `holds more than ${LIMITS.total} bytes`);
      break;
    }
  }
  return files;
}
