/**
 * What a valid plan is, in one place: `voyage check` and `sail` (through
 * plan.ts) and the ship that runs a task (ship/task_run.ts) apply these same
 * rules, so a plan that checks runs, and one that cannot run fails at check
 * with the reason.
 *
 * A task id may be any short string without control characters; where a
 * name is built from it (a git branch, a file, a tmux window) its
 * `taskSlug` is used instead, so ids like `1.1`, `a/b` or `-x` work.
 */

/** The most ships one voyage sails with (`--ships`, `recommended_ships`). */
export const MAX_SHIPS = 100;

/** Sizes, in UTF-8 bytes unless said otherwise. */
export const LIMITS = {
  /** Characters of a task id. */
  idChars: 64,
  /** Characters of its slug (ids of other scripts escape to more). */
  slugChars: 128,
  subject: 1_000,
  /**
   * Description, acceptance and command. Each reaches an agent's
   * environment or argv (OHC_TASK_DESCRIPTION, `bash -c`), where Linux
   * takes at most 128 KiB per string.
   */
  text: 64 << 10,
  tasks: 1_000,
  /** One task file. */
  taskFile: 256 << 10,
  /** voyage.json, spec.md, verify.sh each. */
  file: 1 << 20,
  /** Every file of the plan together (it travels in one request). */
  total: 8 << 20,
} as const;

/** Task file names under tasks/ (the flagship stores them under the same names). */
export const TASK_FILE_RE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,99}\.json$/;

/** Control characters: C0, DEL and C1. */
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f]/;

/** Why `id` cannot be a task id, or null when it can. */
export function taskIdProblem(id: string): string | null {
  if (id === "") return "is empty";
  if (CONTROL.test(id)) return "contains a control character";
  if ([...id].length > LIMITS.idChars) {
    return `is longer than ${LIMITS.idChars} characters`;
  }
  if (taskSlug(id).length > LIMITS.slugChars) {
    return `is too long once made a file name (${
      taskSlug(id).length
    } characters, at most ${LIMITS.slugChars}); use fewer characters other than letters, digits and '-'`;
  }
  return null;
}

const PLAIN = /^[A-Za-z0-9-]+$/;

/**
 * The name a task id takes in branches, files and windows: the id itself
 * when it is only letters, digits and '-'; else every other character
 * (including '_') as `_` and its UTF-8 bytes in hex, so `1.1` is `1_2e1`.
 * Different ids never share a slug: only escaped ones hold a '_'.
 */
export function taskSlug(id: string): string {
  if (PLAIN.test(id)) return id;
  let out = "";
  for (const ch of id) {
    if (/[A-Za-z0-9-]/.test(ch)) out += ch;
    else {
      for (const b of new TextEncoder().encode(ch)) {
        out += "_" + b.toString(16).padStart(2, "0");
      }
    }
  }
  return out;
}

export const byteLength = (s: string) => new TextEncoder().encode(s).length;

/** What a task carries to a ship, as the plan and the queue hold it. */
export interface TaskFields {
  id: string;
  subject: string;
  description: string;
  acceptance?: string | null;
  command?: string | null;
}

/** Every field of a task that breaks a rule, as "field: reason". */
export function taskFieldProblems(t: TaskFields): string[] {
  const out: string[] = [];
  const idProblem = taskIdProblem(t.id);
  if (idProblem) out.push(`"id" ${JSON.stringify(t.id)} ${idProblem}`);
  const size = (key: string, v: string | null | undefined, max: number) => {
    const n = v ? byteLength(v) : 0;
    if (n > max) {
      out.push(`"${key}" is ${n} bytes; at most ${max}`);
    }
  };
  size("subject", t.subject, LIMITS.subject);
  size("description", t.description, LIMITS.text);
  size("acceptance", t.acceptance, LIMITS.text);
  size("command", t.command, LIMITS.text);
  return out;
}
