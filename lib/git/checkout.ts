/**
 * Working checkouts of a voyage branch: a ship's (brought to the tip the
 * flagship asks for before each task), the flagship's verify checkout, and
 * `voyage clone`'s.
 */
import { join, resolve } from "../path.ts";
import { OhcError } from "../errors.ts";
import {
  brief,
  clearIndexLock,
  commitOf,
  exists,
  git,
  GIT_EMAIL,
  GIT_NAME,
  gitDirOf,
  isEmptyDir,
  mustCommit,
  sourceArg,
} from "./exec.ts";
import { BASE_REF, checkBranch, checkCommit } from "./refs.ts";

/** Files that mean a rebase, merge, cherry-pick, revert or am is under way. */
const IN_PROGRESS = [
  "rebase-merge",
  "rebase-apply",
  "MERGE_HEAD",
  "CHERRY_PICK_HEAD",
  "REVERT_HEAD",
  "sequencer",
];

/**
 * Clones `bare` (a path, bundle file or URL) into `dir`, or refreshes the
 * checkout already there: quits any rebase/merge/cherry-pick in progress,
 * fetches the branch, checks it out at the tip (`git checkout --force -B`,
 * which also resets the index and tracked files) and cleans (`-ffdx`, so ignored files go too unless `keepIgnored`).
 * Configures user.name/email locally and records the tip at
 * `refs/ohcommodore/base` (what commitTask compares against). Returns the tip.
 *
 * `tip`: the commit wanted. When the checkout already holds it (a ship that
 * built the previous task, landed as a fast-forward), nothing is fetched
 * and `bare` may be omitted; when it doesn't and there is no `bare`, this
 * fails with code `need_base` before the work tree is touched. With a `bare` the tip is
 * the branch's tip there, whatever `tip` says.
 * No process may be working in the checkout while this runs.
 */
export async function prepareCheckout(
  opts: {
    bare?: string;
    branch: string;
    dir: string;
    keepIgnored?: boolean;
    tip?: string;
  },
): Promise<string> {
  checkBranch(opts.branch);
  if (opts.tip !== undefined) checkCommit(opts.tip);
  const dir = resolve(opts.dir);
  const b = opts.branch;

  const gitDir = await gitDirOf(dir);
  if (opts.bare === undefined && (!gitDir || !opts.tip)) {
    throw needBase(dir, opts.tip);
  }
  const src = opts.bare === undefined ? null : await sourceArg(opts.bare);
  const isolated = src?.local ?? true;

  let configure = true;
  if (gitDir) {
    await clearIndexLock(gitDir);
    const busy = await Promise.all(
      IN_PROGRESS.map((f) => exists(join(gitDir, f))),
    );
    if (busy.some((b) => b)) {
      for (const op of ["rebase", "cherry-pick", "revert", "am"]) {
        await git([op, "--quit"], { cwd: dir, allowFail: true });
      }
      await git(["merge", "--abort"], { cwd: dir, allowFail: true });
    }
    if (src) await git(["config", "remote.origin.url", src.arg], { cwd: dir });
    // The marker written last below, read from the file rather than with a
    // git run (this is on every task's path); a person's edit of it only
    // means configuring again.
    const config = await Deno.readTextFile(join(gitDir, "config")).catch(
      () => "",
    );
    configure = !config.includes(`email = ${GIT_EMAIL}\n`);
  } else {
    if ((await exists(dir)) && !(await isEmptyDir(dir))) {
      throw new OhcError(
        "checkout_not_git",
        `${dir} exists and is not a git checkout`,
        "remove it or choose another directory",
      );
    }
    await git([
      "clone",
      "--quiet",
      "--no-checkout",
      "--origin",
      "origin",
      "--",
      src!.arg,
      dir,
    ], {
      isolated,
    });
  }
  let tip = opts.tip;
  if (src) {
    await git(
      [
        "fetch",
        "--quiet",
        "--no-write-fetch-head",
        "--no-auto-gc",
        "origin",
        `+refs/heads/${b}:refs/remotes/origin/${b}`,
      ],
      { cwd: dir, isolated },
    );
    tip = await mustCommit(dir, `refs/remotes/origin/${b}`);
  }
  const co = await git(
    ["checkout", "--quiet", "--force", "--no-track", "-B", b, tip!],
    { cwd: dir, allowFail: true },
  );
  if (co.code !== 0) {
    // Nothing fetched and the commit isn't here: the flagship sends a bundle.
    if (!src && !(await commitOf(dir, tip!))) throw needBase(dir, tip);
    throw new OhcError(
      "git_failed",
      `git checkout failed in ${dir}: ${brief(co.stderr || co.stdout)}`,
    );
  }
  // (checkout --force already reset the index and tracked files)
  await git(["clean", "--quiet", "-ffd", ...(opts.keepIgnored ? [] : ["-x"])], {
    cwd: dir,
  });
  if (configure) {
    await git(["config", `branch.${b}.remote`, "origin"], { cwd: dir });
    await git(["config", `branch.${b}.merge`, `refs/heads/${b}`], { cwd: dir });
    await git(["config", "commit.gpgSign", "false"], { cwd: dir });
    await git(["config", "user.name", GIT_NAME], { cwd: dir });
    await git(["config", "user.email", GIT_EMAIL], { cwd: dir }); // last: the marker
  }
  await git(["update-ref", BASE_REF, tip!], { cwd: dir });
  return tip!;
}

function needBase(dir: string, tip: string | undefined): OhcError {
  return new OhcError(
    "need_base",
    `${dir} does not hold ${tip?.slice(0, 12) ?? "the voyage tip"}`,
    "send the voyage's bundle",
  );
}

/**
 * A real clone of the voyage branch, history included, checked out on
 * `branch` (the other branches, side branches among them, as
 * origin/<name>). `bare` may be a path, a bundle file or a URL.
 */
export async function cloneVoyage(
  opts: { bare: string; branch: string; dir: string },
): Promise<{ dir: string; tip: string }> {
  checkBranch(opts.branch);
  const dir = resolve(opts.dir);
  if ((await exists(dir)) && !(await isEmptyDir(dir))) {
    throw new OhcError(
      "clone_target_exists",
      `${dir} already exists and is not empty`,
      "choose another directory with -d",
    );
  }
  const src = await sourceArg(opts.bare);
  await git(["clone", "--quiet", "--branch", opts.branch, "--", src.arg, dir], {
    isolated: src.local,
  });
  return { dir, tip: await mustCommit(dir, "HEAD") };
}
