/**
 * The voyage's bare repo on the flagship (`<voyageDir>/repo.git`, layout
 * in refs.ts): made once from an empty commit, a local path or a URL.
 */
import { join, resolve } from "../path.ts";
import { OhcError, UsageError } from "../errors.ts";
import { gitCredentialArgs } from "./credential.ts";
import { commitOf, exists, git, mustCommit } from "./exec.ts";
import { BASE_REF, checkBranch, voyageBranch } from "./refs.ts";

/** Where a voyage's code comes from. */
export type VoyageSource =
  | { kind: "empty" }
  | { kind: "url" | "path"; url: string };

export interface VoyageRepo {
  /** Absolute path of the bare repo. */
  bare: string;
  /** `voyage/<id>`. */
  branch: string;
  /** The commit the voyage branch started at. */
  base: string;
}

/**
 * Creates `<dir>/repo.git` with branch `voyage/<voyageId>` (HEAD points to
 * it) starting at one empty commit or at the source's default branch HEAD
 * (full history of that branch, plus its tags). Built in a temp dir and
 * renamed into place, so a crash or a concurrent call never leaves half a
 * repo. If the repo already exists it is returned as is (the source is not
 * consulted again). A URL source is cloned with the GitHub token in
 * `tokenFile` (a 0600 file, read by git's credential helper), if given.
 */
export async function createVoyageRepo(
  opts: {
    dir: string;
    voyageId: string;
    source: VoyageSource;
    tokenFile?: string;
  },
): Promise<VoyageRepo> {
  const branch = voyageBranch(opts.voyageId);
  const dir = resolve(opts.dir);
  const bare = join(dir, "repo.git");
  const source = opts.source;
  if (
    !source || !(source.kind === "empty" ||
      ((source.kind === "url" || source.kind === "path") &&
        typeof source.url === "string" && source.url !== ""))
  ) {
    throw new UsageError(`invalid voyage source ${JSON.stringify(source)}`);
  }
  const found = await existingRepo(bare, branch);
  if (found) return found;

  await Deno.mkdir(dir, { recursive: true });
  const tmp = await Deno.makeTempDir({ dir, prefix: ".repo.git.tmp-" });
  try {
    let base: string | null = null;
    if (source.kind === "empty") {
      await git(["init", "--quiet", "--bare", tmp]);
    } else {
      const url = source.kind === "path" ? resolve(source.url) : source.url;
      await git(
        [
          ...(source.kind === "url" ? gitCredentialArgs(opts.tokenFile) : []),
          "clone",
          "--quiet",
          "--bare",
          "--single-branch",
          "--",
          url,
          tmp,
        ],
        { isolated: source.kind === "path" },
      );
      base = await commitOf(tmp, "HEAD");
    }
    if (!base) base = await emptyCommit(tmp, `voyage ${opts.voyageId}: start`);
    await git(["update-ref", `refs/heads/${branch}`, base], { cwd: tmp });
    await git(["update-ref", BASE_REF, base], { cwd: tmp });
    await git(["symbolic-ref", "HEAD", `refs/heads/${branch}`], { cwd: tmp });
    await git(["config", "core.logAllRefUpdates", "always"], { cwd: tmp });
    await git(["config", "gc.auto", "0"], { cwd: tmp });
    await git(["config", "ohcommodore.voyage", opts.voyageId], { cwd: tmp });
    await Deno.rename(tmp, bare);
    return { bare, branch, base };
  } catch (e) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    // Lost a race with another create: theirs is as good as ours.
    const again = await existingRepo(bare, branch).catch(() => null);
    if (again) return again;
    throw e;
  }
}

async function existingRepo(
  bare: string,
  branch: string,
): Promise<VoyageRepo | null> {
  if (!(await exists(bare))) return null;
  const tip = await commitOf(bare, `refs/heads/${branch}`);
  if (!tip) {
    throw new OhcError(
      "voyage_repo_invalid",
      `${bare} exists but has no branch ${branch}`,
      "remove it or use the voyage it belongs to",
    );
  }
  const base = (await commitOf(bare, BASE_REF)) ?? tip;
  return { bare, branch, base };
}

async function emptyCommit(repo: string, message: string): Promise<string> {
  const tree = (await git(["mktree"], { cwd: repo, stdin: "" })).stdout.trim();
  return (await git(["commit-tree", tree, "-m", message], { cwd: repo })).stdout
    .trim();
}

/** The branch's tip in the voyage's bare repo. */
export async function branchTip(bare: string, branch: string): Promise<string> {
  checkBranch(branch);
  return await mustCommit(resolve(bare), `refs/heads/${branch}`);
}
