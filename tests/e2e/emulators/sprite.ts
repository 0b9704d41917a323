/**
 * The fake sprites.dev (sprite/server.ts) for tests: its HTTP API on
 * loopback, a CLI login for a user's HOME, and a look at its sprites.
 * Needs no root.
 *
 * ```ts
 * const sprites = await startFakeSprites({ dir: `${tmp}/sprites`, idleS: 5 });
 * await sprites.login(laptopHome);       // as `sprite login` would
 * // … ohcommodore init --provider sprites …
 * await sprites.stop();                  // kills every sprite's processes
 * ```
 *
 * Inside a sprite, PATH holds only the base image's tools: `sprite-env`
 * and the host's system tools (by symlink), never a `sprite` CLI; HOME is
 * the sprite's own; nothing else of the host's environment goes in. The
 * dev artifact still runs there because it names the host's deno and this
 * checkout by absolute path (a real sprite has Deno installed, but not our
 * checkout). With `bare`, a sprite holds only the OS, and only the
 * standalone artifact (which carries everything) runs there.
 */

import { processesOf, signalAll } from "./sprite/procs.ts";
import { processesMentioning } from "./exedev/vm.ts";

const HERE = new URL("./sprite", import.meta.url).pathname;

export interface FakeSpritesOptions {
  dir: string;
  /** The org `login` and `token()` use. Default "test-org". */
  org?: string;
  idleS?: number;
  coldS?: number;
  runningLimit?: number;
  warmLimit?: number;
  /** Creations per window: `{n: 2, windowS: 3}`. */
  createRate?: { n: number; windowS: number };
  /** Per sprite, the first n exec handshakes fail (502). */
  failConnects?: number;
  /** Per sprite, the first n exec sessions (matching dropMatch) are cut. */
  dropExecs?: number;
  /** A regular expression on the command line (words joined by spaces). */
  dropMatch?: string;
  /**
   * Sprites that hold only the OS (tests/helpers/bare_root.ts; needs root:
   * see bareRootSkipReason): the dev artifact cannot run there, the
   * standalone artifact can.
   */
  bare?: boolean;
}

export interface FakeSpriteState {
  name: string;
  organization: string;
  status: "cold" | "warm" | "running";
  tasks: string[];
  sessions: number;
  services: {
    name: string;
    state: { status: string; pid?: number; restart_count: number };
  }[];
}

export interface FakeSprites {
  dir: string;
  url: string;
  org: string;
  /** A valid token for `org` (default: this fake's org). */
  token(org?: string): string;
  /**
   * Writes the `sprite` CLI's login into `home` (~/.sprites/sprites.json,
   * keyring disabled, the tokens in the file) for these orgs (default: this
   * fake's), selecting this API and the first.
   */
  login(home: string, orgs?: string[]): Promise<void>;
  /** Host path standing in for /home/sprite of sprite `name`. */
  home(name: string): string;
  /** Names of the existing sprites (all orgs). */
  list(): Promise<string[]>;
  /** Every sprite's state; asking does not count as activity. */
  state(): Promise<FakeSpriteState[]>;
  /** Makes a sprite cold at once, as if its host failed. */
  freeze(name: string): Promise<void>;
  /** The pids of the sprite's live processes, as the fake sees them. */
  processes(name: string): Promise<number[]>;
  /** Changes the service's terms (e.g. `{ runningLimit: 3 }`). */
  knobs(k: Partial<Omit<FakeSpritesOptions, "dir" | "org">>): Promise<void>;
  /** The server's log (transitions, failures). */
  log(): Promise<string>;
  stop(): Promise<void>;
}

/**
 * The base image: `sprite-env` (over the sprite's management socket) and,
 * for a sprite that is not bare, the host's system tools by symlink (no
 * `sprite` among them: that CLI is never inside a sprite). A bare sprite
 * sees this directory at /opt/sprite and the OS's own /usr/bin.
 */
async function baseDir(dir: string, bare: boolean): Promise<string> {
  const base = `${dir}/base`;
  const bin = `${base}/bin`;
  await Deno.mkdir(bin, { recursive: true });
  await Deno.copyFile(`${HERE}/sprite_env.py`, `${base}/sprite_env.py`);
  const script = bare ? "/opt/sprite/sprite_env.py" : `${base}/sprite_env.py`;
  await Deno.writeTextFile(
    `${bin}/sprite-env`,
    `#!/bin/sh\nexec python3 '${script}' "$@"\n`,
    { mode: 0o755 },
  );
  await Deno.chmod(`${bin}/sprite-env`, 0o755);
  if (bare) return base;
  const seen = new Set(["sprite-env", "sprite"]);
  for (
    const d of ["/usr/local/bin", "/usr/bin", "/bin", "/usr/sbin", "/sbin"]
  ) {
    try {
      for await (const e of Deno.readDir(d)) {
        if (seen.has(e.name) || e.isDirectory) continue;
        seen.add(e.name);
        await Deno.symlink(`${d}/${e.name}`, `${bin}/${e.name}`);
      }
    } catch { /* no such dir */ }
  }
  return base;
}

export async function startFakeSprites(
  o: FakeSpritesOptions,
): Promise<FakeSprites> {
  const dir = o.dir.replace(/\/+$/, "");
  const org = o.org ?? "test-org";
  await Deno.mkdir(`${dir}/sprites`, { recursive: true });
  const secret = crypto.randomUUID().replaceAll("-", "");
  const base = await baseDir(dir, o.bare ?? false);
  const n = (v: number | undefined) => String(v ?? 0);
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      "--quiet",
      "--no-config",
      "--no-lock",
      `${HERE}/server.ts`,
    ],
    env: {
      PATH: "/usr/bin:/bin",
      FAKE_SPRITE_DIR: dir,
      FAKE_SPRITE_SECRET: secret,
      FAKE_SPRITE_BASE_DIR: base,
      FAKE_SPRITE_BASE_PATH: `${base}/bin`,
      FAKE_SPRITE_BARE: o.bare ? "1" : "",
      FAKE_SPRITE_IDLE_S: n(o.idleS),
      FAKE_SPRITE_COLD_S: n(o.coldS),
      FAKE_SPRITE_RUNNING_LIMIT: n(o.runningLimit),
      FAKE_SPRITE_WARM_LIMIT: n(o.warmLimit),
      FAKE_SPRITE_CREATE_RATE: o.createRate
        ? `${o.createRate.n}/${o.createRate.windowS}`
        : "",
      FAKE_SPRITE_FAIL_CONNECTS: n(o.failConnects),
      FAKE_SPRITE_DROP_EXECS: n(o.dropExecs),
      FAKE_SPRITE_DROP_MATCH: o.dropMatch ?? "",
    },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let first = "";
  while (!first.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("the fake sprites server did not start");
    first += value;
  }
  await reader.cancel().catch(() => {});
  const url: string = JSON.parse(first.split("\n")[0]).url;
  const token = (x = org) => `${x}/org-${x}/tok-1/${secret}`;
  return {
    dir,
    url,
    org,
    token,
    async login(home, orgs = [org]) {
      await Deno.mkdir(`${home}/.sprites`, { recursive: true, mode: 0o700 });
      const entries = Object.fromEntries(orgs.map((x) => [x, {
        name: x,
        api_token: token(x),
        use_keyring: false,
        sprites: {},
      }]));
      await Deno.writeTextFile(
        `${home}/.sprites/sprites.json`,
        JSON.stringify(
          {
            version: "1",
            current_selection: { url, org: orgs[0] },
            urls: { [url]: { url, orgs: entries } },
          },
          null,
          2,
        ) + "\n",
        { mode: 0o600 },
      );
    },
    home: (name) => `${dir}/sprites/${name}/home`,
    async list() {
      const names: string[] = [];
      for await (const e of Deno.readDir(`${dir}/sprites`)) {
        if (e.isDirectory) names.push(e.name);
      }
      return names.sort();
    },
    async state() {
      const r = await fetch(`${url}/_fake/sprites`);
      return await r.json() as FakeSpriteState[];
    },
    async processes(name) {
      const r = await fetch(`${url}/_fake/sprites/${name}/processes`);
      if (!r.ok) throw new Error(`processes: ${await r.text()}`);
      return await r.json() as number[];
    },
    async freeze(name) {
      const r = await fetch(`${url}/_fake/sprites/${name}/freeze`, {
        method: "POST",
      });
      if (!r.ok) throw new Error(`freeze: ${await r.text()}`);
      await r.body?.cancel();
    },
    async knobs(k) {
      const r = await fetch(`${url}/_fake/knobs`, {
        method: "PUT",
        body: JSON.stringify(k),
      });
      if (!r.ok) throw new Error(`knobs: ${await r.text()}`);
      await r.body?.cancel();
    },
    async log() {
      return await Deno.readTextFile(`${dir}/server.log`).catch(() => "");
    },
    async stop() {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      // Anything left (a process the server did not start) goes too.
      // A bare sprite's holder names its root; its end ends the sprite.
      signalAll(processesMentioning(`${dir}/sprites/`), "SIGKILL");
      for await (const e of Deno.readDir(`${dir}/sprites`)) {
        signalAll(processesOf(`${dir}/sprites/${e.name}`), "SIGKILL");
      }
    },
  };
}
