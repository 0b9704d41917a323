/**
 * GitHub checks made before any VM is created for `owner/repo`.
 *
 * The token travels in an HTTP header of a request this process makes
 * itself (fetch), never in any argv, URL or error message.
 */

import { type Env, knob } from "./knobs.ts";
import { OhcError, UsageError } from "./errors.ts";

export interface RepoAccess {
  full_name: string;
  private: boolean;
  default_branch?: string;
  /** What the token may do there, when GitHub says (`pull`, `push`, …). */
  permissions?: Record<string, boolean>;
}

export interface CheckRepoOptions {
  /** API base URL. Default $OHCOMMODORE_GITHUB_API, else api.github.com. */
  apiBase?: string;
  /** Gives up after this long. Default 15 s. */
  timeoutMs?: number;
  /** Where OHCOMMODORE_GITHUB_API is read; default the process's. */
  env?: Env;
}

const OWNER_RE = /^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})$/;
const REPO_RE = /^[A-Za-z0-9._-]{1,100}$/;

/** Splits and checks `owner/repo`; UsageError when it is not one. */
export function parseRepoSlug(slug: string): { owner: string; repo: string } {
  const m = /^([^/]+)\/([^/]+?)(?:\.git)?$/.exec(slug.trim());
  if (!m || !OWNER_RE.test(m[1]) || !REPO_RE.test(m[2]) || /^\.+$/.test(m[2])) {
    throw new UsageError(
      `not a GitHub repository: "${slug}" (expected owner/repo)`,
    );
  }
  return { owner: m[1], repo: m[2] };
}

/**
 * `owner/repo` clones (ship create, voyage sail) need GH_TOKEN, and the
 * token must read every one of them: checked on the user's machine before
 * any VM exists. No token: UsageError; no access: OhcError.
 */
export async function requireRepoAccess(
  repos: readonly { owner: string; repo: string }[],
  token: string | undefined,
  opts: CheckRepoOptions = {},
): Promise<void> {
  if (repos.length === 0) return;
  if (!token) {
    throw new UsageError(
      `GH_TOKEN is required to clone ${repos[0].owner}/${repos[0].repo}`,
    );
  }
  for (const r of repos) await checkRepoAccess(r.owner, r.repo, token, opts);
}

function defaultApiBase(env?: Env): string {
  let set: string | undefined;
  try {
    set = knob("OHCOMMODORE_GITHUB_API", env);
  } catch { /* no env permission */ }
  return set ?? "https://api.github.com";
}

/**
 * Resolves when `token` can read `owner/repo` (GET /repos/{owner}/{repo}),
 * with what GitHub says about the repo; throws OhcError with one clear
 * line otherwise: bad token (401), not found or no access (404), refused
 * (403, e.g. rate limit or SSO), or GitHub unreachable.
 */
export async function checkRepoAccess(
  owner: string,
  repo: string,
  token: string,
  opts: CheckRepoOptions = {},
): Promise<RepoAccess> {
  const slug = `${owner}/${repo}`;
  parseRepoSlug(slug);
  if (token.trim() === "" || /[\s]/.test(token.trim())) {
    throw new UsageError(
      "the GitHub token is empty or malformed (set GH_TOKEN)",
    );
  }
  const base = (opts.apiBase ?? defaultApiBase(opts.env)).replace(/\/+$/, "");
  const url = `${base}/repos/${encodeURIComponent(owner)}/${
    encodeURIComponent(repo)
  }`;
  let res: Response;
  try {
    res = await fetch(url, {
      headers: {
        "Authorization": `Bearer ${token.trim()}`,
        "Accept": "application/vnd.github+json",
        "X-GitHub-Api-Version": "2022-11-28",
        "User-Agent": "ohcommodore",
      },
      signal: AbortSignal.timeout(opts.timeoutMs ?? 15_000),
    });
  } catch (e) {
    const why = e instanceof DOMException && e.name === "TimeoutError"
      ? "timed out"
      : (e as Error).message;
    throw new OhcError(
      "github_unreachable",
      `cannot reach the GitHub API at ${base} to check ${slug}: ${why}`,
      "check your network (OHCOMMODORE_GITHUB_API sets another API base)",
    );
  }
  let body: Record<string, unknown> = {};
  try {
    const v = await res.json();
    if (v !== null && typeof v === "object") body = v;
  } catch { /* not JSON */ }
  const ghMessage = typeof body.message === "string" ? body.message : "";
  switch (res.status) {
    case 200:
      return {
        full_name: typeof body.full_name === "string" ? body.full_name : slug,
        private: body.private === true,
        ...(typeof body.default_branch === "string"
          ? { default_branch: body.default_branch }
          : {}),
        ...(body.permissions !== null && typeof body.permissions === "object"
          ? { permissions: body.permissions as Record<string, boolean> }
          : {}),
      };
    case 401:
      throw new OhcError(
        "github_bad_token",
        `GitHub rejected the token (401${
          ghMessage ? ` ${ghMessage}` : ""
        }): it is wrong, expired or revoked`,
        "create a token that can read the repository and set GH_TOKEN",
      );
    case 404:
      throw new OhcError(
        "github_repo_not_found",
        `GitHub repository ${slug} was not found, or the token cannot read it`,
        "check the name, and that the token has access to this repository (fine-grained tokens list their repositories)",
      );
    case 403:
    case 429:
      throw new OhcError(
        "github_refused",
        `GitHub refused to show ${slug} (${res.status}${
          ghMessage ? `: ${ghMessage}` : ""
        })`,
        "a rate limit or an organization's SSO policy may block the token",
      );
    default:
      throw new OhcError(
        "github_error",
        `GitHub answered ${res.status} for ${slug}${
          ghMessage ? `: ${ghMessage}` : ""
        }`,
      );
  }
}
