/**
 * The one way this program runs git: an argv (never a shell string) with
 * GIT_TERMINAL_PROMPT=0, hooks disabled (`core.hooksPath=/dev/null`), the
 * fixed identity "ohcommodore <ohcommodore@localhost>", and (except when
 * talking to a remote URL) no system or global git config, so a person's
 * `commit.gpgSign`, `rerere`, global excludes or `core.autocrlf` can't change
 * what lands. Also the small questions every git job asks (does this commit
 * exist, is it an ancestor, where is the git dir).
 */
import { join, resolve } from "../path.ts";
import { OhcError, UsageError } from "../errors.ts";

export const GIT_NAME = "ohcommodore";
export const GIT_EMAIL = "ohcommodore@localhost";

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

export interface GitOpts {
  cwd?: string;
  stdin?: string;
  /** Ignore system and global config (default true). */
  isolated?: boolean;
  /** Return a failed result instead of throwing. */
  allowFail?: boolean;
  /** Extra environment (e.g. an author to keep). */
  env?: Record<string, string>;
}

export interface GitOut {
  code: number;
  stdout: string;
  stderr: string;
}

export const decoder = new TextDecoder();

export async function git(args: string[], opts: GitOpts = {}): Promise<GitOut> {
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

export function brief(text: string): string {
  const lines = text.split("\n").map((l) => l.trim()).filter((l) => l);
  const s = lines.slice(-3).join(" / ");
  return s.length > 500 ? s.slice(0, 500) + "…" : s || "(no output)";
}

/** The commit `rev` names in `repo`, or null. */
export async function commitOf(
  repo: string,
  rev: string,
): Promise<string | null> {
  const r = await git(["rev-parse", "--verify", "--quiet", `${rev}^{commit}`], {
    cwd: repo,
    allowFail: true,
  });
  return r.code === 0 ? r.stdout.trim() : null;
}

export async function mustCommit(repo: string, rev: string): Promise<string> {
  const c = await commitOf(repo, rev);
  if (!c) {
    throw new OhcError("git_ref_missing", `${rev} does not exist in ${repo}`);
  }
  return c;
}

/** Is `a` an ancestor of (or equal to) `b`? */
export async function isAncestor(
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

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

export async function isEmptyDir(path: string): Promise<boolean> {
  for await (const _ of Deno.readDir(path)) return false;
  return true;
}

/** A local path (made absolute) or bundle file, or else a URL as given. */
export async function sourceArg(
  source: string,
): Promise<{ arg: string; local: boolean }> {
  if (typeof source !== "string" || source === "") {
    throw new UsageError("a git source (path, bundle or URL) is required");
  }
  if (await exists(source)) return { arg: resolve(source), local: true };
  return { arg: source, local: false };
}

export function rand(): string {
  return crypto.randomUUID().slice(0, 8);
}

/** The checkout's git directory (`.git`, or wherever a `.git` file points). */
export async function gitDirOf(checkout: string): Promise<string | null> {
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
export async function clearIndexLock(gitDir: string | null): Promise<void> {
  if (gitDir) await Deno.remove(join(gitDir, "index.lock")).catch(() => {});
}
