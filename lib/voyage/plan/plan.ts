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

import { UsageError } from "../../errors.ts";
import { escapeControls } from "../../terminal_text.ts";

/** A plan's files by relative path ("voyage.json", "tasks/3.json"): what `sail` sends. */
export type PlanFiles = Record<string, string>;

export type PlanTaskStatus = "pending" | "in_progress" | "completed";

export const PLAN_TASK_STATUSES: readonly PlanTaskStatus[] = [
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
  status: PlanTaskStatus;
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
