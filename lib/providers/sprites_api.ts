/**
 * The sprites.dev HTTP API (reference §2.3), spoken directly with fetch and
 * WebSocket: the flagship has no `sprite` CLI. `Authorization: Bearer` with
 * the org's token; the base is $SPRITES_API_URL or https://api.sprites.dev.
 *
 * Errors come back as JSON (`{"error": "<code>", "message", "limit",
 * "current_count", "retry_after_seconds", ...}`, as the vendor's SDKs read
 * them). Creation rate limits (`sprite_creation_rate_limited`), other 429s,
 * 5xx answers and failed connections are retried with backoff; the plan's
 * concurrency limit (`concurrent_sprite_limit_exceeded`) is not: it becomes
 * one line naming the limit.
 */
import { OhcError } from "../errors.ts";
import { sleep } from "../sleep.ts";

export const DEFAULT_API_URL = "https://api.sprites.dev";

export const RATE_LIMITED = "sprite_creation_rate_limited";
export const CONCURRENT_LIMIT = "concurrent_sprite_limit_exceeded";

/** An error answer of the API, with what its JSON body said. */
export class SpritesApiError extends OhcError {
  constructor(
    readonly status: number,
    readonly apiCode: string | null,
    message: string,
    readonly details: {
      limit?: number;
      current?: number;
      retryAfterS?: number;
    } = {},
  ) {
    super(
      apiCode === CONCURRENT_LIMIT ? "sprites_running_limit" : "sprites_api",
      message,
      apiCode === CONCURRENT_LIMIT
        ? "sprites pause when idle; wait for one to pause, destroy one, or move to a plan that runs more"
        : status === 401
        ? "the sprites token was refused: log in again with `sprite login`, or set SPRITE_TOKEN"
        : undefined,
    );
  }
}

/** Reads an error answer into a SpritesApiError with one clear line. */
export async function apiError(
  res: Response,
  what: string,
): Promise<SpritesApiError> {
  const text = await res.text().catch(() => "");
  let body: Record<string, unknown> = {};
  try {
    const v = JSON.parse(text);
    if (v && typeof v === "object") body = v;
  } catch { /* not JSON */ }
  const code = typeof body.error === "string" ? body.error : null;
  const num = (k: string) => typeof body[k] === "number" ? body[k] : undefined;
  const retryHeader = Number(res.headers.get("retry-after"));
  const details = {
    limit: num("limit"),
    current: num("current_count"),
    retryAfterS: num("retry_after_seconds") ??
      (retryHeader > 0 ? retryHeader : undefined),
  };
  const said = typeof body.message === "string" && body.message
    ? body.message
    : code ?? (text.trim().split("\n")[0] || `HTTP ${res.status}`);
  let message = `${what}: ${said}`;
  if (code === CONCURRENT_LIMIT) {
    message = `${what}: sprites.dev runs at most ${
      details.limit ?? "?"
    } sprites at once on this plan (${CONCURRENT_LIMIT}${
      details.current !== undefined ? `, ${details.current} running` : ""
    })`;
  } else if (res.status === 401) {
    message = `${what}: sprites.dev refused the token (401)`;
  }
  return new SpritesApiError(res.status, code, message, details);
}

/** A sprite as the list and get answers show it. */
export interface SpriteInfo {
  name: string;
  status?: string;
  labels?: string[];
  [k: string]: unknown;
}

export interface SpriteList {
  sprites: SpriteInfo[];
  /** How many sprites the plan runs at once (`running_limit`), if said. */
  running_limit?: number;
  /** How many it keeps warm (`warm_limit`), if said. */
  warm_limit?: number;
}

export interface ExecParams {
  argv: string[];
  /** The command reads stdin (frames on the socket). */
  stdin: boolean;
  tty?: boolean;
  dir?: string;
  env?: Record<string, string>;
}

/**
 * The plan's limits in a list answer: under `org` (with the org's running,
 * warm and cold counts, as sprites-go reads it), or at the top.
 */
function limitsOf(
  doc: Record<string, unknown>,
): { running_limit?: number; warm_limit?: number } {
  const org = doc.org && typeof doc.org === "object"
    ? doc.org as Record<string, unknown>
    : {};
  const out: { running_limit?: number; warm_limit?: number } = {};
  for (const k of ["running_limit", "warm_limit"] as const) {
    const v = org[k] ?? doc[k];
    if (typeof v === "number" && v > 0) out[k] = v;
  }
  return out;
}

/** Whether an answer is worth asking again (the sprite service said so). */
function retryable(e: SpritesApiError): boolean {
  return e.status >= 500 ||
    (e.status === 429 && e.apiCode !== CONCURRENT_LIMIT);
}

export class SpritesApi {
  readonly url: string;
  private tokenP: Promise<string> | null = null;

  constructor(
    /** The token, or where to get it the first time it is needed. */
    private readonly token: string | (() => Promise<string>),
    url: string = DEFAULT_API_URL,
    private readonly opts: {
      /** How long retries go on before giving up. Default 120 s. */
      retryForMs?: number;
      log?: (m: string) => void;
    } = {},
  ) {
    this.url = url.replace(/\/+$/, "");
  }

  private async headers(json: boolean): Promise<Record<string, string>> {
    const t = this.token;
    this.tokenP ??= typeof t === "string" ? Promise.resolve(t) : t();
    return {
      Authorization: `Bearer ${await this.tokenP}`,
      ...(json ? { "Content-Type": "application/json" } : {}),
    };
  }

  /**
   * One request, retried while the failure is transient (no connection, a
   * 5xx, a rate limit) with backoff that honours `retry_after_seconds`.
   * Resolves to the answer (2xx, or `ok` statuses); throws SpritesApiError.
   */
  async request(
    method: string,
    path: string,
    what: string,
    o: { body?: unknown; ok?: number[] } = {},
  ): Promise<Response> {
    const headers = await this.headers(o.body !== undefined);
    const deadline = Date.now() + (this.opts.retryForMs ?? 120_000);
    let delay = 500;
    for (let attempt = 1;; attempt++) {
      let err: Error;
      try {
        const res = await fetch(`${this.url}${path}`, {
          method,
          headers,
          body: o.body === undefined ? undefined : JSON.stringify(o.body),
          signal: AbortSignal.timeout(60_000),
        });
        if (res.ok || o.ok?.includes(res.status)) return res;
        const e = await apiError(res, what);
        if (!retryable(e)) throw e;
        err = e;
        if (e.details.retryAfterS) {
          delay = Math.max(delay, e.details.retryAfterS * 1000);
        }
      } catch (e) {
        if (e instanceof SpritesApiError && !retryable(e)) throw e;
        err = e instanceof SpritesApiError ? e : new OhcError(
          "sprites_unreachable",
          `${what}: cannot reach ${this.url}: ${(e as Error).message}`,
          "check the network, or $SPRITES_API_URL",
        );
      }
      const left = deadline - Date.now();
      if (left <= 0) throw err;
      this.opts.log?.(`${err.message}; retrying (try ${attempt + 1})`);
      await sleep(Math.min(delay, left));
      delay = Math.min(delay * 2, 10_000);
    }
  }

  private async json<T>(
    method: string,
    path: string,
    what: string,
    body?: unknown,
  ): Promise<T> {
    const res = await this.request(method, path, what, { body });
    return await res.json() as T;
  }

  /** Every sprite of the org (all pages), with the plan's limits. */
  async list(prefix?: string): Promise<SpriteList> {
    const out: SpriteList = { sprites: [] };
    let token: string | null = null;
    for (let page = 0; page < 10_000; page++) {
      const q = new URLSearchParams({ max_results: "50" });
      if (prefix) q.set("prefix", prefix);
      if (token !== null) q.set("continuation_token", token);
      const doc = await this.json<Record<string, unknown>>(
        "GET",
        `/v1/sprites?${q}`,
        "listing sprites",
      );
      if (!Array.isArray(doc.sprites)) {
        throw new OhcError(
          "sprites_api",
          "listing sprites: the answer has no sprites list",
        );
      }
      for (const s of doc.sprites) {
        if (s && typeof s === "object" && typeof s.name === "string") {
          out.sprites.push(s as SpriteInfo);
        }
      }
      Object.assign(out, limitsOf(doc));
      if (
        doc.has_more !== true || typeof doc.next_continuation_token !== "string"
      ) break;
      token = doc.next_continuation_token;
    }
    return out;
  }

  /** The plan's limits: one short page of the list answer. */
  async limits(): Promise<{ running_limit?: number; warm_limit?: number }> {
    return limitsOf(
      await this.json<Record<string, unknown>>(
        "GET",
        "/v1/sprites?max_results=1",
        "reading the plan's limits",
      ),
    );
  }

  /** The sprite, or null when there is none of that name. */
  async get(name: string): Promise<SpriteInfo | null> {
    const res = await this.request(
      "GET",
      `/v1/sprites/${encodeURIComponent(name)}`,
      `sprite ${name}`,
      { ok: [404] },
    );
    if (res.status === 404) {
      await res.body?.cancel();
      return null;
    }
    return await res.json() as SpriteInfo;
  }

  async create(name: string, labels: string[] = []): Promise<SpriteInfo> {
    return await this.json<SpriteInfo>(
      "POST",
      "/v1/sprites",
      `creating sprite ${name}`,
      { name, ...(labels.length ? { labels } : {}) },
    );
  }

  /** Destroys the sprite; one that is not there is not an error. */
  async destroy(name: string): Promise<void> {
    const res = await this.request(
      "DELETE",
      `/v1/sprites/${encodeURIComponent(name)}`,
      `destroying sprite ${name}`,
      { ok: [404] },
    );
    await res.body?.cancel();
  }

  /** The exec endpoint for `p` (`ws:`/`wss:` for the WebSocket form). */
  execUrl(name: string, p: ExecParams, websocket: boolean): string {
    const base = websocket ? this.url.replace(/^http/, "ws") : this.url;
    const u = new URL(`${base}/v1/sprites/${encodeURIComponent(name)}/exec`);
    for (const a of p.argv) u.searchParams.append("cmd", a);
    u.searchParams.set("path", p.argv[0]);
    if (p.stdin) u.searchParams.set("stdin", "true");
    if (p.tty) u.searchParams.set("tty", "true");
    if (p.dir) u.searchParams.set("dir", p.dir);
    for (const [k, v] of Object.entries(p.env ?? {})) {
      u.searchParams.append("env", `${k}=${v}`);
    }
    return u.toString();
  }

  /** Opens the exec WebSocket (the caller waits for open or error). */
  async execSocket(name: string, p: ExecParams): Promise<WebSocket> {
    // Deno's WebSocket takes headers; the token never goes in the URL.
    const ws = new WebSocket(this.execUrl(name, p, true), {
      headers: await this.headers(false),
    });
    ws.binaryType = "arraybuffer";
    return ws;
  }

  /**
   * Why an exec could not start: a WebSocket that fails its handshake shows
   * only the status, so the same command is asked once over the HTTP form
   * (`true`, which does nothing) to read the error's body. Null when that
   * one worked (the condition has passed).
   */
  async whyExecFails(name: string): Promise<SpritesApiError | null> {
    const res = await fetch(
      this.execUrl(name, { argv: ["true"], stdin: false }, false),
      {
        method: "POST",
        headers: await this.headers(false),
        signal: AbortSignal.timeout(30_000),
      },
    ).catch(() => null);
    if (!res) return null;
    if (res.ok) {
      await res.body?.cancel();
      return null;
    }
    return await apiError(res, `sprite ${name}`);
  }
}
