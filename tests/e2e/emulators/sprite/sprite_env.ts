/**
 * Fake `sprite-env`, the CLI every sprite's base image has (reference §6),
 * over the fake sprite's management socket (mgmt.ts):
 *
 *   sprite-env services create NAME --cmd C [--args a,b] [--env K=V,...]
 *       [--dir D] [--needs a,b] [--http-port P] [--duration 5s] [--no-stream]
 *   sprite-env services list | get N | start N | stop N | restart N
 *       | delete N | signal N SIG
 *   sprite-env curl [-X M] [-d DATA] [-H H] [-s] [-f] PATH
 *
 * The sprite is the one whose FAKE_SPRITE_SANDBOX (else HOME) this runs in.
 */

const enc = new TextEncoder();
const out = (s: string) => Deno.stdout.writeSync(enc.encode(s));
const err = (s: string) => Deno.stderr.writeSync(enc.encode(s));

class Fail extends Error {
  constructor(message: string, readonly code = 1) {
    super(message);
  }
}

function socketPath(): string {
  const dir = Deno.env.get("FAKE_SPRITE_SANDBOX");
  if (dir) return `${dir}/api.sock`;
  const home = Deno.env.get("HOME");
  if (home) {
    return `${home.replace(/\/+$/, "").replace(/\/[^/]*$/, "")}/api.sock`;
  }
  throw new Fail("sprite-env: not inside a sprite");
}

async function call(
  method: string,
  path: string,
  body?: string,
): Promise<{ status: number; text: string }> {
  const client = Deno.createHttpClient({
    proxy: { transport: "unix", path: socketPath() },
  });
  try {
    const r = await fetch(`http://sprite${path}`, {
      method,
      client,
      headers: body === undefined ? {} : { "content-type": "application/json" },
      body,
    });
    return { status: r.status, text: await r.text() };
  } catch (e) {
    throw new Fail(
      `sprite-env: cannot reach the sprite runtime: ${(e as Error).message}`,
    );
  } finally {
    client.close();
  }
}

function flags(argv: string[], known: string[], bools: string[] = []) {
  const f = new Map<string, string>();
  const rest: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith("--")) {
      const [k, v] = a.slice(2).split(/=(.*)/s, 2);
      if (bools.includes(k)) {
        f.set(k, "true");
      } else if (known.includes(k)) {
        const value = v ?? argv[++i];
        if (value === undefined) throw new Fail(`Error: --${k} needs a value`);
        f.set(k, value);
      } else throw new Fail(`Error: unknown flag --${k}`);
    } else rest.push(a);
  }
  return { f, rest };
}

const list = (v?: string) => v ? v.split(",").filter((x) => x !== "") : [];

function answer(r: { status: number; text: string }): number {
  if (r.status >= 400) {
    let msg = r.text.trim();
    try {
      msg = JSON.parse(msg).error ?? msg;
    } catch { /* text */ }
    throw new Fail(`Error: ${msg}`);
  }
  if (r.text) out(r.text.endsWith("\n") ? r.text : r.text + "\n");
  return 0;
}

async function services(argv: string[]): Promise<number> {
  const [verb, ...rest] = argv;
  const path = (n: string | undefined, tail = "") => {
    if (!n) throw new Fail(`Error: services ${verb} needs a name`);
    return `/v1/services/${encodeURIComponent(n)}${tail}`;
  };
  switch (verb) {
    case "create": {
      const { f, rest: pos } = flags(rest, [
        "cmd",
        "args",
        "env",
        "dir",
        "needs",
        "http-port",
        "duration",
      ], ["no-stream"]);
      if (!f.get("cmd")) throw new Fail("Error: --cmd is required");
      const r = await call(
        "PUT",
        path(pos[0]),
        JSON.stringify({
          cmd: f.get("cmd"),
          args: list(f.get("args")),
          env: list(f.get("env")),
          dir: f.get("dir"),
          needs: list(f.get("needs")),
        }),
      );
      if (r.status >= 400 || f.has("no-stream")) return answer(r);
      out(JSON.stringify({ type: "started", timestamp: Date.now() }) + "\n");
      out(JSON.stringify({ type: "complete", timestamp: Date.now() }) + "\n");
      return 0;
    }
    case "list":
      return answer(await call("GET", "/v1/services"));
    case "get":
      return answer(await call("GET", path(rest[0])));
    case "start":
    case "stop":
    case "restart":
      return answer(await call("POST", path(rest[0], `/${verb}`)));
    case "delete":
      return answer(await call("DELETE", path(rest[0])));
    case "signal":
      return answer(
        await call(
          "POST",
          path(rest[0], "/signal"),
          JSON.stringify({ signal: rest[1] }),
        ),
      );
    default:
      throw new Fail(`Error: unknown services command "${verb}"`);
  }
}

async function curl(argv: string[]): Promise<number> {
  let method: string | undefined;
  let data: string | undefined;
  let failOnError = false;
  let path: string | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "-X" || a === "--request") method = argv[++i];
    else if (a === "-d" || a === "--data" || a === "--data-raw") {
      data = argv[++i];
    } else if (a === "-H" || a === "--header") i++;
    else if (a === "-s" || a === "--silent") { /* always quiet */ }
    else if (a === "-f" || a === "--fail") failOnError = true;
    else if (/^-[sfS]+$/.test(a)) failOnError ||= a.includes("f");
    else if (a.startsWith("-")) throw new Fail(`curl: unknown option ${a}`, 2);
    else path = a;
  }
  if (!path) throw new Fail("curl: no URL specified", 2);
  const url = path.replace(/^https?:\/\/sprite/, "");
  const r = await call(method ?? (data ? "POST" : "GET"), url, data);
  if (failOnError && r.status >= 400) {
    throw new Fail(
      `curl: (22) The requested URL returned error: ${r.status}`,
      22,
    );
  }
  out(r.text);
  return 0;
}

if (import.meta.main) {
  let code = 0;
  try {
    const [cmd, ...rest] = Deno.args;
    if (cmd === "services") code = await services(rest);
    else if (cmd === "curl") code = await curl(rest);
    else throw new Fail(`Error: unknown command "${cmd ?? ""}"`, 2);
  } catch (e) {
    err((e instanceof Error ? e.message : String(e)) + "\n");
    code = e instanceof Fail ? e.code : 1;
  }
  Deno.exit(code);
}
