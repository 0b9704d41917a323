/**
 * A fake sprite's management socket (`/.sprite/api.sock` on a real one and
 * in a bare fake one; `<sprite dir>/sprite/api.sock` seen from the host),
 * which `sprite-env` talks to: the Tasks API (holds that keep the sprite
 * running) and services.
 */
import type { Model, Service, Sprite } from "./model.ts";

const json = (v: unknown, status = 200) =>
  new Response(JSON.stringify(v) + "\n", {
    status,
    headers: { "content-type": "application/json" },
  });
const fail = (status: number, message: string) =>
  json({ error: message }, status);

/** `expire`: seconds, or a duration such as "90s", "5m", "1h". */
export function parseExpire(v: unknown): number | null {
  if (typeof v === "number" && Number.isInteger(v) && v > 0) return v;
  if (typeof v !== "string") return null;
  const m = /^(\d+)(s|m|h)?$/.exec(v.trim());
  if (!m) return null;
  return Number(m[1]) * ({ s: 1, m: 60, h: 3600 }[m[2] ?? "s"] ?? 1);
}

function taskJson(name: string, t: { startedAt: string; expires: number }) {
  return {
    name,
    started_at: t.startedAt,
    expires_at: new Date(t.expires).toISOString(),
  };
}

export function serviceJson(svc: Service) {
  return {
    name: svc.name,
    cmd: svc.cmd,
    args: svc.args,
    needs: svc.needs,
    ...(svc.dir ? { dir: svc.dir } : {}),
    state: {
      name: svc.name,
      status: svc.child ? "running" : "stopped",
      ...(svc.pid ? { pid: svc.pid } : {}),
      ...(svc.startedAt ? { started_at: svc.startedAt } : {}),
      restart_count: svc.restartCount,
    },
  };
}

async function body(req: Request): Promise<Record<string, unknown>> {
  try {
    const v = JSON.parse(await req.text());
    return v && typeof v === "object" ? v : {};
  } catch {
    return {};
  }
}

const strings = (v: unknown): string[] =>
  Array.isArray(v) ? v.filter((x) => typeof x === "string") : [];

export async function mgmtHandler(
  model: Model,
  s: Sprite,
  req: Request,
): Promise<Response> {
  const url = new URL(req.url);
  const parts = url.pathname.split("/").filter(Boolean).map(decodeURIComponent);
  if (parts[0] !== "v1") return fail(404, "not found");
  if (parts[1] === "tasks") {
    const hold = (name: unknown, expire: unknown, create: boolean) => {
      if (typeof name !== "string" || !/^[\w.-]{1,128}$/.test(name)) {
        return fail(400, "invalid task name");
      }
      const secs = parseExpire(expire);
      if (secs === null) return fail(400, "invalid expire");
      if (secs > 3600) return fail(400, "expire is at most 1h");
      if (create && s.tasks.has(name)) return fail(409, "task exists");
      const t = {
        startedAt: s.tasks.get(name)?.startedAt ?? new Date().toISOString(),
        expires: Date.now() + secs * 1000,
      };
      s.tasks.set(name, t);
      return json(taskJson(name, t), create ? 201 : 200);
    };
    if (parts.length === 2) {
      if (req.method === "GET") {
        return json({
          tasks: [...s.tasks].filter(([, t]) => t.expires > Date.now())
            .map(([n, t]) => taskJson(n, t)),
        });
      }
      const b = await body(req);
      if (req.method === "POST") return hold(b.name, b.expire, true);
      if (req.method === "PUT") return hold(b.name, b.expire, false);
    }
    if (parts.length === 3) {
      const t = s.tasks.get(parts[2]);
      if (req.method === "GET") {
        return t && t.expires > Date.now()
          ? json(taskJson(parts[2], t))
          : fail(404, "no such task");
      }
      if (req.method === "PUT") {
        return hold(parts[2], (await body(req)).expire, false);
      }
      if (req.method === "DELETE") {
        if (!s.tasks.delete(parts[2])) return fail(404, "no such task");
        // Free to pause again: the idle time counts from here.
        model.touch(s);
        return new Response(null, { status: 204 });
      }
    }
    return fail(405, "method not allowed");
  }
  if (parts[1] === "services") {
    if (parts.length === 2 && req.method === "GET") {
      return json([...s.services.values()].map(serviceJson));
    }
    const name = parts[2];
    const svc = name === undefined ? undefined : s.services.get(name);
    if (parts.length === 3 && req.method === "PUT") {
      if (!/^[\w.-]{1,64}$/.test(name)) {
        return fail(400, "invalid service name");
      }
      if (svc) return fail(409, `service ${name} already exists`);
      const b = await body(req);
      if (typeof b.cmd !== "string" || b.cmd === "") {
        return fail(400, "cmd is required");
      }
      const env: Record<string, string> = {};
      for (const kv of strings(b.env)) {
        const i = kv.indexOf("=");
        if (i > 0) env[kv.slice(0, i)] = kv.slice(i + 1);
      }
      const created: Service = {
        name,
        cmd: b.cmd,
        args: strings(b.args),
        env,
        dir: typeof b.dir === "string" ? b.dir : null,
        needs: strings(b.needs),
        stopped: false,
        child: null,
        pid: null,
        restartCount: 0,
        startedAt: null,
      };
      s.services.set(name, created);
      model.startService(s, created);
      return json(serviceJson(created), 201);
    }
    if (!svc) return fail(404, `no service ${name}`);
    if (parts.length === 3 && req.method === "GET") {
      return json(serviceJson(svc));
    }
    if (parts.length === 3 && req.method === "DELETE") {
      model.stopService(svc);
      s.services.delete(name);
      return new Response(null, { status: 204 });
    }
    if (parts.length === 4 && req.method === "POST") {
      switch (parts[3]) {
        case "start":
          svc.stopped = false;
          model.startService(s, svc);
          return json(serviceJson(svc));
        case "stop":
          model.stopService(svc);
          return json(serviceJson(svc));
        case "restart": {
          const old = svc.child;
          model.stopService(svc);
          await old?.status;
          svc.stopped = false;
          model.startService(s, svc);
          return json(serviceJson(svc));
        }
        case "signal": {
          const sig = (await body(req)).signal;
          if (typeof sig !== "string" || !svc.pid) {
            return fail(400, "no signal, or not running");
          }
          try {
            Deno.kill(
              svc.pid,
              (sig.startsWith("SIG") ? sig : `SIG${sig}`) as Deno.Signal,
            );
          } catch (e) {
            return fail(400, (e as Error).message);
          }
          return json(serviceJson(svc));
        }
      }
    }
    return fail(405, "method not allowed");
  }
  return fail(404, "not found");
}
