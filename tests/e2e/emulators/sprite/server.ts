/**
 * A fake sprites.dev for tests: the HTTP API on loopback (reference §2.3),
 * answering as the vendor's SDKs read it, with the lifecycle of the real
 * service (model.ts): idle pause, cold boot, services, task holds, the
 * plan's running limit and the creation rate limit. Started by
 * ../sprite.ts; it prints `{"url": …}` once it listens, and stops every
 * sprite's processes on SIGTERM.
 *
 * Configuration (environment):
 * - FAKE_SPRITE_DIR: where sprites live (`sprites/<name>/home` is a
 *   sprite's /home/sprite);
 * - FAKE_SPRITE_SECRET: the last part of every valid token
 *   (`<org>/<org id>/<token id>/<secret>`; the org is the first part);
 * - FAKE_SPRITE_BASE_PATH: PATH inside sprites (the base image's tools);
 * - FAKE_SPRITE_BASE_DIR: what a bare sprite has at /opt/sprite;
 * - FAKE_SPRITE_BARE=1: sprites hold only the OS (model.ts);
 * - FAKE_SPRITE_IDLE_S, FAKE_SPRITE_COLD_S, FAKE_SPRITE_RUNNING_LIMIT,
 *   FAKE_SPRITE_WARM_LIMIT, FAKE_SPRITE_CREATE_RATE (`n/seconds`),
 *   FAKE_SPRITE_FAIL_CONNECTS, FAKE_SPRITE_DROP_EXECS,
 *   FAKE_SPRITE_DROP_MATCH: see model.ts.
 *
 * Test-only routes under /_fake (no token): `GET /_fake/sprites` shows
 * every sprite's state without counting as activity; `PUT /_fake/knobs`
 * changes the terms above (`{"runningLimit": 3}`); `POST
 * /_fake/sprites/<name>/freeze` makes a sprite cold at once (its host
 * failed), holds or not.
 */
import { execHttp, execWebSocket, parseExec } from "./exec.ts";
import { mgmtHandler, serviceJson } from "./mgmt.ts";
import { type Knobs, LimitError, Model, type Sprite } from "./model.ts";
import {
  listeners,
  localPortsOf,
  MARKER,
  processGroup,
  socketInodes,
} from "./procs.ts";

const env = (k: string) => Deno.env.get(k) ?? "";
const ROOT = env("FAKE_SPRITE_DIR");
const SECRET = env("FAKE_SPRITE_SECRET");
if (!ROOT || !SECRET) {
  console.error("FAKE_SPRITE_DIR and FAKE_SPRITE_SECRET are required");
  Deno.exit(2);
}
const rate = /^(\d+)\/(\d+)$/.exec(env("FAKE_SPRITE_CREATE_RATE"));
const knobs: Knobs = {
  idleS: Number(env("FAKE_SPRITE_IDLE_S")) || 0,
  coldS: Number(env("FAKE_SPRITE_COLD_S")) || 0,
  runningLimit: Number(env("FAKE_SPRITE_RUNNING_LIMIT")) || 0,
  warmLimit: Number(env("FAKE_SPRITE_WARM_LIMIT")) || 0,
  createRate: rate
    ? { n: Number(rate[1]), windowS: Number(rate[2]) }
    : { n: 0, windowS: 0 },
  failConnects: Number(env("FAKE_SPRITE_FAIL_CONNECTS")) || 0,
  dropExecs: Number(env("FAKE_SPRITE_DROP_EXECS")) || 0,
  dropMatch: env("FAKE_SPRITE_DROP_MATCH"),
  bare: env("FAKE_SPRITE_BARE") === "1",
};
const BASE_PATH = env("FAKE_SPRITE_BASE_PATH") || "/usr/bin:/bin";
const BASE_DIR = env("FAKE_SPRITE_BASE_DIR");
const LOG = `${ROOT}/server.log`;

function log(m: string) {
  try {
    Deno.writeTextFileSync(LOG, `${new Date().toISOString()} ${m}\n`, {
      append: true,
    });
  } catch { /* best effort */ }
}

/** What every process of a sprite starts with: the base image, no host. */
function baseEnv(s: Sprite): Record<string, string> {
  return {
    HOME: model.homeIn(s),
    USER: "sprite",
    LOGNAME: "sprite",
    SHELL: "/bin/bash",
    PATH: knobs.bare
      ? "/opt/sprite/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"
      : BASE_PATH,
    LANG: "C.UTF-8",
    SPRITE_NAME: s.name,
    ...(knobs.bare ? {} : { [MARKER]: s.dir }),
  };
}

const model = new Model(ROOT, knobs, baseEnv, log, BASE_DIR);

const json = (v: unknown, status = 200, headers: Record<string, string> = {}) =>
  new Response(JSON.stringify(v) + "\n", {
    status,
    headers: { "content-type": "application/json", ...headers },
  });
const fail = (status: number, error: string, message: string, extra = {}) =>
  json({ error, message, ...extra }, status);

function apiObject(s: Sprite) {
  return {
    id: s.id,
    name: s.name,
    organization: s.org,
    labels: s.labels,
    url: `https://${s.name}-${s.org}.sprites.app`,
    url_settings: { auth: "sprite" },
    status: s.status,
    created_at: s.createdAt,
    updated_at: s.updatedAt,
  };
}

/** The org a bearer token is for, or null when it is not valid. */
function orgOf(req: Request): string | null {
  const m = /^Bearer (.+)$/.exec(req.headers.get("authorization") ?? "");
  if (!m) return null;
  const parts = m[1].split("/");
  return parts.length === 4 && parts[3] === SECRET && parts[0]
    ? parts[0]
    : null;
}

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

/** Drops the sessions whose client is a process of `s` (it paused). */
function dropOutbound(s: Sprite): void {
  const ports = localPortsOf(model.procs(s));
  if (ports.size === 0) return;
  for (const other of model.sprites.values()) {
    for (const x of [...other.sessions]) {
      if (ports.has(x.clientPort)) x.drop();
    }
  }
}

function limitAnswer(e: LimitError): Response {
  return fail(429, "concurrent_sprite_limit_exceeded", e.message, {
    limit: e.limit,
    current_count: e.current,
    upgrade_available: true,
  });
}

async function ensureMgmt(s: Sprite): Promise<void> {
  if (s.mgmt) return;
  const path = `${s.dir}/sprite/api.sock`;
  await Deno.remove(path).catch(() => {});
  s.mgmt = Deno.serve(
    { path, onListen() {} },
    (req) => mgmtHandler(model, s, req),
  );
}

async function handle(
  req: Request,
  info: Deno.ServeHandlerInfo<Deno.NetAddr>,
): Promise<Response> {
  const url = new URL(req.url);
  const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] === "_fake") {
    if (parts[1] === "sprites" && parts.length === 2 && req.method === "GET") {
      return json([...model.sprites.values()].map((s) => ({
        ...apiObject(s),
        tasks: [...s.tasks.keys()],
        sessions: s.sessions.size,
        services: [...s.services.values()].map(serviceJson),
      })));
    }
    if (
      parts[1] === "sprites" && parts[3] === "processes" &&
      req.method === "GET"
    ) {
      // Its live processes (a cold sprite has none).
      const s = model.sprites.get(parts[2]);
      if (!s) return fail(404, "not_found", "no such sprite");
      return json(model.procs(s));
    }
    if (
      parts[1] === "sprites" && parts[3] === "freeze" && req.method === "POST"
    ) {
      // The host under a sprite fails: cold at once, holds or not.
      const s = model.sprites.get(parts[2]);
      if (!s) return fail(404, "not_found", "no such sprite");
      s.tasks.clear();
      if (s.status === "running") model.pause(s, dropOutbound);
      model.freeze(s, dropOutbound);
      return json({ name: s.name, status: s.status });
    }
    if (parts[1] === "knobs" && req.method === "PUT") {
      // Changes the service's terms mid-test (e.g. a plan's limit).
      const v = await req.json();
      for (const k of Object.keys(knobs) as (keyof Knobs)[]) {
        if (typeof v?.[k] === typeof knobs[k]) {
          (knobs as unknown as Record<string, unknown>)[k] = v[k];
        }
      }
      return json(knobs);
    }
    return fail(404, "not_found", "no such test route");
  }
  if (parts[0] !== "v1" || parts[1] !== "sprites") {
    return fail(404, "not_found", "not found");
  }
  const org = orgOf(req);
  if (org === null) {
    return fail(401, "unauthorized", "invalid or missing token");
  }
  if (parts.length === 2 && req.method === "GET") {
    const prefix = url.searchParams.get("prefix") ?? "";
    const max = Math.min(
      Math.max(Number(url.searchParams.get("max_results") ?? 50) || 50, 1),
      50,
    );
    const all = model.of(org).filter((s) => s.name.startsWith(prefix));
    const start = Number(url.searchParams.get("continuation_token") ?? 0) || 0;
    const more = start + max < all.length;
    const mine = model.of(org);
    const count = (st: string) => mine.filter((s) => s.status === st).length;
    return json({
      sprites: all.slice(start, start + max).map((s) => ({
        name: s.name,
        org_slug: s.org,
        status: s.status,
        labels: s.labels,
        updated_at: s.updatedAt,
      })),
      // The org's counts and the plan's limits (sprites-go's OrgInfo).
      org: {
        name: org,
        running: count("running"),
        warm: count("warm"),
        cold: count("cold"),
        running_limit: knobs.runningLimit,
        warm_limit: knobs.warmLimit,
      },
      has_more: more,
      next_continuation_token: more ? String(start + max) : null,
    });
  }
  if (parts.length === 2 && req.method === "POST") {
    let name: unknown;
    let labels: unknown;
    try {
      ({ name, labels } = await req.json() ?? {});
    } catch {
      return fail(400, "bad_request", "invalid request body");
    }
    labels ??= [];
    if (
      !Array.isArray(labels) || labels.some((l) => typeof l !== "string")
    ) {
      return fail(400, "bad_request", "labels must be a list of strings");
    }
    if (typeof name !== "string" || !NAME_RE.test(name)) {
      return fail(400, "bad_request", `invalid sprite name "${name}"`);
    }
    if (model.sprites.has(name)) {
      return fail(
        400,
        "bad_request",
        `a sprite named "${name}" already exists`,
      );
    }
    const wait = model.rateLimited();
    if (wait > 0) {
      log(`create ${name}: rate limited (${wait}s)`);
      return fail(
        429,
        "sprite_creation_rate_limited",
        "Sprite creation rate limit exceeded",
        {
          limit: knobs.createRate.n,
          window_seconds: knobs.createRate.windowS,
          retry_after_seconds: wait,
        },
      );
    }
    const s = await model.create(name, org, labels as string[]);
    await ensureMgmt(s);
    log(`created ${name} (${org})`);
    return json(apiObject(s), 201);
  }
  const s = parts[2] === undefined ? undefined : model.sprites.get(parts[2]);
  if (!s || s.org !== org) {
    return fail(404, "not_found", `sprite "${parts[2]}" not found`);
  }
  if (parts.length === 3) {
    if (req.method === "GET") return json(apiObject(s));
    if (req.method === "PUT") {
      const b = await req.json().catch(() => ({}));
      if (b?.clear_labels === true) s.labels = [];
      if (Array.isArray(b?.labels)) {
        s.labels = [...new Set([...s.labels, ...b.labels.map(String)])];
      }
      await model.save(s);
      return json(apiObject(s));
    }
    if (req.method === "DELETE") {
      await model.destroy(s);
      log(`destroyed ${s.name}`);
      return new Response(null, { status: 204 });
    }
  }
  if (parts.length === 4 && parts[3] === "exec") {
    const r = parseExec(url);
    if (typeof r === "string") return fail(400, "bad_request", r);
    if (r.tty) {
      return fail(400, "bad_request", "tty is not supported by the fake");
    }
    const ws = req.headers.get("upgrade")?.toLowerCase() === "websocket";
    if (ws && s.connects++ < knobs.failConnects) {
      log(`${s.name}: exec handshake failed on purpose`);
      return fail(502, "bad_gateway", "upstream connect error");
    }
    try {
      await model.wake(s);
    } catch (e) {
      if (e instanceof LimitError) return limitAnswer(e);
      throw e;
    }
    if (!ws) {
      if (req.method !== "POST") return fail(405, "bad_request", "use POST");
      return execHttp(model, s, r, req);
    }
    const matches = !knobs.dropMatch ||
      new RegExp(knobs.dropMatch).test(r.argv.join(" "));
    // Never two in a row: a reset, then the retry goes through.
    const cut = matches && !s.lastCut && s.execs < knobs.dropExecs;
    if (matches) s.lastCut = cut;
    if (cut) s.execs++;
    if (cut) log(`${s.name}: exec cut on purpose: ${r.argv.join(" ")}`);
    return execWebSocket(model, s, r, req, info.remoteAddr.port, cut);
  }
  return fail(405, "method_not_allowed", "method not allowed");
}

const server = Deno.serve(
  { hostname: "127.0.0.1", port: 0, onListen() {} },
  (req, info) =>
    handle(req, info as Deno.ServeHandlerInfo<Deno.NetAddr>).catch((e) => {
      log(`error: ${(e as Error).stack ?? e}`);
      return fail(500, "internal", (e as Error).message);
    }),
);
const clock = setInterval(() => model.tick(dropOutbound), 200);

/**
 * The port notices the real service sends on an exec session whose
 * command listens on a port (the CLI forwards those ports to the caller
 * unless told not to; the API itself forwards none). New listening sockets
 * are looked for twice a second, and their owners only when one appears.
 */
let listening = new Set(listeners().keys());
const portWatch = setInterval(() => {
  const now = listeners();
  const fresh = [...now.keys()].filter((i) => !listening.has(i));
  listening = new Set(now.keys());
  if (fresh.length === 0) return;
  for (const s of model.sprites.values()) {
    for (const x of s.sessions) {
      if (x.pgid === null) continue;
      const group = processGroup(x.pgid);
      const held = socketInodes(group);
      for (const inode of fresh.filter((i) => held.has(i))) {
        x.notice({
          type: "port_opened",
          port: now.get(inode),
          address: "127.0.0.1",
          pid: group[0],
        });
        log(`${s.name}: port_opened ${now.get(inode)}`);
      }
    }
  }
}, 500);

async function shutdown() {
  clearInterval(clock);
  clearInterval(portWatch);
  for (const s of model.sprites.values()) {
    await model.halt(s).catch(() => {});
  }
  await server.shutdown().catch(() => {});
  Deno.exit(0);
}
Deno.addSignalListener("SIGTERM", () => void shutdown());
Deno.addSignalListener("SIGINT", () => void shutdown());

console.log(
  JSON.stringify({ url: `http://127.0.0.1:${server.addr.port}` }),
);
