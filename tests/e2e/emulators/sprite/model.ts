/**
 * The fake sprites.dev service's model: sprites, their lifecycle on the
 * vendor's terms (reference §6 "sprites.dev lifecycle"), services, task
 * holds and exec sessions.
 *
 * - A sprite is `running`, `warm` (paused: its processes are stopped with
 *   SIGSTOP and every connection into or out of it drops) or `cold` (its
 *   processes are killed). It goes warm after `idleS` without activity and
 *   cold after `coldS`, unless a task hold is live. Activity is an exec
 *   starting, bytes through an exec session, or an API call on it.
 * - An exec or API call wakes it: a warm sprite's processes continue, a
 *   cold one boots and its services start again (in `needs` order).
 * - Waking is refused with `concurrent_sprite_limit_exceeded` when the org
 *   already runs `runningLimit` sprites.
 * - Services restart when they exit on their own; `stop` is sticky.
 */
import { processesOf, signalAll } from "./procs.ts";

export interface Knobs {
  /** Seconds without activity before a sprite pauses (warm); 0: never. */
  idleS: number;
  /** Seconds without activity before it goes cold; 0: never. */
  coldS: number;
  /** Sprites an org runs at once; 0: no limit. */
  runningLimit: number;
  /** Sprites an org keeps warm; 0: no limit. */
  warmLimit: number;
  /** Creations allowed per window, and the window (seconds); 0: no limit. */
  createRate: { n: number; windowS: number };
  /** Per sprite, how many exec handshakes fail first (502). */
  failConnects: number;
  /**
   * Per sprite, how many exec sessions are cut as they open (never two in
   * a row: the retry of a reset goes through)...
   */
  dropExecs: number;
  /** ...of those whose argv (joined by spaces) matches this, if set. */
  dropMatch: string;
}

export type Status = "cold" | "warm" | "running";

export interface ServiceDef {
  name: string;
  cmd: string;
  args: string[];
  env: Record<string, string>;
  dir: string | null;
  needs: string[];
}

export interface Service extends ServiceDef {
  stopped: boolean;
  child: Deno.ChildProcess | null;
  pid: number | null;
  restartCount: number;
  startedAt: string | null;
}

/** An exec session into a sprite; `drop` ends it without an exit code. */
export interface Session {
  /** The client's TCP port (to find the sessions a paused sprite opened). */
  clientPort: number;
  /** The command's process group, once it runs. */
  pgid: number | null;
  /** Sends a text notice (`port_opened`) to the client. */
  notice(m: Record<string, unknown>): void;
  drop(): void;
}

export interface Sprite {
  id: string;
  name: string;
  org: string;
  labels: string[];
  dir: string;
  home: string;
  status: Status;
  createdAt: string;
  updatedAt: string;
  lastActivity: number;
  sessions: Set<Session>;
  services: Map<string, Service>;
  /** Task holds: name → expiry (ms since epoch). */
  tasks: Map<string, { startedAt: string; expires: number }>;
  waking: Promise<void> | null;
  connects: number;
  /** Sessions cut on purpose so far, and whether the last one was. */
  execs: number;
  lastCut: boolean;
  /** The management socket (`/.sprite/api.sock` of a real sprite). */
  mgmt: Deno.HttpServer | null;
}

export class LimitError extends Error {
  constructor(readonly limit: number, readonly current: number) {
    super(
      `your plan runs at most ${limit} sprites at once (${current} running)`,
    );
  }
}

const iso = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class Model {
  readonly sprites = new Map<string, Sprite>();
  private creations: number[] = [];

  constructor(
    readonly root: string,
    readonly knobs: Knobs,
    /** The environment every process in a sprite starts with. */
    readonly baseEnv: (s: Sprite) => Record<string, string>,
    readonly log: (m: string) => void,
  ) {}

  of(org: string): Sprite[] {
    return [...this.sprites.values()].filter((s) => s.org === org)
      .sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
  }

  /** Seconds to wait when a creation would break the rate limit, else 0. */
  rateLimited(): number {
    const { n, windowS } = this.knobs.createRate;
    if (n <= 0) return 0;
    const now = Date.now();
    this.creations = this.creations.filter((t) => now - t < windowS * 1000);
    if (this.creations.length < n) {
      this.creations.push(now);
      return 0;
    }
    return Math.max(
      1,
      Math.ceil((this.creations[0] + windowS * 1000 - now) / 1000),
    );
  }

  async create(name: string, org: string, labels: string[]): Promise<Sprite> {
    const dir = `${this.root}/sprites/${name}`;
    await Deno.mkdir(`${dir}/home`, { recursive: true });
    await Deno.mkdir(`${dir}/logs`, { recursive: true });
    const s: Sprite = {
      id: crypto.randomUUID(),
      name,
      org,
      labels,
      dir,
      home: `${dir}/home`,
      status: "cold",
      createdAt: iso(),
      updatedAt: iso(),
      lastActivity: Date.now(),
      sessions: new Set(),
      services: new Map(),
      tasks: new Map(),
      waking: null,
      connects: 0,
      execs: 0,
      lastCut: false,
      mgmt: null,
    };
    this.sprites.set(name, s);
    await this.save(s);
    return s;
  }

  /** meta.json: for people looking at a test's directory. */
  async save(s: Sprite): Promise<void> {
    s.updatedAt = iso();
    await Deno.writeTextFile(
      `${s.dir}/meta.json`,
      JSON.stringify({ name: s.name, org: s.org, status: s.status }) + "\n",
    ).catch(() => {});
  }

  touch(s: Sprite): void {
    s.lastActivity = Date.now();
  }

  /** Makes the sprite run (resuming or booting it); LimitError if it may not. */
  async wake(s: Sprite): Promise<void> {
    this.touch(s);
    if (s.status === "running") return;
    if (s.waking) return await s.waking;
    const limit = this.knobs.runningLimit;
    const running = this.of(s.org).filter((x) => x.status === "running");
    if (limit > 0 && running.length >= limit) {
      throw new LimitError(limit, running.length);
    }
    s.waking = (async () => {
      const from = s.status;
      s.status = "running";
      if (from === "warm") {
        signalAll(processesOf(s.dir), "SIGCONT");
      } else {
        for (const svc of this.bootOrder(s)) {
          if (!svc.stopped) this.startService(s, svc);
        }
      }
      this.log(`${s.name}: ${from} -> running`);
      await this.save(s);
    })();
    try {
      await s.waking;
    } finally {
      s.waking = null;
    }
  }

  private bootOrder(s: Sprite): Service[] {
    const out: Service[] = [];
    const seen = new Set<string>();
    const visit = (svc: Service) => {
      if (seen.has(svc.name)) return;
      seen.add(svc.name);
      for (const n of svc.needs) {
        const dep = s.services.get(n);
        if (dep) visit(dep);
      }
      out.push(svc);
    };
    for (const svc of s.services.values()) visit(svc);
    return out;
  }

  startService(s: Sprite, svc: Service): void {
    if (svc.child) return;
    const log = `${s.dir}/logs/${svc.name}.log`;
    let child: Deno.ChildProcess;
    try {
      const f = Deno.openSync(log, { append: true, create: true });
      f.close();
      child = new Deno.Command("/bin/sh", {
        // The runtime's log: both streams into one file.
        args: ["-c", 'exec "$@" >>"$0" 2>&1', log, svc.cmd, ...svc.args],
        cwd: svc.dir ? this.mapPath(s, svc.dir) : s.home,
        env: { ...this.baseEnv(s), ...svc.env },
        clearEnv: true,
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
    } catch (e) {
      this.log(`${s.name}: service ${svc.name} cannot start: ${e}`);
      return;
    }
    svc.child = child;
    svc.pid = child.pid;
    svc.startedAt = iso();
    void child.status.then(async (st) => {
      if (svc.child !== child) return;
      svc.child = null;
      svc.pid = null;
      this.log(
        `${s.name}: service ${svc.name} exited (${st.signal ?? st.code})`,
      );
      // Crashed while the sprite runs: the runtime brings it back.
      await sleep(500);
      if (
        s.status === "running" && !svc.stopped &&
        this.sprites.get(s.name) === s && s.services.get(svc.name) === svc
      ) {
        svc.restartCount++;
        this.startService(s, svc);
      }
    });
  }

  stopService(svc: Service): void {
    svc.stopped = true;
    const child = svc.child;
    svc.child = null;
    svc.pid = null;
    if (!child) return;
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    const t = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }, 5_000);
    void child.status.finally(() => clearTimeout(t));
  }

  /** /home/sprite/... is the sprite's home; relative paths are under it. */
  mapPath(s: Sprite, path: string): string {
    if (path === "/home/sprite" || path === "~") return s.home;
    if (path.startsWith("/home/sprite/")) return s.home + path.slice(12);
    if (path.startsWith("~/")) return `${s.home}/${path.slice(2)}`;
    if (!path.startsWith("/")) return `${s.home}/${path}`;
    return path;
  }

  /** Warm pause: connections drop, processes stop where they are. */
  pause(s: Sprite, outbound: (s: Sprite) => void): void {
    if (s.status !== "running") return;
    s.status = "warm";
    for (const x of [...s.sessions]) x.drop();
    outbound(s);
    signalAll(processesOf(s.dir), "SIGSTOP");
    this.log(`${s.name}: running -> warm`);
    void this.save(s);
  }

  /** Cold: every process is gone; services come back at the next boot. */
  freeze(s: Sprite, outbound: (s: Sprite) => void): void {
    if (s.status === "cold") return;
    for (const x of [...s.sessions]) x.drop();
    if (s.status === "running") outbound(s);
    s.status = "cold";
    for (const svc of s.services.values()) {
      svc.child = null;
      svc.pid = null;
    }
    signalAll(processesOf(s.dir), "SIGKILL");
    this.log(`${s.name}: -> cold`);
    void this.save(s);
  }

  /** One step of the idle clock. */
  tick(outbound: (s: Sprite) => void): void {
    const now = Date.now();
    const { idleS, coldS, warmLimit } = this.knobs;
    for (const s of this.sprites.values()) {
      for (const [k, t] of s.tasks) {
        if (t.expires > now) continue;
        s.tasks.delete(k);
        s.lastActivity = Math.max(s.lastActivity, t.expires);
      }
      if (s.tasks.size > 0 || s.waking) continue;
      const idle = now - s.lastActivity;
      if (s.status === "running" && idleS > 0 && idle >= idleS * 1000) {
        this.pause(s, outbound);
      }
      if (s.status === "warm" && coldS > 0 && idle >= coldS * 1000) {
        this.freeze(s, outbound);
      }
    }
    if (warmLimit > 0) {
      const orgs = new Set([...this.sprites.values()].map((s) => s.org));
      for (const org of orgs) {
        const warm = this.of(org).filter((s) => s.status === "warm")
          .sort((a, b) => a.lastActivity - b.lastActivity);
        while (warm.length > warmLimit) this.freeze(warm.shift()!, outbound);
      }
    }
  }

  async destroy(s: Sprite): Promise<void> {
    this.sprites.delete(s.name);
    for (const x of [...s.sessions]) x.drop();
    for (const svc of s.services.values()) this.stopService(svc);
    await s.mgmt?.shutdown().catch(() => {});
    for (let i = 0; i < 20; i++) {
      const left = processesOf(s.dir);
      if (left.length === 0) break;
      signalAll(left, "SIGKILL");
      await sleep(50);
    }
    await Deno.remove(s.dir, { recursive: true }).catch(() => {});
  }
}
