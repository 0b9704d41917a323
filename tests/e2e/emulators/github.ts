/**
 * Fake GitHub for tests: a `Deno.serve` on 127.0.0.1 (random port) with
 *
 * - the REST calls a repo check needs, answered as api.github.com does:
 *   `GET /repos/{owner}/{repo}` → 200 JSON (`full_name`, `private`,
 *   `permissions`, `clone_url`, …) when the repo is public or the token may
 *   see it, 404 `{"message":"Not Found",…}` when it does not exist or the
 *   token may not see it, 401 `{"message":"Bad credentials",…}` for an
 *   unknown token (`Authorization: Bearer <t>` or `token <t>`);
 *   `GET /user` → the token's user;
 * - git over smart HTTP (`git http-backend`): `git clone <url>/<owner>/<repo>.git`,
 *   with Basic auth (any user name, a token as password) for private repos
 *   and for pushes;
 * - the same bare repos as plain directories: `git clone <fileBase>/<owner>/<repo>.git`.
 *
 * ```ts
 * const gh = await startFakeGitHub({ dir: `${tmp}/gh` });
 * await gh.addRepo("acme", "widgets", { "README.md": "hi\n" }, { private: true });
 * gh.addToken("tok-write", { login: "alice", repos: { "acme/widgets": "push" } });
 * // GITHUB_API_URL=gh.url, git clone ${gh.url}/acme/widgets.git …
 * await gh.stop();
 * ```
 */

export type Access = "pull" | "triage" | "push" | "maintain" | "admin";

export interface TokenSpec {
  login?: string;
  /** `owner/repo` → access level; repos not listed: public ones read-only. */
  repos?: Record<string, Access>;
}

export interface RepoInfo {
  owner: string;
  name: string;
  fullName: string;
  private: boolean;
  /** Bare repository on disk. */
  path: string;
  /** `file://…/<owner>/<repo>.git` */
  fileUrl: string;
  /** `http://127.0.0.1:<port>/<owner>/<repo>.git` */
  httpUrl: string;
}

export interface FakeGitHub {
  /** `http://127.0.0.1:<port>`: both the API base and the git base. */
  url: string;
  /** `file://<dir>/git`: clone `${fileBase}/<owner>/<repo>.git`. */
  fileBase: string;
  addRepo(
    owner: string,
    repo: string,
    files: Record<string, string>,
    opts?: { private?: boolean; defaultBranch?: string },
  ): Promise<RepoInfo>;
  addToken(token: string, spec?: TokenSpec): void;
  /** Requests served so far (method and path), for assertions. */
  requests: { method: string; path: string; auth: string | null }[];
  stop(): Promise<void>;
}

const LEVELS: Access[] = ["pull", "triage", "push", "maintain", "admin"];

function permissions(level: Access | null) {
  const rank = level === null ? -1 : LEVELS.indexOf(level);
  return {
    admin: rank >= 4,
    maintain: rank >= 3,
    push: rank >= 2,
    triage: rank >= 1,
    pull: rank >= 0,
  };
}

function json(status: number, body: unknown, headers: HeadersInit = {}) {
  return new Response(JSON.stringify(body), {
    status,
    headers: {
      "content-type": "application/json; charset=utf-8",
      "x-github-media-type": "github.v3; format=json",
      ...headers,
    },
  });
}

const NOT_FOUND_REPO = {
  message: "Not Found",
  documentation_url:
    "https://docs.github.com/rest/repos/repos#get-a-repository",
  status: "404",
};
const NOT_FOUND = {
  message: "Not Found",
  documentation_url: "https://docs.github.com/rest",
  status: "404",
};
const BAD_CREDENTIALS = {
  message: "Bad credentials",
  documentation_url: "https://docs.github.com/rest",
  status: "401",
};
const REQUIRES_AUTH = {
  message: "Requires authentication",
  documentation_url:
    "https://docs.github.com/rest/users/users#get-the-authenticated-user",
  status: "401",
};

async function git(args: string[], cwd?: string): Promise<void> {
  const out = await new Deno.Command("git", {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: {
      GIT_AUTHOR_NAME: "Fake GitHub",
      GIT_AUTHOR_EMAIL: "fake@github.invalid",
      GIT_COMMITTER_NAME: "Fake GitHub",
      GIT_COMMITTER_EMAIL: "fake@github.invalid",
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
    },
  }).output();
  if (!out.success) {
    throw new Error(
      `git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr).trim()}`,
    );
  }
}

function idOf(s: string): number {
  let h = 7;
  for (const c of s) h = (h * 31 + c.charCodeAt(0)) % 2_000_000_000;
  return h + 1000;
}

export async function startFakeGitHub(
  opts: { dir: string; tokens?: Record<string, TokenSpec> },
): Promise<FakeGitHub> {
  const dir = opts.dir.replace(/\/+$/, "");
  const gitRoot = `${dir}/git`;
  await Deno.mkdir(gitRoot, { recursive: true });
  const repos = new Map<string, RepoInfo & { defaultBranch: string }>();
  const tokens = new Map<string, TokenSpec>(Object.entries(opts.tokens ?? {}));
  const requests: FakeGitHub["requests"] = [];

  /** undefined: no credentials; null: bad credentials. */
  function tokenFrom(req: Request): string | null | undefined {
    const h = req.headers.get("authorization");
    if (!h) return undefined;
    const m = /^(?:bearer|token)\s+(\S+)$/i.exec(h);
    if (m) return tokens.has(m[1]) ? m[1] : null;
    const b = /^basic\s+(\S+)$/i.exec(h);
    if (b) {
      let decoded = "";
      try {
        decoded = atob(b[1]);
      } catch { /* bad */ }
      const pass = decoded.slice(decoded.indexOf(":") + 1);
      return tokens.has(pass) ? pass : null;
    }
    return null;
  }

  function accessOf(token: string | undefined, fullName: string) {
    const repo = repos.get(fullName.toLowerCase());
    if (!repo) return null;
    const granted = token
      ? tokens.get(token)?.repos?.[repo.fullName]
      : undefined;
    if (granted) return granted;
    return repo.private ? null : "pull";
  }

  let base = "";

  function repoJson(r: RepoInfo & { defaultBranch: string }, token?: string) {
    const body: Record<string, unknown> = {
      id: idOf(r.fullName),
      node_id: `R_${btoa(r.fullName).replace(/=+$/, "")}`,
      name: r.name,
      full_name: r.fullName,
      private: r.private,
      owner: { login: r.owner, id: idOf(r.owner), type: "Organization" },
      html_url: `https://github.com/${r.fullName}`,
      description: null,
      fork: false,
      url: `${base}/repos/${r.fullName}`,
      git_url: `git://github.com/${r.fullName}.git`,
      ssh_url: `git@github.com:${r.fullName}.git`,
      clone_url: r.httpUrl,
      default_branch: r.defaultBranch,
      visibility: r.private ? "private" : "public",
    };
    if (token !== undefined) {
      body.permissions = permissions(accessOf(token, r.fullName));
    }
    return body;
  }

  async function gitHttp(
    req: Request,
    owner: string,
    name: string,
    rest: string,
  ): Promise<Response> {
    const fullName = `${owner}/${name}`;
    const repo = repos.get(fullName.toLowerCase());
    const url = new URL(req.url);
    const token = tokenFrom(req);
    const pushing = url.searchParams.get("service") === "git-receive-pack" ||
      rest === "/git-receive-pack";
    const challenge = {
      status: 401,
      headers: { "www-authenticate": 'Basic realm="GitHub"' },
    };
    if (token === null) {
      return new Response("Invalid username or token.\n", challenge);
    }
    const access = repo ? accessOf(token, fullName) : null;
    if (access === null || (pushing && LEVELS.indexOf(access) < 2)) {
      if (token === undefined) return new Response("", challenge);
      return new Response("Repository not found.\n", { status: 404 });
    }
    const body = req.body ? new Uint8Array(await req.arrayBuffer()) : null;
    const env: Record<string, string> = {
      GIT_PROJECT_ROOT: gitRoot,
      GIT_HTTP_EXPORT_ALL: "1",
      PATH_INFO: `/${repo!.owner}/${repo!.name}.git${rest}`,
      QUERY_STRING: url.search.replace(/^\?/, ""),
      REQUEST_METHOD: req.method,
      CONTENT_TYPE: req.headers.get("content-type") ?? "",
      REMOTE_ADDR: "127.0.0.1",
      REMOTE_USER: token ? (tokens.get(token)?.login ?? "x-access-token") : "",
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
    };
    if (body) env.CONTENT_LENGTH = String(body.length);
    const enc = req.headers.get("content-encoding");
    if (enc) env.HTTP_CONTENT_ENCODING = enc;
    const proto = req.headers.get("git-protocol");
    if (proto) env.GIT_PROTOCOL = proto;
    const child = new Deno.Command("git", {
      args: ["-c", "http.receivepack=true", "http-backend"],
      env,
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const writer = child.stdin.getWriter();
    if (body) await writer.write(body);
    await writer.close();
    const out = await child.output();
    const raw = out.stdout;
    // CGI: headers, blank line, body.
    let headEnd = -1;
    let bodyStart = -1;
    for (let i = 0; i + 1 < raw.length; i++) {
      if (raw[i] === 10 && raw[i + 1] === 10) {
        [headEnd, bodyStart] = [i, i + 2];
        break;
      }
      if (
        i + 3 < raw.length && raw[i] === 13 && raw[i + 1] === 10 &&
        raw[i + 2] === 13 && raw[i + 3] === 10
      ) {
        [headEnd, bodyStart] = [i, i + 4];
        break;
      }
    }
    if (headEnd < 0) {
      return new Response(new TextDecoder().decode(out.stderr), {
        status: 500,
      });
    }
    const head = new TextDecoder().decode(raw.subarray(0, headEnd));
    const payload = raw.slice(bodyStart);
    const headers = new Headers();
    let status = 200;
    for (const line of head.split(/\r?\n/)) {
      const i = line.indexOf(":");
      if (i <= 0) continue;
      const k = line.slice(0, i).trim();
      const v = line.slice(i + 1).trim();
      if (k.toLowerCase() === "status") status = Number(v.split(" ")[0]);
      else headers.append(k, v);
    }
    return new Response(payload, { status, headers });
  }

  async function handle(req: Request): Promise<Response> {
    const url = new URL(req.url);
    requests.push({
      method: req.method,
      path: url.pathname,
      auth: req.headers.get("authorization"),
    });
    const gitMatch = /^\/([^/]+)\/([^/]+?)\.git(\/.*)?$/.exec(url.pathname);
    if (gitMatch) {
      return await gitHttp(req, gitMatch[1], gitMatch[2], gitMatch[3] ?? "");
    }
    const token = tokenFrom(req);
    if (token === null) return json(401, BAD_CREDENTIALS);
    const repoMatch = /^\/repos\/([^/]+)\/([^/]+)\/?$/.exec(url.pathname);
    if (repoMatch && req.method === "GET") {
      const fullName = `${repoMatch[1]}/${repoMatch[2]}`;
      const repo = repos.get(fullName.toLowerCase());
      if (!repo || accessOf(token, fullName) === null) {
        return json(404, NOT_FOUND_REPO);
      }
      return json(200, repoJson(repo, token));
    }
    if (url.pathname === "/user" && req.method === "GET") {
      if (token === undefined) return json(401, REQUIRES_AUTH);
      const login = tokens.get(token)?.login ?? "x-access-token";
      return json(200, { login, id: idOf(login), type: "User" });
    }
    return json(404, NOT_FOUND);
  }

  const ac = new AbortController();
  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    signal: ac.signal,
    onListen: () => {},
  }, handle);
  base = `http://127.0.0.1:${(server.addr as Deno.NetAddr).port}`;

  return {
    url: base,
    fileBase: `file://${gitRoot}`,
    requests,
    async addRepo(owner, name, files, o = {}) {
      const fullName = `${owner}/${name}`;
      const path = `${gitRoot}/${owner}/${name}.git`;
      const branch = o.defaultBranch ?? "main";
      await Deno.mkdir(path, { recursive: true });
      await git(["init", "-q", "--bare", "-b", branch, path]);
      const work = await Deno.makeTempDir({ prefix: "fake-gh-" });
      try {
        await git(["init", "-q", "-b", branch, work]);
        for (const [file, text] of Object.entries(files)) {
          const p = `${work}/${file}`;
          await Deno.mkdir(p.slice(0, p.lastIndexOf("/")), { recursive: true });
          await Deno.writeTextFile(p, text);
        }
        await git(["add", "-A"], work);
        await git(
          ["commit", "-q", "--allow-empty", "-m", "Initial commit"],
          work,
        );
        await git(["push", "-q", path, `HEAD:refs/heads/${branch}`], work);
      } finally {
        await Deno.remove(work, { recursive: true });
      }
      const info = {
        owner,
        name,
        fullName,
        private: o.private ?? false,
        path,
        fileUrl: `file://${path}`,
        httpUrl: `${base}/${fullName}.git`,
        defaultBranch: branch,
      };
      repos.set(fullName.toLowerCase(), info);
      const { defaultBranch: _, ...pub } = info;
      return pub;
    },
    addToken(token, spec = {}) {
      tokens.set(token, spec);
    },
    async stop() {
      ac.abort();
      await server.finished;
    },
  };
}
