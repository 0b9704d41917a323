/**
 * The git mechanics of a voyage: the flagship's bare repo, ship and verify
 * checkouts, task commits, landing a task's commit on the voyage branch
 * (fast-forward, else rebase; compare-and-swap on the branch ref; a side
 * branch on a conflict, so no work is ever lost), `voyage clone`, verify
 * runs, and bundles for ships reachable only over a transport.
 *
 * Every git call is an argv (never a shell string) with
 * GIT_TERMINAL_PROMPT=0, hooks disabled (`core.hooksPath=/dev/null`), the
 * fixed identity "ohcommodore <ohcommodore@localhost>", and (except when
 * talking to a remote URL) no system or global git config, so a person's
 * `commit.gpgSign`, `rerere`, global excludes or `core.autocrlf` can't change
 * what lands.
 *
 * Layout in the bare repo `<voyageDir>/repo.git`:
 *   refs/heads/voyage/<id>                  the voyage branch (HEAD points here)
 *   refs/heads/voyage/<id>-task-<slug>[-k]  a task's work that could not land
 *   refs/ohcommodore/base                   where the voyage branch started
 *   refs/ohcommodore/incoming/<task>-<rand> a task commit while it is landing
 *
 * Side branches are `voyage/<id>-task-<slug>`, not `voyage/<id>/task-<slug>`: git
 * cannot hold both `refs/heads/voyage/<id>` and a ref below it (the files
 * backend stores refs as paths, and one can't be a file and a directory).
 */
import { concatBytes } from "../bytes.ts";
import { join, resolve } from "node:path";
import { OhcError, UsageError } from "../errors.ts";
import { gitCredentialArgs } from "../git.ts";
import { withLock } from "../state/atomic.ts";
import { taskIdProblem, taskSlug } from "./plan/plan_rules.ts";

export const GIT_NAME = "ohcommodore";
export const GIT_EMAIL = "ohcommodore@localhost";

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

export type IntegrateResult =
  /** `attempts`: compare-and-swap rounds it took (1 unless it raced). */
  | { ok: true; tip: string; rebased: boolean; attempts: number }
  | { ok: false; conflict: string[]; sideBranch: string };

export interface VerifyResult {
  ok: boolean;
  /** Exit code; 124 on timeout, 128+n when killed by signal n. */
  code: number;
  /** stdout and stderr interleaved as they arrived, bounded. */
  output: string;
  timedOut: boolean;
}

// ---------------------------------------------------------------------------
// names

const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

function checkId(what: string, id: string): void {
  if (
    typeof id !== "string" || !ID_RE.test(id) || id.includes("..") ||
    id.endsWith(".lock") || id.endsWith(".")
  ) {
    throw new UsageError(
      `invalid ${what} ${JSON.stringify(id)}`,
      "use letters, digits, '.', '_' and '-' (at most 100), starting with a letter or digit",
    );
  }
}

/** `voyage/<id>`: the voyage branch. */
export function voyageBranch(voyageId: string): string {
  checkId("voyage id", voyageId);
  return `voyage/${voyageId}`;
}

/** A task id as plan_rules.ts defines it; its slug names refs and files. */
function checkTaskId(id: string): string {
  const problem = typeof id === "string" ? taskIdProblem(id) : "is not text";
  if (problem) {
    throw new UsageError(`invalid task id ${JSON.stringify(id)}: ${problem}`);
  }
  return taskSlug(id);
}

/**
 * `voyage/<id>-task-<slug>`: where a task's work is kept when it can't
 * land (the slug of task `1.1` is `1_2e1`, see plan_rules.ts).
 */
export function taskSideBranch(branch: string, taskId: string): string {
  return `${branch}-task-${checkTaskId(taskId)}`;
}

function checkBranch(branch: string): void {
  const parts = typeof branch === "string" ? branch.split("/") : [];
  if (
    parts.length < 1 ||
    parts.some((p) => !ID_RE.test(p) || p.includes("..") || p.endsWith(".lock"))
  ) {
    throw new UsageError(`invalid branch name ${JSON.stringify(branch)}`);
  }
}

function checkCommit(commit: string): void {
  if (
    typeof commit !== "string" || !/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(commit)
  ) {
    throw new UsageError(
      `invalid commit ${JSON.stringify(commit)}`,
      "pass a full lowercase hex object id",
    );
  }
}

const BASE_REF = "refs/ohcommodore/base";
const INCOMING = "refs/ohcommodore/incoming";

// ---------------------------------------------------------------------------
// running git

const CONFIG = [
  "core.hooksPath=/dev/null",
  "commit.gpgSign=false",
  "tag.gpgSign=false",
  "protocol.ext.allow=never",
  "gc.auto=0",
  "maintenance.auto=false",
  "core.fsmonitor=false",
  "advice.detachedHead=false",
  "init.defaultBranch=main",
].flatMap((c) => ["-c", c]);

/** GIT_* variables kept when talking to a remote URL (how to reach it). */
const REMOTE_ENV = new Set([
  "GIT_SSH",
  "GIT_SSH_COMMAND",
  "GIT_SSH_VARIANT",
  "GIT_SSL_CAINFO",
  "GIT_SSL_CAPATH",
  "GIT_PROXY_COMMAND",
]);

function gitEnv(isolated: boolean): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    // GIT_DIR, GIT_INDEX_FILE, GIT_WORK_TREE... inherited from a hook or a
    // caller would point git somewhere else entirely.
    if (k.startsWith("GIT_") && (isolated || !REMOTE_ENV.has(k))) continue;
    env[k] = v;
  }
  env.GIT_TERMINAL_PROMPT = "0";
  env.GIT_AUTHOR_NAME = GIT_NAME;
  env.GIT_AUTHOR_EMAIL = GIT_EMAIL;
  env.GIT_COMMITTER_NAME = GIT_NAME;
  env.GIT_COMMITTER_EMAIL = GIT_EMAIL;
  env.GIT_EDITOR = "true";
  env.GIT_SEQUENCE_EDITOR = "true";
  env.GIT_PAGER = "cat";
  env.LC_ALL = "C";
  if (isolated) {
    env.GIT_CONFIG_NOSYSTEM = "1";
    env.GIT_CONFIG_GLOBAL = "/dev/null";
  } else {
    env.GIT_SSH_COMMAND ??= "ssh -o BatchMode=yes";
  }
  return env;
}

interface GitOpts {
  cwd?: string;
  stdin?: string;
  /** Ignore system and global config (default true). */
  isolated?: boolean;
  /** Return a failed result instead of throwing. */
  allowFail?: boolean;
  /** Extra environment (e.g. an author to keep). */
  env?: Record<string, string>;
}

interface GitOut {
  code: number;
  stdout: string;
  stderr: string;
}

const decoder = new TextDecoder();

async function git(args: string[], opts: GitOpts = {}): Promise<GitOut> {
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command("git", {
      args: [...CONFIG, ...args],
      cwd: opts.cwd,
      env: { ...gitEnv(opts.isolated ?? true), ...opts.env },
      clearEnv: true,
      stdin: opts.stdin === undefined ? "null" : "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new OhcError(
        "git_missing",
        opts.cwd && !(await exists(opts.cwd))
          ? `directory ${opts.cwd} does not exist`
          : "git is not installed",
        "install git (2.38 or newer)",
      );
    }
    throw e;
  }
  const output = child.output(); // read while writing: no pipe deadlock
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin)).catch(() => {});
    await w.close().catch(() => {});
  }
  const out = await output;
  const res = {
    code: out.code,
    stdout: decoder.decode(out.stdout),
    stderr: decoder.decode(out.stderr),
  };
  if (res.code !== 0 && !opts.allowFail) {
    throw new OhcError(
      "git_failed",
      `git ${subcommand(args)} failed (exit ${res.code})${
        opts.cwd ? ` in ${opts.cwd}` : ""
      }: ${brief(res.stderr || res.stdout)}`,
    );
  }
  return res;
}

/** The git subcommand in an argv (after any `-c key=value`). */
function subcommand(args: string[]): string {
  let i = 0;
  while (args[i] === "-c") i += 2;
  return args[i] ?? "";
}

function brief(text: string): string {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l);
  const s = lines.slice(-3).join(" / ");
  return s.length > 500 ? s.slice(0, 500) + "…" : s || "(no output)";
}

/** The commit `rev` names in `repo`, or null. */
async function commitOf(repo: string, rev: string): Promise<string | null> {
  const r = await git(["rev-parse", "--verify", "--quiet", `${rev}^{commit}`], {
    cwd: repo,
    allowFail: true,
  });
  return r.code === 0 ? r.stdout.trim() : null;
}

async function mustCommit(repo: string, rev: string): Promise<string> {
  const c = await commitOf(repo, rev);
  if (!c) {
    throw new OhcError("git_ref_missing", `${rev} does not exist in ${repo}`);
  }
  return c;
}

/** Is `a` an ancestor of (or equal to) `b`? */
async function isAncestor(
  repo: string,
  a: string,
  b: string,
): Promise<boolean> {
  const r = await git(["merge-base", "--is-ancestor", a, b], {
    cwd: repo,
    allowFail: true,
  });
  if (r.code === 0) return true;
  if (r.code === 1) return false;
  throw new OhcError(
    "git_failed",
    `git merge-base failed in ${repo}: ${brief(r.stderr)}`,
  );
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function isEmptyDir(path: string): Promise<boolean> {
  for await (const _ of Deno.readDir(path)) return false;
  return true;
}

/** A local path (made absolute) or bundle file, or else a URL as given. */
async function sourceArg(
  source: string,
): Promise<{ arg: string; local: boolean }> {
  if (typeof source !== "string" || source === "") {
    throw new UsageError("a git source (path, bundle or URL) is required");
  }
  if (await exists(source)) return { arg: resolve(source), local: true };
  return { arg: source, local: false };
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function rand(): string {
  return crypto.randomUUID().slice(0, 8);
}

/** The checkout's git directory (`.git`, or wherever a `.git` file points). */
async function gitDirOf(checkout: string): Promise<string | null> {
  const dotgit = join(checkout, ".git");
  try {
    if ((await Deno.lstat(dotgit)).isDirectory) return dotgit;
  } catch {
    return null;
  }
  const r = await git(["rev-parse", "--absolute-git-dir"], {
    cwd: checkout,
    allowFail: true,
  });
  return r.code === 0 ? r.stdout.trim() : null;
}

/** Removes a stale index.lock left by a killed git (no git may run there now). */
async function clearIndexLock(gitDir: string | null): Promise<void> {
  if (gitDir) await Deno.remove(join(gitDir, "index.lock")).catch(() => {});
}

/** Files that mean a rebase, merge, cherry-pick, revert or am is under way. */
const IN_PROGRESS = [
  "rebase-merge",
  "rebase-apply",
  "MERGE_HEAD",
  "CHERRY_PICK_HEAD",
  "REVERT_HEAD",
  "sequencer",
];

// ---------------------------------------------------------------------------
// 1. the voyage's bare repo

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

// ---------------------------------------------------------------------------
// 2. checkouts

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

// ---------------------------------------------------------------------------
// 3. task commits

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

const sameStamp = (a: TaskStamp | null, b: TaskStamp) =>
  !!a && a.voyage === b.voyage && a.task === b.task && a.attempt === b.attempt;

const describeStamp = (s: TaskStamp | null) =>
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

// ---------------------------------------------------------------------------
// 4. landing a task

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

type Replay = { head: string } | { conflict: string[] };

/** What replaying a single commit needs: its message and author. */
interface OneCommit {
  commit: string;
  message: string;
  author: Record<string, string>;
}

/** A commit's parents, and how to replay it alone when that can be done. */
interface CommitInfo {
  parents: string[];
  message: string;
  /** Null for a merge, a signed or re-encoded commit, an odd author line. */
  plan: OneCommit | null;
}

/** The commit's parents and replay plan; null when it is not a commit here. */
async function readCommit(
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
async function singleCommitPlan(
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
async function replayOneCommit(
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

async function addWorktree(
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

async function removeWorktree(bare: string, path: string): Promise<void> {
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
async function rebaseInWorktree(
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

// ---------------------------------------------------------------------------
// 5. voyage clone

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

// ---------------------------------------------------------------------------
// 6. verify

/**
 * Checks out the branch tip into `dir` (prepareCheckout) and runs
 * `bash <script>` there (a relative script path is relative to `dir`), in
 * its own process group: on timeout (default 10 min) the whole group is
 * killed and `code` is 124. Output is stdout and stderr as they came,
 * bounded to `maxOutputBytes` (default 1 MiB: the start and the end are
 * kept). Background processes the script leaves behind are killed when it
 * exits.
 */
export async function runVerify(opts: {
  bare: string;
  branch: string;
  dir: string;
  script: string;
  timeoutMs?: number;
  maxOutputBytes?: number;
  env?: Record<string, string>;
}): Promise<VerifyResult> {
  const timeoutMs = opts.timeoutMs ?? 10 * 60 * 1000;
  const dir = resolve(opts.dir);
  // A run whose runner died (the flagship's daemon restarted) goes first:
  // two verify.sh in one checkout would disturb each other.
  const pidFile = `${dir}.pid`;
  await endOldVerify(pidFile, dir);
  await prepareCheckout({ bare: opts.bare, branch: opts.branch, dir });
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("GIT_")) env[k] = v;
  }
  Object.assign(env, { GIT_TERMINAL_PROMPT: "0" }, opts.env ?? {});
  const out = new BoundedOutput(opts.maxOutputBytes ?? 1024 * 1024);
  const child = new Deno.Command("bash", {
    args: [opts.script],
    cwd: dir,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true, // its own session and process group, so we can kill it all
  }).spawn();
  await Deno.writeTextFile(pidFile, `${child.pid}\n`);
  const killGroup = () => {
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch { /* already gone */ }
  };
  const readers = [child.stdout.getReader(), child.stderr.getReader()];
  const pumps = readers.map(async (r) => {
    try {
      for (;;) {
        const { value, done } = await r.read();
        if (done) return;
        out.push(value);
      }
    } catch { /* cancelled */ }
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, timeoutMs);
  const status = await child.status;
  clearTimeout(timer);
  // Leftover background processes may hold the pipes open: give them a
  // moment to flush, then end them.
  let grace: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all(pumps),
    new Promise((r) => grace = setTimeout(r, 1000)),
  ]);
  clearTimeout(grace);
  killGroup();
  for (const r of readers) await r.cancel().catch(() => {});
  await Promise.all(pumps);
  await Deno.remove(pidFile).catch(() => {});
  let output = out.text();
  let code = status.code;
  if (timedOut) {
    code = 124;
    output += `\n[ohcommodore: verify timed out after ${
      Math.round(timeoutMs / 1000)
    }s]\n`;
  }
  return { ok: !timedOut && code === 0, code, output, timedOut };
}

/**
 * Kills the process group of a verify run recorded in `pidFile`, if that
 * process still works in `dir` (Linux; elsewhere any such group).
 */
async function endOldVerify(pidFile: string, dir: string): Promise<void> {
  const pid = Number(
    (await Deno.readTextFile(pidFile).catch(() => "")).trim(),
  );
  if (!Number.isInteger(pid) || pid <= 1) return;
  const cwd = await Deno.readLink(`/proc/${pid}/cwd`).catch(() => null);
  const proc = await Deno.stat("/proc/self").then(() => true, () => false);
  if (proc && cwd !== dir && !cwd?.startsWith(`${dir}/`)) return;
  try {
    Deno.kill(-pid, "SIGKILL");
  } catch { /* gone */ }
  await Deno.remove(pidFile).catch(() => {});
}

/** Keeps the first quarter and the last three quarters of `limit` bytes. */
class BoundedOutput {
  #head: Uint8Array[] = [];
  #headLen = 0;
  #tail: Uint8Array[] = [];
  #tailLen = 0;
  #dropped = 0;
  constructor(readonly limit: number) {}

  push(chunk: Uint8Array): void {
    const headMax = Math.floor(this.limit / 4);
    if (this.#headLen < headMax) {
      const take = chunk.subarray(0, headMax - this.#headLen);
      this.#head.push(take.slice());
      this.#headLen += take.length;
      chunk = chunk.subarray(take.length);
    }
    if (chunk.length === 0) return;
    this.#tail.push(chunk.slice());
    this.#tailLen += chunk.length;
    const tailMax = this.limit - headMax;
    while (this.#tailLen > tailMax) {
      const over = this.#tailLen - tailMax;
      const first = this.#tail[0];
      if (first.length <= over) {
        this.#tail.shift();
        this.#tailLen -= first.length;
        this.#dropped += first.length;
      } else {
        this.#tail[0] = first.subarray(over);
        this.#tailLen -= over;
        this.#dropped += over;
      }
    }
  }

  text(): string {
    const join = (parts: Uint8Array[]) => decoder.decode(concatBytes(parts));
    const gap = this.#dropped
      ? `\n[... ${this.#dropped} bytes of output omitted ...]\n`
      : "";
    return join(this.#head) + gap + join(this.#tail);
  }
}

// ---------------------------------------------------------------------------
// bundles, for ships reachable only over a transport

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
