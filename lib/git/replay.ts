/**
 * Replaying a task's commits onto a newer voyage tip: one plain commit by
 * `git merge-tree` with no worktree (the usual case), anything else by a
 * rebase in a private worktree of the bare repo.
 */
import { resolve } from "../path.ts";
import { OhcError } from "../errors.ts";
import { withLock } from "../state/atomic.ts";
import { taskSlug } from "../voyage/plan/plan_rules.ts";
import { brief, git, mustCommit } from "./exec.ts";

export type Replay = { head: string } | { conflict: string[] };

/** What replaying a single commit needs: its message and author. */
export interface OneCommit {
  commit: string;
  message: string;
  author: Record<string, string>;
}

/** A commit's parents, and how to replay it alone when that can be done. */
export interface CommitInfo {
  parents: string[];
  message: string;
  /** Null for a merge, a signed or re-encoded commit, an odd author line. */
  plan: OneCommit | null;
}

/** The commit's parents and replay plan; null when it is not a commit here. */
export async function readCommit(
  bare: string,
  commit: string,
): Promise<CommitInfo | null> {
  const r = await git(["cat-file", "commit", commit], {
    cwd: bare,
    allowFail: true,
  });
  if (r.code !== 0) return null;
  const raw = r.stdout;
  const split = raw.indexOf("\n\n");
  const header = split < 0 ? raw : raw.slice(0, split);
  const message = split < 0 ? "" : raw.slice(split + 2);
  const headers = header.split("\n");
  const parents = headers.filter((l) => l.startsWith("parent ")).map((l) =>
    l.slice(7)
  );
  const author = headers.find((l) => l.startsWith("author "))
    ?.match(/^author (.*) <(.*)> (\d+ [+-]\d{4})$/);
  const plain = parents.length === 1 && !!author &&
    !headers.some((l) => l.startsWith("encoding ") || l.startsWith("gpgsig"));
  return {
    parents,
    message,
    plan: plain
      ? {
        commit,
        message,
        author: {
          GIT_AUTHOR_NAME: author![1],
          GIT_AUTHOR_EMAIL: author![2],
          GIT_AUTHOR_DATE: `@${author![3]}`,
        },
      }
      : null,
  };
}

/**
 * The fast path applies when the task adds exactly one non-merge commit C
 * whose parent is the (only) merge base with the tip: then `git merge-tree`
 * of tip and C is exactly a cherry-pick of C onto the tip. Null otherwise.
 */
export async function singleCommitPlan(
  bare: string,
  info: CommitInfo,
  tip: string,
): Promise<OneCommit | null> {
  if (!info.plan) return null;
  const bases = await git(["merge-base", "--all", tip, info.plan.commit], {
    cwd: bare,
    allowFail: true,
  });
  if (bases.code !== 0 || bases.stdout.trim() !== info.parents[0]) return null;
  return info.plan;
}

/** Fast path, no worktree: merge-tree, then commit the tree on the tip. */
export async function replayOneCommit(
  bare: string,
  plan: OneCommit,
  tip: string,
): Promise<Replay> {
  const m = await git(
    [
      "merge-tree",
      "--write-tree",
      "--name-only",
      "--no-messages",
      "-z",
      tip,
      plan.commit,
    ],
    { cwd: bare, allowFail: true },
  );
  if (m.code > 1) {
    throw new OhcError(
      "git_failed",
      `git merge-tree failed in ${bare}: ${brief(m.stderr)}`,
    );
  }
  const fields = m.stdout.split("\0");
  const tree = fields[0].trim();
  if (m.code === 1) {
    const files: string[] = [];
    for (const f of fields.slice(1)) {
      if (f === "") break;
      if (!files.includes(f)) files.push(f);
    }
    return { conflict: files };
  }
  const tipTree = (await git(["rev-parse", `${tip}^{tree}`], { cwd: bare }))
    .stdout.trim();
  // Its change is already on the branch: a rebase would drop it too.
  if (tree === tipTree) return { head: tip };
  const c = await git(["commit-tree", tree, "-p", tip, "-F", "-"], {
    cwd: bare,
    stdin: plan.message,
    env: plan.author,
  });
  return { head: c.stdout.trim() };
}

export async function addWorktree(
  bare: string,
  scratch: string,
  taskId: string,
  commit: string,
): Promise<string> {
  await Deno.mkdir(scratch, { recursive: true });
  const path = await Deno.makeTempDir({
    dir: resolve(scratch),
    prefix: `task-${taskSlug(taskId)}-`,
  });
  await worktreeAdmin(
    bare,
    () =>
      git(["worktree", "add", "--quiet", "--detach", path, commit], {
        cwd: bare,
      }),
  );
  return path;
}

export async function removeWorktree(
  bare: string,
  path: string,
): Promise<void> {
  await worktreeAdmin(bare, async () => {
    const r = await git(["worktree", "remove", "--force", "--force", path], {
      cwd: bare,
      allowFail: true,
    });
    await Deno.remove(path, { recursive: true }).catch(() => {});
    if (r.code !== 0) {
      await git(["worktree", "prune"], { cwd: bare, allowFail: true });
    }
  });
}

/**
 * One `git worktree add/remove` at a time per repo: each reads every other
 * worktree's admin files, and one half made or half removed fails it
 * ("failed to read worktrees/<name>/commondir"), seen with concurrent
 * landings. Only these quick steps wait; the rebases still run in parallel.
 */
function worktreeAdmin<T>(bare: string, fn: () => Promise<T>): Promise<T> {
  return withLock(`${bare}/ohcommodore-worktrees`, fn);
}

/** General path: `git rebase <tip>` on a detached HEAD in a private worktree. */
export async function rebaseInWorktree(
  wt: string,
  commit: string,
  tip: string,
): Promise<Replay> {
  await git(["rebase", "--quit"], { cwd: wt, allowFail: true });
  await git(["reset", "--quiet", "--hard", commit], { cwd: wt });
  await git(["clean", "--quiet", "-ffdx"], { cwd: wt });
  const r = await git(
    [
      "-c",
      "rebase.autoSquash=false",
      "-c",
      "rebase.autoStash=false",
      "-c",
      "rebase.updateRefs=false",
      "-c",
      "rerere.enabled=false",
      "rebase",
      "--quiet",
      "--empty=drop",
      tip,
    ],
    { cwd: wt, allowFail: true },
  );
  if (r.code === 0) return { head: await mustCommit(wt, "HEAD") };
  const u = await git(["diff", "--name-only", "--diff-filter=U", "-z"], {
    cwd: wt,
    allowFail: true,
  });
  await git(["rebase", "--abort"], { cwd: wt, allowFail: true });
  const files = [...new Set(u.stdout.split("\0").filter((f) => f))];
  if (files.length > 0) return { conflict: files };
  throw new OhcError(
    "rebase_failed",
    `rebase onto ${tip.slice(0, 12)} failed: ${brief(r.stderr)}`,
  );
}
