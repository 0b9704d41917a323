/**
 * Fake `sprite` CLI (sprites.dev, reference §2.1–2.3) for tests; run through
 * the `sprite` shell script beside it, which tests put on PATH.
 *
 * A sprite is a directory `$FAKE_SPRITE_DIR/sprites/<name>/` whose `home/`
 * stands in for /home/sprite: `sprite exec` runs the command as a local
 * process with HOME there (cwd there unless --dir), a clean environment,
 * stdin passed through, stdout and stderr kept apart and the exit code
 * passed back (127 when the program is not found, 126 when it cannot run,
 * 128+n for signal n). Paths in --dir and --file that start with
 * /home/sprite are mapped into the sprite's home.
 *
 * Both `-flag` and `--flag` spellings work, as `--k=v` and `--k v`.
 * Without --skip-console, `create` creates the sprite and then fails (it
 * would open an interactive console); without --force, `destroy` asks on
 * stdin and aborts unless the answer is y/yes (so scripts without --force
 * fail). `list` prints one name per line; `api /v1/sprites` answers the REST
 * JSON.
 *
 * State changes hold an exclusive flock on `$FAKE_SPRITE_DIR/.lock`.
 */

const enc = new TextEncoder();
const dec = new TextDecoder();

class CliError extends Error {
  constructor(message: string, readonly code = 1) {
    super(message);
  }
}

function out(s: string): void {
  const b = enc.encode(s);
  let o = 0;
  while (o < b.length) o += Deno.stdout.writeSync(b.subarray(o));
}
function err(s: string): void {
  const b = enc.encode(s);
  let o = 0;
  while (o < b.length) o += Deno.stderr.writeSync(b.subarray(o));
}

const ROOT = Deno.env.get("FAKE_SPRITE_DIR") ?? "";
const DEFAULT_ORG = Deno.env.get("FAKE_SPRITE_ORG") ?? "test-org";
const SPRITE_HOME = "/home/sprite";
export const MARKER = "FAKE_SPRITE_SANDBOX";

interface Meta {
  id: string;
  name: string;
  organization: string;
  status: string;
  created_at: string;
  updated_at: string;
  labels: string[];
}

const spritesDir = () => `${ROOT}/sprites`;
const spriteDir = (name: string) => `${spritesDir()}/${name}`;
const homeOf = (name: string) => `${spriteDir(name)}/home`;

async function withLock<T>(fn: () => Promise<T>): Promise<T> {
  await Deno.mkdir(ROOT, { recursive: true });
  const f = await Deno.open(`${ROOT}/.lock`, {
    read: true,
    write: true,
    create: true,
  });
  try {
    await f.lock(true);
    return await fn();
  } finally {
    f.close();
  }
}

async function readMeta(name: string): Promise<Meta | null> {
  try {
    return JSON.parse(await Deno.readTextFile(`${spriteDir(name)}/meta.json`));
  } catch {
    return null;
  }
}

async function writeMeta(meta: Meta): Promise<void> {
  const path = `${spriteDir(meta.name)}/meta.json`;
  const tmp = `${path}.tmp.${Deno.pid}`;
  await Deno.writeTextFile(tmp, JSON.stringify(meta, null, 2) + "\n");
  await Deno.rename(tmp, path);
}

async function allSprites(): Promise<Meta[]> {
  const list: Meta[] = [];
  try {
    for await (const e of Deno.readDir(spritesDir())) {
      if (!e.isDirectory) continue;
      const m = await readMeta(e.name);
      if (m) list.push(m);
    }
  } catch { /* none yet */ }
  return list.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
}

// ------------------------------------------------------------ flag parsing

type Spec = Record<
  string,
  { kind: "bool" | "string" | "list"; alias?: string }
>;

interface Parsed {
  bools: Set<string>;
  strings: Map<string, string>;
  lists: Map<string, string[]>;
  args: string[];
}

const GLOBAL: Spec = {
  org: { kind: "string", alias: "o" },
  sprite: { kind: "string", alias: "s" },
  help: { kind: "bool", alias: "h" },
  debug: { kind: "bool" },
};

/**
 * Parses flags (`-f`, `--f`, `--f=v`, `--f v`); `--` ends flags. With
 * `stopAtPositional`, the first positional ends flags too (exec's command).
 */
function parseFlags(
  argv: string[],
  spec: Spec,
  stopAtPositional: boolean,
): Parsed {
  const all: Spec = { ...GLOBAL, ...spec };
  const byAlias = new Map<string, string>();
  for (const [name, s] of Object.entries(all)) {
    byAlias.set(name, name);
    if (s.alias) byAlias.set(s.alias, name);
  }
  const p: Parsed = {
    bools: new Set(),
    strings: new Map(),
    lists: new Map(),
    args: [],
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === "--") {
      p.args.push(...argv.slice(i + 1));
      break;
    }
    if (a.startsWith("-") && a.length > 1) {
      let body = a.replace(/^--?/, "");
      let value: string | undefined;
      const eq = body.indexOf("=");
      if (eq >= 0) {
        value = body.slice(eq + 1);
        body = body.slice(0, eq);
      }
      const name = byAlias.get(body);
      if (name === undefined) {
        throw new CliError(`Error: unknown flag: ${a.split("=")[0]}`);
      }
      const s = all[name];
      if (s.kind === "bool") {
        if (value === undefined || value === "true") p.bools.add(name);
        else if (value === "false") p.bools.delete(name);
        else {
          throw new CliError(
            `Error: invalid argument "${value}" for "--${name}" flag`,
          );
        }
        continue;
      }
      if (value === undefined) {
        if (i + 1 >= argv.length) {
          throw new CliError(`Error: flag needs an argument: --${name}`);
        }
        value = argv[++i];
      }
      if (s.kind === "list") {
        p.lists.set(name, [...(p.lists.get(name) ?? []), value]);
      } else p.strings.set(name, value);
      continue;
    }
    p.args.push(a);
    if (stopAtPositional) {
      p.args.push(...argv.slice(i + 1));
      break;
    }
  }
  return p;
}

const USAGE = `sprite (fake, for tests)

Usage:
  sprite [command]

Commands:
  create [--skip-console] <name>   Create a sprite
  list, ls [--prefix P]            List sprites (one name per line)
  destroy [-s name | name] [--force]
  exec, x [-s name] [--dir D] [--env K=V,...] [--file src:dest]... -- cmd [args]
  use <name>                       Write .sprite in the current directory
  url [-s name]                    Show the sprite's URL
  api <path> [-- curl options]     Call the REST API (GET, POST, DELETE)

Global flags:
  -o, --org string      organization
  -s, --sprite string   sprite name
`;

function spriteName(p: Parsed, positional = true): string {
  const fromFlag = p.strings.get("sprite");
  if (fromFlag) return fromFlag;
  if (positional && p.args.length > 0) return p.args[0];
  const env = Deno.env.get("SPRITE_NAME");
  if (env) return env;
  try {
    const f = Deno.readTextFileSync(".sprite").trim();
    if (f) return JSON.parse(f).sprite ?? f;
  } catch { /* no .sprite */ }
  throw new CliError(
    "Error: no sprite specified (use -s <name>, or `sprite use <name>`)",
  );
}

async function existing(name: string, org?: string): Promise<Meta> {
  const m = await readMeta(name);
  if (m === null || (org !== undefined && m.organization !== org)) {
    throw new CliError(`Error: sprite "${name}" not found`);
  }
  return m;
}

function nowIso(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

// ------------------------------------------------------------ commands

const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

async function create(name: string, org: string): Promise<Meta> {
  if (!NAME_RE.test(name)) {
    throw new CliError(
      `Error: invalid sprite name "${name}": use lowercase letters, digits and hyphens`,
    );
  }
  return await withLock(async () => {
    if (await readMeta(name)) {
      throw new CliError(`Error: sprite "${name}" already exists`);
    }
    await Deno.mkdir(homeOf(name), { recursive: true });
    const t = nowIso();
    const meta: Meta = {
      id: `sprite-${crypto.randomUUID()}`,
      name,
      organization: org,
      status: "cold",
      created_at: t,
      updated_at: t,
      labels: [],
    };
    await writeMeta(meta);
    return meta;
  });
}

async function cmdCreate(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    "skip-console": { kind: "bool" },
    label: { kind: "list" },
  }, false);
  if (p.args.length > 1) throw new CliError("Error: accepts 1 arg(s)");
  const name = spriteName(p);
  const meta = await create(name, p.strings.get("org") ?? DEFAULT_ORG);
  const labels = p.lists.get("label") ?? [];
  if (labels.length > 0) {
    meta.labels = labels;
    await writeMeta(meta);
  }
  out(`Created sprite ${name}\n`);
  if (!p.bools.has("skip-console")) {
    throw new CliError(
      `Error: cannot open a console on sprite "${name}": this fake sprite CLI has no interactive console (pass --skip-console)`,
    );
  }
  return 0;
}

async function cmdList(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    prefix: { kind: "string" },
    watch: { kind: "bool", alias: "w" },
  }, false);
  if (p.bools.has("watch")) {
    throw new CliError(
      "Error: --watch is not supported by the fake sprite CLI",
    );
  }
  const prefix = p.strings.get("prefix") ?? "";
  const org = p.strings.get("org");
  for (const m of await allSprites()) {
    if (!m.name.startsWith(prefix)) continue;
    if (org !== undefined && m.organization !== org) continue;
    out(`${m.name}\n`);
  }
  return 0;
}

async function readAnswer(): Promise<string> {
  const buf = new Uint8Array(256);
  let text = "";
  while (!text.includes("\n")) {
    const n = await Deno.stdin.read(buf);
    if (n === null) break;
    text += dec.decode(buf.subarray(0, n));
  }
  return text.split("\n")[0].trim().toLowerCase();
}

/** Kills processes started in this sprite (or, with a trailing /, all). */
export function killSandboxed(value: string, prefix: boolean): number[] {
  const victims: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    let env: string;
    try {
      env = Deno.readTextFileSync(`/proc/${e.name}/environ`);
    } catch {
      continue;
    }
    const hit = env.split("\0").some((kv) =>
      prefix ? kv.startsWith(`${MARKER}=${value}`) : kv === `${MARKER}=${value}`
    );
    if (hit) victims.push(Number(e.name));
  }
  for (const pid of victims) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  return victims;
}

async function destroy(name: string): Promise<void> {
  await withLock(async () => {
    killSandboxed(spriteDir(name), false);
    await Deno.remove(spriteDir(name), { recursive: true });
  });
}

async function cmdDestroy(argv: string[]): Promise<number> {
  const p = parseFlags(argv, { force: { kind: "bool", alias: "f" } }, false);
  const name = spriteName(p);
  await existing(name, p.strings.get("org"));
  if (!p.bools.has("force")) {
    out(
      `Are you sure you want to destroy sprite "${name}"? This cannot be undone. [y/N]: `,
    );
    const answer = await readAnswer();
    if (answer !== "y" && answer !== "yes") {
      out("\n");
      throw new CliError("Aborted.");
    }
  }
  await destroy(name);
  out(`Destroyed sprite ${name}\n`);
  return 0;
}

/** /home/sprite/... → the sprite's home; relative → under home. */
function mapPath(home: string, path: string): string {
  if (path === SPRITE_HOME || path === "~") return home;
  if (path.startsWith(`${SPRITE_HOME}/`)) {
    return home + path.slice(SPRITE_HOME.length);
  }
  if (path.startsWith("~/")) return `${home}/${path.slice(2)}`;
  if (!path.startsWith("/")) return `${home}/${path}`;
  return path;
}

const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

async function cmdExec(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {
    dir: { kind: "string", alias: "d" },
    env: { kind: "list", alias: "e" },
    file: { kind: "list", alias: "f" },
    tty: { kind: "bool", alias: "t" },
    "no-port-forward": { kind: "bool" },
    "http-post": { kind: "bool" },
  }, true);
  const name = spriteName(p, false);
  const meta = await existing(name, p.strings.get("org"));
  const home = homeOf(name);
  for (const spec of p.lists.get("file") ?? []) {
    const i = spec.indexOf(":");
    if (i <= 0 || i === spec.length - 1) {
      throw new CliError(
        `Error: invalid --file "${spec}": expected <local>:<remote>`,
      );
    }
    const src = spec.slice(0, i);
    const dest = mapPath(home, spec.slice(i + 1));
    let data: Uint8Array;
    let mode: number | null = null;
    try {
      data = await Deno.readFile(src);
      mode = (await Deno.stat(src)).mode;
    } catch {
      throw new CliError(`Error: open ${src}: no such file or directory`);
    }
    await Deno.mkdir(dest.slice(0, dest.lastIndexOf("/")) || "/", {
      recursive: true,
    });
    await Deno.writeFile(dest, data);
    if (mode !== null) await Deno.chmod(dest, mode & 0o777);
  }
  if (p.args.length === 0) throw new CliError("Error: no command specified");
  const cwd = p.strings.has("dir")
    ? mapPath(home, p.strings.get("dir")!)
    : home;
  try {
    if (!(await Deno.stat(cwd)).isDirectory) throw new Error();
  } catch {
    throw new CliError(
      `Error: chdir ${p.strings.get("dir")}: no such file or directory`,
    );
  }
  const env: Record<string, string> = {
    HOME: home,
    USER: "sprite",
    LOGNAME: "sprite",
    SHELL: "/bin/bash",
    PATH: Deno.env.get("PATH") ?? "/usr/local/bin:/usr/bin:/bin",
    PWD: cwd,
    SPRITE_NAME: name,
    [MARKER]: spriteDir(name),
  };
  for (const k of ["LANG", "TERM", "TMPDIR", "DENO_DIR"]) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  const pass = Deno.env.get("FAKE_SPRITE_PASS_ENV");
  for (const k of pass ? pass.split(",") : []) {
    const v = Deno.env.get(k);
    if (v !== undefined) env[k] = v;
  }
  for (const list of p.lists.get("env") ?? []) {
    for (const kv of list.split(",")) {
      if (kv === "") continue;
      const i = kv.indexOf("=");
      if (i <= 0) throw new CliError(`Error: invalid --env "${kv}": want K=V`);
      env[kv.slice(0, i)] = kv.slice(i + 1);
    }
  }
  if (meta.status !== "running") {
    meta.status = "running";
    meta.updated_at = nowIso();
    await writeMeta(meta).catch(() => {});
  }
  let child: Deno.ChildProcess;
  try {
    child = new Deno.Command(p.args[0], {
      args: p.args.slice(1),
      cwd,
      env,
      clearEnv: true,
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new CliError(
        `exec: "${p.args[0]}": executable file not found in $PATH`,
        127,
      );
    }
    if (e instanceof Deno.errors.PermissionDenied) {
      throw new CliError(`exec: "${p.args[0]}": permission denied`, 126);
    }
    throw new CliError(`exec: "${p.args[0]}": ${(e as Error).message}`, 126);
  }
  const st = await child.status;
  if (st.signal) return 128 + (SIGNALS[st.signal] ?? 0);
  return st.code;
}

async function cmdUse(argv: string[]): Promise<number> {
  const p = parseFlags(argv, {}, false);
  const name = spriteName(p);
  await existing(name, p.strings.get("org"));
  await Deno.writeTextFile(
    ".sprite",
    JSON.stringify({
      organization: p.strings.get("org") ?? DEFAULT_ORG,
      sprite: name,
    }) + "\n",
  );
  out(`Using sprite ${name}\n`);
  return 0;
}

async function cmdUrl(argv: string[]): Promise<number> {
  const p = parseFlags(argv, { auth: { kind: "string" } }, false);
  const name = spriteName(p, false);
  const m = await existing(name, p.strings.get("org"));
  out(`URL: https://${name}-${m.organization}.sprites.app/\nAuth: sprite\n`);
  return 0;
}

function apiObject(m: Meta): Record<string, unknown> {
  return {
    id: m.id,
    name: m.name,
    organization: m.organization,
    url: `https://${m.name}-${m.organization}.sprites.app`,
    url_settings: { auth: "sprite" },
    status: m.status,
    created_at: m.created_at,
    updated_at: m.updated_at,
  };
}

async function cmdApi(argv: string[]): Promise<number> {
  // sprite api <path> [-- curl options]
  const sep = argv.indexOf("--");
  const own = sep >= 0 ? argv.slice(0, sep) : argv;
  const curl = sep >= 0 ? argv.slice(sep + 1) : [];
  const p = parseFlags(own, {}, false);
  if (p.args.length !== 1) throw new CliError("Error: accepts 1 arg(s)");
  let method = "GET";
  let body = "";
  for (let i = 0; i < curl.length; i++) {
    const a = curl[i];
    if (a === "-X" || a === "--request") method = curl[++i] ?? "GET";
    else if (a.startsWith("-X") && a.length > 2) method = a.slice(2);
    else if (a === "-d" || a === "--data" || a === "--data-raw") {
      body = curl[++i] ?? "";
      if (method === "GET") method = "POST";
    } else if (a === "-H" || a === "--header") i++;
  }
  const url = new URL(p.args[0], "https://api.sprites.dev");
  const parts = url.pathname.split("/").filter(Boolean);
  const json = (v: unknown) => out(JSON.stringify(v) + "\n");
  if (parts[0] !== "v1" || parts[1] !== "sprites" || parts.length > 3) {
    json({ error: "not found" });
    return 22;
  }
  if (parts.length === 2 && method === "GET") {
    const prefix = url.searchParams.get("prefix") ?? "";
    const max = Math.min(
      Math.max(Number(url.searchParams.get("max_results") ?? 50) || 50, 1),
      50,
    );
    const all = (await allSprites()).filter((m) => m.name.startsWith(prefix));
    const token = url.searchParams.get("continuation_token");
    const start = token ? Number(token) || 0 : 0;
    const page = all.slice(start, start + max);
    const more = start + max < all.length;
    json({
      sprites: page.map((m) => ({
        name: m.name,
        org_slug: m.organization,
        updated_at: m.updated_at,
      })),
      has_more: more,
      next_continuation_token: more ? String(start + max) : null,
    });
    return 0;
  }
  if (parts.length === 2 && method === "POST") {
    let req: { name?: string };
    try {
      req = JSON.parse(body);
    } catch {
      json({ error: "invalid request body" });
      return 22;
    }
    try {
      const m = await create(req.name ?? "", DEFAULT_ORG);
      json(apiObject(m));
      return 0;
    } catch (e) {
      json({ error: (e as Error).message.replace(/^Error: /, "") });
      return 22;
    }
  }
  if (parts.length === 3) {
    const m = await readMeta(parts[2]);
    if (m === null) {
      json({ error: "sprite not found" });
      return 22;
    }
    if (method === "GET") {
      json(apiObject(m));
      return 0;
    }
    if (method === "DELETE") {
      await destroy(m.name);
      return 0;
    }
  }
  json({ error: "method not allowed" });
  return 22;
}

async function main(argv: string[]): Promise<number> {
  if (ROOT === "") {
    throw new CliError("Error: FAKE_SPRITE_DIR is not set (fake sprite CLI)");
  }
  // Global flags may come before the command.
  let i = 0;
  const globals: string[] = [];
  while (i < argv.length && argv[i].startsWith("-")) {
    const a = argv[i];
    globals.push(a);
    const body = a.replace(/^--?/, "");
    if (["o", "org", "s", "sprite"].includes(body) && i + 1 < argv.length) {
      globals.push(argv[++i]);
    }
    i++;
  }
  const cmd = argv[i];
  const rest = [...globals, ...argv.slice(i + 1)];
  if (cmd === undefined || ["help", "-h", "--help"].includes(cmd)) {
    out(USAGE);
    return 0;
  }
  if (rest.includes("--help") && !["exec", "x", "api"].includes(cmd)) {
    out(USAGE);
    return 0;
  }
  switch (cmd) {
    case "create":
      return await cmdCreate(rest);
    case "list":
    case "ls":
      return await cmdList(rest);
    case "destroy":
      return await cmdDestroy(rest);
    case "exec":
    case "x":
      return await cmdExec(rest);
    case "use":
      return await cmdUse(rest);
    case "url":
      return await cmdUrl(rest);
    case "api":
      return await cmdApi(rest);
    case "console":
    case "c":
      throw new CliError(
        "Error: this fake sprite CLI has no interactive console",
      );
    default:
      throw new CliError(`Error: unknown command "${cmd}" for "sprite"`, 2);
  }
}

if (import.meta.main) {
  let code: number;
  try {
    code = await main(Deno.args);
  } catch (e) {
    if (e instanceof CliError) {
      err(e.message + "\n");
      code = e.code;
    } else {
      err(`Error: ${(e as Error).message}\n`);
      code = 1;
    }
  }
  Deno.exit(code);
}
