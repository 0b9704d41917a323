/**
 * Voyage plans: loading and validation. A plan is a directory in ocaptain's
 * format:
 *
 *   voyage.json    { "repo": ..., "recommended_ships": N (optional), ...anything else kept }
 *   spec.md        what the voyage is for (its Objective section goes to agents)
 *   verify.sh      exit criteria, run by the flagship on the finished branch
 *   tasks/*.json   one task per file (Claude Code's task-list shape)
 *
 * `loadPlan` reads everything, collects every problem it finds (not just the
 * first) and throws them together as one PlanError, a UsageError: a bad plan
 * is bad input and is reported before any VM exists. Pure file reading; no
 * network, no VMs. Only regular files inside the plan directory are read
 * (a symbolic link may point elsewhere in the plan, not out of it; a FIFO
 * or device is refused unopened), each within its size limit
 * (plan_rules.ts), and what was read is kept (`Plan.files`): `sail` sends
 * exactly that, and the flagship checks it again with `parsePlan` before it
 * writes anything.
 */

import {
  parse as parseJsonc,
  type ParseError,
  printParseErrorCode,
} from "jsonc-parser";
import { UsageError } from "../errors.ts";
import { escapeControls } from "../terminal_text.ts";
import { compareIds, findCycles, formatCycle } from "./dag.ts";
import {
  byteLength,
  LIMITS,
  MAX_SHIPS,
  TASK_FILE_RE,
  taskFieldProblems,
} from "./plan_rules.ts";

/** A plan's files by relative path ("voyage.json", "tasks/3.json"): what `sail` sends. */
export type PlanFiles = Record<string, string>;

export type TaskStatus = "pending" | "in_progress" | "completed";
export const TASK_STATUSES: readonly TaskStatus[] = [
  "pending",
  "in_progress",
  "completed",
];

/**
 * `repo` value meaning "no repository to start from": the voyage begins with
 * a new repository holding one empty commit. The example plans use it so
 * they sail with no network and no account.
 */
export const EMPTY_REPO = "empty";

/** One task, normalised from either file shape. */
export interface PlanTask {
  /** Always a string ("3"), even when the file had a number. */
  id: string;
  /** `subject`, or the older shape's `title`. */
  subject: string;
  /** "" when absent (a warning). */
  description: string;
  /**
   * Every task that must be done first: the file's own `blockedBy` united
   * with every other task that lists this one in its `blocks`. Id order.
   */
  blockedBy: string[];
  /** The inverse of `blockedBy` over the whole plan, id order. */
  blocks: string[];
  activeForm?: string;
  /** As written in the file, "pending" when absent. */
  status: TaskStatus;
  /** The file's `metadata` object as is ({} when absent). */
  metadata: Record<string, unknown>;
  /** For the `shell` agent: `command`, else `metadata.command`. */
  command?: string;
  /**
   * Acceptance criteria: `acceptance` or `metadata.acceptance` if given,
   * else the "Acceptance:" paragraph of the description.
   */
  acceptance?: string;
  /** Older-shape and runtime fields, kept when present. */
  owner?: string;
  created?: string;
  updated?: string;
  /** "older" when the file uses `title` and no `subject`. */
  shape: "new" | "older";
  /** Path of the task file relative to the plan directory: "tasks/3.json". */
  file: string;
}

/** voyage.json as written; every field is kept, two are checked. */
export interface VoyageFile {
  /** owner/name, a git URL, a path, or EMPTY_REPO. */
  repo?: string;
  /** Absent: `sail --ships`, else OHCOMMODORE_DEFAULT_SHIPS (3), decides. */
  recommended_ships?: number;
  name?: string;
  [key: string]: unknown;
}

export interface PlanProblem {
  /** Relative to the plan directory ("tasks/3.json"), or "" for the directory itself. */
  file: string;
  message: string;
}

export interface Plan {
  /** The directory as given by the caller (used in messages). */
  dir: string;
  /** The same directory, absolute. */
  path: string;
  voyage: VoyageFile;
  /**
   * The repository to start from: the override if given, else voyage.json's
   * `repo`, with a relative path (`./x`, `../x`) resolved against the plan
   * directory so it means the same from any working directory.
   */
  repo: string;
  /**
   * voyage.json's `recommended_ships` (advice; `voyage check` shows its
   * own), when it gives one.
   */
  recommendedShips?: number;
  name?: string;
  /** spec.md, whole. */
  spec: string;
  /** The Objective section of spec.md (or its first paragraph). */
  objective: string;
  /** verify.sh, whole. */
  verify: string;
  /** Every task, in id order. */
  tasks: PlanTask[];
  /** Things worth fixing that do not stop a voyage. */
  warnings: PlanProblem[];
  /** Every file read, as read (what `sail` sends to the flagship). */
  files: PlanFiles;
}

export interface LoadPlanOptions {
  /**
   * A repository that replaces voyage.json's `repo` (`sail --repo`). With it,
   * voyage.json may leave `repo` out.
   */
  repo?: string;
}

/** Every problem found in a plan. A UsageError: exit code 2. */
export class PlanError extends UsageError {
  constructor(
    readonly dir: string,
    readonly problems: PlanProblem[],
    hint = `fix the plan, then run: ohcommodore voyage check ${dir}`,
  ) {
    super(renderProblems(dir, problems), hint);
    this.name = "PlanError";
  }
}

function renderProblems(dir: string, problems: PlanProblem[]): string {
  // Ids and names come from the plan: shown with control characters escaped.
  const lines = problems.map((p) =>
    escapeControls(`${displayPath(dir, p.file)}: ${p.message}`)
  );
  // No directory: task files to add to a voyage.
  const what = dir === "" ? "invalid tasks" : "invalid plan";
  if (lines.length === 1) return `${what}: ${lines[0]}`;
  return `${what}${dir ? ` ${dir}` : ""}: ${lines.length} problems\n` +
    lines.map((l) => `  ${l}`).join("\n");
}

/** `dir` joined with a plan-relative file, for messages. */
export function displayPath(dir: string, file: string): string {
  if (dir === "") return file || ".";
  const base = dir.replace(/\/+$/, "") || "/";
  if (file === "") return base;
  return base === "/" ? `/${file}` : `${base}/${file}`;
}

type Obj = Record<string, unknown>;

function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `a string (${JSON.stringify(v)})`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Collects problems and warnings while a plan is read. */
class Collector {
  errors: PlanProblem[] = [];
  warnings: PlanProblem[] = [];
  error(file: string, message: string): void {
    this.errors.push({ file, message });
  }
  warn(file: string, message: string): void {
    this.warnings.push({ file, message });
  }
  has(file: string): boolean {
    return this.errors.some((e) => e.file === file);
  }
}

/**
 * Reads `file` (plan-relative) if it is a regular file inside the plan of
 * at most `max` bytes; else records why not and returns null. Nothing that
 * is not a regular file is opened (a FIFO would block the read).
 */
async function readPlanFile(
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
const unBom = (t: string) => t.charCodeAt(0) === 0xfeff ? t.slice(1) : t;

/**
 * Parses strict JSON. On failure records "bad JSON at line L, column C:
 * reason" and returns undefined.
 */
function parseJson(text: string, file: string, c: Collector): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    c.error(file, badJsonMessage(text, (e as Error).message));
    return undefined;
  }
}

/** Describes a JSON syntax error with a line and column (1-based). */
export function badJsonMessage(text: string, v8Message: string): string {
  // jsonc-parser (strict settings) finds the offset for every kind of error;
  // V8's messages only sometimes carry one.
  const errors: ParseError[] = [];
  parseJsonc(text, errors, {
    disallowComments: true,
    allowTrailingComma: false,
    allowEmptyContent: false,
  });
  let offset = errors.length > 0 ? errors[0].offset : undefined;
  const m = /at position (\d+)/.exec(v8Message);
  if (offset === undefined && m) offset = Number(m[1]);
  if (offset === undefined) offset = text.length;
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - (before.lastIndexOf("\n") + 1) + 1;
  const comment = errors.length > 0 &&
    printParseErrorCode(errors[0].error) === "InvalidCommentToken";
  const reason = comment ? "comments are not allowed in JSON" : v8Message
    .replace(/ in JSON at position \d+.*$/, "")
    .replace(/, ".*" is not valid JSON$/s, "")
    .replace(/ is not valid JSON$/, "");
  return text.trim() === ""
    ? "bad JSON: the file is empty"
    : `bad JSON at line ${line}, column ${column}: ${reason}`;
}

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

/** Checks a plan's files; throws PlanError with every problem in `c`. */
function checkPlan(
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

/** A task as read from its file, before edges are joined across files. */
interface RawTask extends PlanTask {
  ownBlockedBy: string[];
  ownBlocks: string[];
  /** Has an `owner`, `metadata.ship` or `metadata.assignee`. */
  preassigned: boolean;
}

function readTasks(files: PlanFiles, c: Collector): RawTask[] | null {
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

  let status: TaskStatus = "pending";
  if (v.status !== undefined && v.status !== null) {
    if (TASK_STATUSES.includes(v.status as TaskStatus)) {
      status = v.status as TaskStatus;
    } else {
      c.error(
        file,
        `"status" must be one of ${TASK_STATUSES.join(", ")}, not ${
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
function linkTasks(
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

function absolute(dir: string): string {
  return normalise(dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`);
}

function normalise(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return "/" + parts.join("/");
}
