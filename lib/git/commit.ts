/**
 * Task commits: a ship commits what its agent left in the checkout, stamped
 * with the voyage, task and attempt it is (`Voyage*` trailers), so landing
 * takes a commit only as the task run it says it is.
 */
import { resolve } from "../path.ts";
import { OhcError } from "../errors.ts";
import {
  brief,
  clearIndexLock,
  commitOf,
  git,
  gitDirOf,
  isAncestor,
  mustCommit,
} from "./exec.ts";
import { BASE_REF, checkBranch, checkTaskId } from "./refs.ts";

/** One-line, bounded commit subject. */
function cleanSubject(subject: string): string {
  // deno-lint-ignore no-control-regex
  const s = String(subject ?? "").replace(/[\s\x00-\x1f\x7f]+/g, " ").trim();
  return s.length > 200 ? s.slice(0, 199) + "…" : s;
}

/**
 * Which run of which task a commit is: its message's trailers
 * `Voyage: <voyage id>`, `Voyage-Task: <task id>`, `Voyage-Attempt: <n>`.
 * Landing checks them (a commit is landed only as the task it says it is),
 * and a flagship that restarted finds what it already landed by them.
 */
export interface TaskStamp {
  voyage: string;
  task: string;
  attempt: number;
}

export function taskCommitMessage(
  taskId: string,
  subject: string,
  stamp?: TaskStamp,
): string {
  checkTaskId(taskId);
  const s = cleanSubject(subject);
  const trailers = stamp
    ? `Voyage: ${stamp.voyage}\nVoyage-Task: ${taskId}\nVoyage-Attempt: ${stamp.attempt}\n`
    : `Voyage-Task: ${taskId}\n`;
  return `task ${taskId}${s ? `: ${s}` : ""}\n\n${trailers}`;
}

/** The stamp a commit message carries, or null (see TaskStamp). */
export function stampOf(message: string): TaskStamp | null {
  const get = (key: string) =>
    new RegExp(`^${key}: (.*)$`, "m").exec(message)?.[1];
  const voyage = get("Voyage"), task = get("Voyage-Task");
  const attempt = Number(get("Voyage-Attempt"));
  if (!voyage || task === undefined || !Number.isInteger(attempt)) return null;
  return { voyage, task, attempt };
}

export const sameStamp = (a: TaskStamp | null, b: TaskStamp) =>
  !!a && a.voyage === b.voyage && a.task === b.task && a.attempt === b.attempt;

export const describeStamp = (s: TaskStamp | null) =>
  s
    ? `task ${s.task} attempt ${s.attempt} of voyage ${s.voyage}`
    : "no task (no Voyage trailers)";

/**
 * Stages everything (`git add -A`) and commits it as
 * `task <id>: <subject>` with a `Voyage-Task: <id>` trailer. Returns the
 * checkout's HEAD when it holds work the voyage branch doesn't have yet
 * (this commit, or commits the agent made itself), else null: a task may
 * change nothing. "Yet" is `refs/ohcommodore/base` (set by prepareCheckout),
 * else the branch's upstream.
 */
export async function commitTask(
  opts: {
    checkout: string;
    taskId: string;
    subject: string;
    /**
     * Stamps the commit (TaskStamp). Then the checkout's HEAD always carries
     * the stamp when there is work: commits the agent made itself get an
     * empty stamped commit on top, and a HEAD stamped so already (this was
     * run before, then cut short) is returned as it is.
     */
    stamp?: TaskStamp;
  },
): Promise<{ commit: string | null }> {
  const message = taskCommitMessage(opts.taskId, opts.subject, opts.stamp);
  const cwd = resolve(opts.checkout);
  await clearIndexLock(await gitDirOf(cwd));
  await git(["add", "--all"], { cwd });
  const staged = await git(["diff", "--cached", "--quiet"], {
    cwd,
    allowFail: true,
  });
  if (staged.code > 1) {
    throw new OhcError(
      "git_failed",
      `git diff failed in ${cwd}: ${brief(staged.stderr)}`,
    );
  }
  if (staged.code === 1) {
    await git([
      "commit",
      "--quiet",
      "--no-verify",
      "--cleanup=verbatim",
      "--file=-",
    ], {
      cwd,
      stdin: message,
    });
    return { commit: await mustCommit(cwd, "HEAD") };
  }
  const head = await commitOf(cwd, "HEAD");
  if (!head) return { commit: null };
  const base = (await commitOf(cwd, BASE_REF)) ??
    (await commitOf(cwd, "@{upstream}"));
  if (!base || head === base || (await isAncestor(cwd, head, base))) {
    return { commit: null };
  }
  if (!opts.stamp) return { commit: head };
  const raw = await git(["cat-file", "commit", head], { cwd });
  const body = raw.stdout.slice(raw.stdout.indexOf("\n\n") + 2);
  if (sameStamp(stampOf(body), opts.stamp)) return { commit: head };
  await git([
    "commit",
    "--quiet",
    "--no-verify",
    "--allow-empty",
    "--cleanup=verbatim",
    "--file=-",
  ], { cwd, stdin: message });
  return { commit: await mustCommit(cwd, "HEAD") };
}

/**
 * The commit on `branch` (since the voyage began) stamped as `stamp`, or
 * null: what a flagship that restarted mid-landing already landed.
 */
export async function findLanded(
  bare: string,
  branch: string,
  stamp: TaskStamp,
): Promise<string | null> {
  checkBranch(branch);
  const log = await git(
    ["log", "--format=%H%x1f%B%x1e", `refs/heads/${branch}`, `^${BASE_REF}`],
    { cwd: resolve(bare) },
  );
  for (const entry of log.stdout.split("\x1e")) {
    const [sha, body] = entry.replace(/^\n/, "").split("\x1f");
    if (body !== undefined && sameStamp(stampOf(body), stamp)) return sha;
  }
  return null;
}
