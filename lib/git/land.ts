/**
 * Landing a task's commit on the voyage branch (on the flagship):
 * fast-forward, else replay (replay.ts); compare-and-swap on the branch
 * ref; a side branch on a conflict, so no work is ever lost.
 */
import { sleep } from "../sleep.ts";
import { join, resolve } from "../path.ts";
import { OhcError } from "../errors.ts";
import { describeStamp, sameStamp, stampOf, type TaskStamp } from "./commit.ts";
import {
  brief,
  commitOf,
  git,
  isAncestor,
  mustCommit,
  rand,
  sourceArg,
} from "./exec.ts";
import {
  checkBranch,
  checkCommit,
  checkTaskId,
  INCOMING,
  taskSideBranch,
} from "./refs.ts";
import {
  addWorktree,
  type CommitInfo,
  readCommit,
  rebaseInWorktree,
  removeWorktree,
  type Replay,
  replayOneCommit,
  singleCommitPlan,
} from "./replay.ts";

export type IntegrateResult =
  /** `attempts`: compare-and-swap rounds it took (1 unless it raced). */
  | { ok: true; tip: string; rebased: boolean; attempts: number }
  | { ok: false; conflict: string[]; sideBranch: string };

export interface IntegrateOptions {
  bare: string;
  branch: string;
  taskId: string;
  /** Where the commit is: a ship's checkout, a bundle file, any git URL. */
  source: string;
  commit: string;
  /** Scratch directory for private worktrees (created if missing; may be shared). */
  worktreeDir: string;
  /** Compare-and-swap attempts before giving up (default 64). */
  maxAttempts?: number;
  /**
   * The task run the commit must be (TaskStamp): its trailers must say so,
   * and no commit it brings may be stamped as another; else it is refused
   * (`task_commit_mismatch`) and kept on a side branch.
   */
  expect?: TaskStamp;
  /**
   * Take the repo's landing lock around "read tip, replay, compare-and-swap"
   * (default true). false: lock-free, compare-and-swap only (every racer
   * replays, one wins per round; tests use it to exercise the retry path).
   */
  serialize?: boolean;
}

/**
 * Fetches `commit` from `source` into the bare repo and lands it on
 * `branch`: fast-forward when the branch tip is its ancestor, else its
 * commits (those not on the branch) are replayed onto the tip; then the
 * branch ref moves by compare-and-swap (`update-ref <ref> <new> <old>`).
 * If the ref moved meanwhile, it replays onto the new tip and tries again.
 * On a conflict nothing moves and the original commit is kept on
 * `voyage/<id>-task-<slug>` (the conflicting files are returned).
 *
 * Concurrency: fetching and preparing (a worktree when one is needed) run
 * in parallel; "read tip, replay, CAS" holds an exclusive flock on
 * `<bare>/ohcommodore-landing.lock` (across processes and within one), so
 * concurrent landings don't redo each other's work. The CAS is what keeps
 * the branch correct even against writers that don't take the lock.
 *
 * Landing the same task twice is harmless: a commit already on the branch
 * (or whose changes already are) returns ok with the branch unchanged.
 */
export async function integrateTask(
  opts: IntegrateOptions,
): Promise<IntegrateResult> {
  checkBranch(opts.branch);
  const slug = checkTaskId(opts.taskId);
  checkCommit(opts.commit);
  const bare = resolve(opts.bare);
  const ref = `refs/heads/${opts.branch}`;
  const commit = opts.commit;
  const maxAttempts = Math.max(1, opts.maxAttempts ?? 64);
  const incoming = `${INCOMING}/${slug}-${rand()}`;
  const park = async () => {
    const side = await keepOnSideBranch(bare, opts.branch, opts.taskId, commit);
    keep = false;
    return side;
  };

  const info = await fetchCommit(bare, opts.source, commit, incoming);
  let worktree: string | null = null;
  let lock: Deno.FsFile | null = null;
  let keep = true; // the incoming ref stays until the work is safe elsewhere
  let incomingGone = false;
  try {
    const tip0 = await mustCommit(bare, ref);
    if (opts.expect) await checkStamps(bare, info, commit, tip0, opts.expect);
    // The usual case, a task built on the current tip: it lands as a
    // fast-forward, and the history checks below could not say otherwise.
    const onTip0 = info.parents.length === 1 && info.parents[0] === tip0;
    const mb = onTip0 ? { code: 0 } : await git(["merge-base", tip0, commit], {
      cwd: bare,
      allowFail: true,
    });
    if (mb.code !== 0) {
      const side = await park();
      throw new OhcError(
        "task_unrelated_history",
        `task ${opts.taskId}'s commit ${
          commit.slice(0, 12)
        } shares no history with ${opts.branch}`,
        `its work is kept on ${side}`,
      );
    }
    // How to replay, decided once: later tips descend from tip0, so the
    // answer doesn't change.
    const plan = onTip0 ? info.plan : await singleCommitPlan(bare, info, tip0);
    if (
      !plan && !(await isAncestor(bare, tip0, commit)) &&
      !(await isAncestor(bare, commit, tip0))
    ) {
      worktree = await addWorktree(bare, opts.worktreeDir, opts.taskId, commit);
    }
    if (opts.serialize !== false) lock = await landingLock(bare);
    // Compare-and-swap, and the incoming ref goes in the same atomic
    // transaction: one git run, and never a moment where neither holds it.
    const land = async (next: string, tip: string) => {
      const upd = await git(
        [
          "update-ref",
          "-m",
          `ohcommodore: land task ${opts.taskId}`,
          "--stdin",
        ],
        {
          cwd: bare,
          allowFail: true,
          stdin: `update ${ref} ${next} ${tip}\ndelete ${incoming}\n`,
        },
      );
      if (upd.code === 0) {
        keep = false;
        incomingGone = true;
      }
      return upd;
    };
    // Built on tip0: try it without reading the tip again (the CAS checks
    // that it is still tip0; if not, the loop below looks properly).
    if (onTip0 && (await land(commit, tip0)).code === 0) {
      return { ok: true, tip: commit, rebased: false, attempts: 1 };
    }
    for (let attempt = 1;; attempt++) {
      const tip = await mustCommit(bare, ref);
      let next: string;
      let rebased = false;
      if (onTip0 && tip === tip0) {
        next = commit;
      } else if (await isAncestor(bare, commit, tip)) {
        keep = false;
        return { ok: true, tip, rebased: false, attempts: attempt }; // already landed
      } else if (await isAncestor(bare, tip, commit)) {
        next = commit;
      } else {
        rebased = true;
        let r: Replay;
        if (plan) {
          r = await replayOneCommit(bare, plan, tip);
        } else {
          worktree ??= await addWorktree(
            bare,
            opts.worktreeDir,
            opts.taskId,
            commit,
          );
          r = await rebaseInWorktree(worktree, commit, tip);
        }
        if ("conflict" in r) {
          const sideBranch = await park();
          return { ok: false, conflict: r.conflict, sideBranch };
        }
        next = r.head;
        if (next === tip) {
          keep = false; // its changes were already there
          return { ok: true, tip, rebased, attempts: attempt };
        }
      }
      const upd = await land(next, tip);
      if (upd.code === 0) {
        return { ok: true, tip: next, rebased, attempts: attempt };
      }
      if (attempt >= maxAttempts) {
        const side = await park();
        throw new OhcError(
          "integrate_contention",
          `task ${opts.taskId} could not land on ${opts.branch} after ${attempt} attempts: ${
            brief(upd.stderr)
          }`,
          `its work is kept on ${side}; integrate it again`,
        );
      }
      // Someone else landed (or holds the ref's lock): back off a little.
      await sleep(Math.random() * 5 * Math.min(attempt, 10));
    }
  } catch (e) {
    // Unexpected failure: park the work before the incoming ref goes.
    if (keep) await park().catch(() => null);
    throw e;
  } finally {
    if (lock) {
      await lock.unlock().catch(() => {});
      lock.close();
    }
    if (worktree) await removeWorktree(bare, worktree);
    if (!keep && !incomingGone) {
      await git(["update-ref", "-d", incoming], { cwd: bare, allowFail: true });
    }
  }
}

/**
 * The commit is the task run `want`, and none of the commits it brings
 * (those `tip` lacks) is stamped as another task run.
 */
async function checkStamps(
  bare: string,
  info: CommitInfo,
  commit: string,
  tip: string,
  want: TaskStamp,
): Promise<void> {
  const mismatch = (what: string, got: TaskStamp | null) =>
    new OhcError(
      "task_commit_mismatch",
      `${what} is ${describeStamp(got)}, not ${describeStamp(want)}`,
      "the ship's checkout held other work; the task runs again",
    );
  const top = stampOf(info.message);
  if (!sameStamp(top, want)) {
    throw mismatch(`commit ${commit.slice(0, 12)}`, top);
  }
  // The usual case, one commit on the tip: nothing else to look at.
  if (info.parents.length === 1 && info.parents[0] === tip) return;
  const log = await git(["log", "--format=%H%x1f%B%x1e", commit, `^${tip}`], {
    cwd: bare,
  });
  for (const entry of log.stdout.split("\x1e")) {
    const [sha, body] = entry.replace(/^\n/, "").split("\x1f");
    const st = body === undefined ? null : stampOf(body);
    if (st && !sameStamp(st, want)) {
      throw mismatch(`commit ${sha.slice(0, 12)} it brings`, st);
    }
  }
}

/** An exclusive flock on `<bare>/ohcommodore-landing.lock` (waits for it). */
async function landingLock(bare: string): Promise<Deno.FsFile> {
  const file = await Deno.open(join(bare, "ohcommodore-landing.lock"), {
    create: true,
    write: true,
  });
  try {
    await file.lock(true);
  } catch (e) {
    file.close();
    throw e;
  }
  return file;
}

/**
 * Brings `commit` into `bare`, pins it at `ref` while it lands, and reads
 * it (which also proves it is a commit).
 */
async function fetchCommit(
  bare: string,
  source: string,
  commit: string,
  ref: string,
): Promise<CommitInfo> {
  const src = await sourceArg(source);
  const fetch = (refspecs: string[]) =>
    git(
      [
        "fetch",
        "--quiet",
        "--no-tags",
        "--no-write-fetch-head",
        "--no-auto-gc",
        "--no-recurse-submodules",
        "--",
        src.arg,
        ...refspecs,
      ],
      { cwd: bare, isolated: src.local, allowFail: true },
    );
  const direct = await fetch([`+${commit}:${ref}`]);
  if (direct.code === 0) {
    const info = await readCommit(bare, commit);
    if (info) return info;
    throw new OhcError(
      "task_commit_missing",
      `${commit} is not a commit in ${source}`,
    );
  }
  // A server that refuses unadvertised object ids: take its refs, look there.
  const ns = `${ref}-all`;
  const all = await fetch([`+refs/*:${ns}/*`]);
  try {
    const info = all.code === 0 ? await readCommit(bare, commit) : null;
    if (info) {
      await git(["update-ref", ref, commit], { cwd: bare });
      return info;
    }
  } finally {
    await deleteRefsUnder(bare, ns);
  }
  throw new OhcError(
    "task_commit_missing",
    `could not fetch ${commit.slice(0, 12)} from ${source}: ${
      brief(direct.stderr || all.stderr)
    }`,
    "check that the ship's checkout (or the bundle) holds that commit",
  );
}

async function deleteRefsUnder(repo: string, prefix: string): Promise<void> {
  const list = await git(
    ["for-each-ref", "--format=%(refname)", `${prefix}/`],
    {
      cwd: repo,
      allowFail: true,
    },
  );
  const refs = list.stdout.split("\n").filter((l) => l);
  if (refs.length === 0) return;
  await git(["update-ref", "--stdin"], {
    cwd: repo,
    stdin: refs.map((r) => `delete ${r}\n`).join(""),
    allowFail: true,
  });
}

/**
 * Keeps `commit` on `voyage/<id>-task-<slug>`; if that branch already holds
 * other work, on `-2`, `-3`, ... (created with "must not exist", so two
 * savers never overwrite each other).
 */
async function keepOnSideBranch(
  bare: string,
  branch: string,
  taskId: string,
  commit: string,
): Promise<string> {
  const name0 = taskSideBranch(branch, taskId);
  for (let k = 1; k < 1000; k++) {
    const name = k === 1 ? name0 : `${name0}-${k}`;
    const have = await commitOf(bare, `refs/heads/${name}`);
    if (have === commit) return name;
    if (have) continue;
    const r = await git(
      [
        "update-ref",
        "-m",
        `ohcommodore: keep task ${taskId}`,
        `refs/heads/${name}`,
        commit,
        "",
      ],
      { cwd: bare, allowFail: true },
    );
    if (r.code === 0) return name;
    if ((await commitOf(bare, `refs/heads/${name}`)) === commit) return name;
  }
  throw new OhcError(
    "git_failed",
    `could not create a side branch for task ${taskId}`,
  );
}
