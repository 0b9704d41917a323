import { resolve } from "./path.ts";
import { knob } from "./knobs.ts";
import { UsageError } from "./errors.ts";

/**
 * Ship names follow exe.dev's rule on every provider so a fleet can move
 * between providers: lowercase letter first, then lowercase letters or
 * digits with single hyphens, at most 52 characters.
 */
export const NAME_RE = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;
export const NAME_MAX = 52;

export function validateName(name: string, what = "ship name"): string {
  if (name === "") throw new UsageError(`${what} must not be empty`);
  if (name.length > NAME_MAX) {
    throw new UsageError(
      `${what} is ${name.length} characters; the limit is ${NAME_MAX}`,
    );
  }
  if (!NAME_RE.test(name)) {
    throw new UsageError(
      `invalid ${what} ${
        JSON.stringify(name)
      }: use lowercase letters, digits and single hyphens, starting with a letter (e.g. web-1)`,
    );
  }
  return name;
}

/** What `ship create` was given, resolved. */
export type RepoSpec =
  | { kind: "none" }
  | { kind: "github"; owner: string; repo: string; url: string }
  | { kind: "url"; url: string }
  | { kind: "path"; path: string };

const OWNER_REPO_RE =
  /^([A-Za-z0-9](?:[A-Za-z0-9-]{0,38}))\/([A-Za-z0-9._-]{1,100})$/;
const URL_RE = /^(https?|ssh|git|file):\/\/[^\s]+$/;
const SCP_URL_RE = /^[A-Za-z0-9._-]+@[A-Za-z0-9.-]+:[A-Za-z0-9._~\/-]+$/;

export function githubBase(): string {
  return (knob("OHCOMMODORE_GITHUB_URL") ?? "https://github.com")
    .replace(/\/+$/, "");
}

/**
 * Classifies `ship create`'s argument. A bare valid name is an empty ship;
 * `owner/repo` is GitHub; a URL is cloned as is; anything path-like must be
 * an existing git repository. Everything else is a usage error.
 */
export function parseRepoArg(arg: string, cwd = Deno.cwd()): RepoSpec {
  if (arg === "") throw new UsageError("ship name or repo must not be empty");
  if (NAME_RE.test(arg) && arg.length <= NAME_MAX) return { kind: "none" };
  const gh = OWNER_REPO_RE.exec(arg);
  if (gh && gh[2] !== "." && gh[2] !== "..") {
    const [, owner, repo] = gh;
    return {
      kind: "github",
      owner,
      repo: repo.replace(/\.git$/, ""),
      url: `${githubBase()}/${owner}/${repo.replace(/\.git$/, "")}.git`,
    };
  }
  if (URL_RE.test(arg) || SCP_URL_RE.test(arg)) {
    return { kind: "url", url: arg };
  }
  if (/^(\.{1,2}|~)?\//.test(arg) || arg === "." || arg === "..") {
    const abs = resolvePath(arg, cwd);
    if (!isGitRepo(abs)) {
      throw new UsageError(`${arg} is not a git repository`);
    }
    return { kind: "path", path: abs };
  }
  if (NAME_RE.test(arg.toLowerCase()) || arg.length > NAME_MAX) {
    validateName(arg); // gives the precise reason
  }
  throw new UsageError(
    `${
      JSON.stringify(arg)
    } is not a ship name, owner/repo, git URL or path to a git repository`,
  );
}

function resolvePath(p: string, cwd: string): string {
  // The user's own `~` (a path the shell left unexpanded, as in quotes).
  if (p.startsWith("~/")) p = `${Deno.env.get("HOME")}${p.slice(1)}`;
  return resolve(cwd, p);
}

function isGitRepo(dir: string): boolean {
  try {
    if (Deno.statSync(`${dir}/.git`)) return true;
  } catch { /* not a work tree */ }
  try {
    return Deno.statSync(`${dir}/HEAD`).isFile &&
      Deno.statSync(`${dir}/objects`).isDirectory; // bare repository
  } catch {
    return false;
  }
}

/** The repository's own name: `owner/web.git` → `web`. */
export function repoBaseName(spec: RepoSpec): string | null {
  switch (spec.kind) {
    case "none":
      return null;
    case "github":
      return spec.repo;
    case "url":
    case "path": {
      const s = spec.kind === "url" ? spec.url : spec.path;
      const last = s.replace(/\/+$/, "").split(/[\/:]/).pop() ?? "";
      return last.replace(/\.git$/, "") || null;
    }
  }
}

/** A ship name derived from a repo name, or null when none can be made. */
export function nameFromRepo(repoName: string): string | null {
  const n = repoName.toLowerCase().replace(/[^a-z0-9]+/g, "-")
    .replace(/^[^a-z]+/, "").replace(/-+$/, "").slice(0, NAME_MAX)
    .replace(/-+$/, "");
  return NAME_RE.test(n) ? n : null;
}

/** A repo's display form for tables and the registry. */
export function repoLabel(spec: RepoSpec): string | null {
  switch (spec.kind) {
    case "none":
      return null;
    case "github":
      return `${spec.owner}/${spec.repo}`;
    case "url":
      return spec.url;
    case "path":
      return spec.path;
  }
}
