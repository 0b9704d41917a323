/**
 * Bundles, for ships reachable only over a transport: a task's commits
 * (ship to flagship) and the voyage's branches (flagship to ship).
 */
import { resolve } from "../path.ts";
import { commitOf, git, isAncestor, rand } from "./exec.ts";
import { BASE_REF, checkBranch, checkCommit } from "./refs.ts";

/**
 * Writes `commit` (and its history, minus whatever the `exclude` commits
 * already reach) to a bundle file that integrateTask can take as its
 * `source`. `exclude` defaults to the checkout's `refs/ohcommodore/base`
 * (the voyage tip prepareCheckout left there, which the flagship has), so
 * the bundle holds only the task's new commits; pass `[]` for a full one.
 * A bundle needs a ref to name the commit (`git bundle create f <sha>` is
 * refused as empty), so a temporary ref is used, unless the caller names
 * one that points at `commit` (`ref: "HEAD"` right after commitTask), which
 * saves two git runs.
 */
export async function bundleCommit(
  opts: {
    repo: string;
    commit: string;
    file: string;
    exclude?: string[];
    ref?: string;
  },
): Promise<void> {
  checkCommit(opts.commit);
  const repo = resolve(opts.repo);
  let exclude = opts.exclude;
  if (!exclude) {
    const base = await commitOf(repo, BASE_REF);
    exclude = base && base !== opts.commit &&
        (await isAncestor(repo, base, opts.commit))
      ? [base]
      : [];
  }
  for (const x of exclude) checkCommit(x);
  // Not checked here (it would cost the git run it saves): a bundle whose
  // ref names another commit fails integrateTask's fetch (task_commit_missing).
  if (opts.ref !== undefined && opts.ref !== "HEAD") checkBranch(opts.ref);
  const ref = opts.ref ?? `refs/ohcommodore/bundle/${rand()}`;
  if (opts.ref === undefined) {
    await git(["update-ref", ref, opts.commit], { cwd: repo });
  }
  try {
    await git(
      [
        "bundle",
        "create",
        "--quiet",
        resolve(opts.file),
        ref,
        ...exclude.map((x) => `^${x}`),
      ],
      { cwd: repo },
    );
  } finally {
    if (opts.ref === undefined) {
      await git(["update-ref", "-d", ref], { cwd: repo, allowFail: true });
    }
  }
}

/**
 * Writes the whole voyage repo's branches (the voyage branch, side
 * branches, the source's default branch) and HEAD to a bundle, which
 * cloneVoyage or prepareCheckout can take as `bare`. With `exclude`
 * (commits the receiver is known to have) the bundle is thin: only what
 * those commits don't reach, and it needs them (its prerequisites) to be
 * fetched. Returns false, writing nothing, when a thin bundle would be
 * empty or an excluded commit is unknown here; the caller then sends a
 * full one.
 */
export async function bundleVoyage(
  opts: { bare: string; file: string; exclude?: string[] },
): Promise<boolean> {
  const exclude = opts.exclude ?? [];
  for (const x of exclude) checkCommit(x);
  const r = await git([
    "bundle",
    "create",
    "--quiet",
    resolve(opts.file),
    "HEAD",
    "--branches",
    ...exclude.map((x) => `^${x}`),
  ], {
    cwd: resolve(opts.bare),
    allowFail: exclude.length > 0,
  });
  if (r.code !== 0) await Deno.remove(opts.file).catch(() => {});
  return r.code === 0;
}
