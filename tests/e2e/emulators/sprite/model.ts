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
import { processesInPidNs } from "../exedev/vm.ts";
import { bareRootScript } from "../../../helpers/bare_root.ts";
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
  /**
   * Sprites hold only the OS (tests/helpers/bare_root.ts): each runs in its
   * own mount, UTS and pid namespaces, chrooted, with /home/sprite, /.sprite
   * (the management socket, service logs) and /opt/sprite (sprite-env)
   * bound in. Needs root.
   */
  bare: boolean;
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
  /** A bare sprite's namespaces while it is up (knob `bare`). */
  vm: Vm | null;
}

interface Vm {
  /** `unshare`, whose child (pid 1 inside) holds the namespaces. */
  holder: Deno.ChildProcess;
  init: number;
  ns: string;
  root: string;
}

export class LimitError extends Error {
  constructor(readonly limit: number, readonly current: number) {
    super(
      `your plan runs at most ${limit} sprites at once (${current} running)`,
    );
  }
}

const iso = () => new Date().toISOString().replace(/\.\d+Z$/, "Z");

/** Signals a process started in its own group, and the group. */
export function killGroup(child: Deno.ChildProcess, sig: Deno.Signal): void {
  try {
    Deno.kill(-child.pid, sig);
  } catch {
    try {
      child.kill(sig);
    } catch { /* gone */ }
  }
}
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
    /** What /opt/sprite holds in a bare sprite (sprite-env). */
    readonly baseDir: string,
  ) {}

  /** The sprite's home as its processes see it. */
  homeIn(s: Sprite): string {
    return this.knobs.bare ? "/home/sprite" : s.home;
  }

  /** Its /.sprite as its processes see it (socket, service logs). */
  runtimeIn(s: Sprite): string {
    return this.knobs.bare ? "/.sprite" : `${s.dir}/sprite`;
  }

  /** A path a process of the sprite asked for, as it sees it. */
  insidePath(s: Sprite, path: string): string {
    if (!this.knobs.bare) return this.mapPath(s, path);
    if (path === "~") return "/home/sprite";
    if (path.startsWith("~/")) return `/home/sprite/${path.slice(2)}`;
    if (!path.startsWith("/")) return `/home/sprite/${path}`;
    return path;
  }

  /** The live processes of the sprite. */
  procs(s: Sprite): number[] {
    if (this.knobs.bare) return s.vm ? processesInPidNs(s.vm.ns) : [];
    return processesOf(s.dir);
  }

  /**
   * Starts a process in the sprite (its own process group): a host process
   * with the sprite's environment, or, for a bare sprite, one entered into
   * its namespaces and chrooted into its root.
   */
  spawn(
    s: Sprite,
    argv: string[],
    o: {
      cwd: string;
      env: Record<string, string>;
      stdin: "piped" | "null";
      stdout: "piped" | "null";
      stderr: "piped" | "null";
    },
  ): Deno.ChildProcess {
    if (!this.knobs.bare) {
      return new Deno.Command(argv[0], {
        args: argv.slice(1),
        cwd: o.cwd,
        env: o.env,
        clearEnv: true,
        stdin: o.stdin,
        stdout: o.stdout,
        stderr: o.stderr,
        detached: true,
      }).spawn();
    }
    if (!s.vm) throw new Error(`sprite ${s.name} is not up`);
    return new Deno.Command("/usr/bin/nsenter", {
      args: [
        "-t",
        String(s.vm.init),
        "-m",
        "-u",
        "-p",
        "--",
        "/usr/sbin/chroot",
        s.vm.root,
        "/bin/sh",
        "-c",
        'cd "$1" || exit 1; shift; exec "$@"',
        "sh",
        o.cwd,
        ...argv,
      ],
      env: o.env,
      clearEnv: true,
      stdin: o.stdin,
      stdout: o.stdout,
      stderr: o.stderr,
      detached: true,
    }).spawn();
  }

  /** Boots a bare sprite's namespaces (its root persists on disk). */
  private async startVm(s: Sprite): Promise<void> {
    const root = `${s.dir}/root`;
    const ready = `${s.dir}/vm.ready`;
    await Deno.remove(ready).catch(() => {});
    const script = "set -e\n" +
      bareRootScript(root, {
        binds: [
          [s.home, "/home/sprite"],
          [`${s.dir}/sprite`, "/.sprite"],
          [this.baseDir, "/opt/sprite"],
        ],
      }) + `hostname ${s.name}\necho up > ${ready}\n` +
      // Its pid 1 in the root too: to its processes, no chroot at all
      // (systemctl, seeing one, would answer "ignoring command", 0).
      `exec /usr/sbin/chroot "$R" sleep infinity\n`;
    const holder = new Deno.Command("/usr/bin/unshare", {
      args: [
        "--mount",
        "--uts",
        "--pid",
        "--fork",
        "--kill-child",
        "--propagation",
        "private",
        "/bin/sh",
        "-c",
        script,
      ],
      env: { PATH: "/usr/sbin:/usr/bin:/sbin:/bin" },
      clearEnv: true,
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).spawn();
    const deadline = Date.now() + 30_000;
    while (!(await Deno.stat(ready).then(() => true, () => false))) {
      if (Date.now() > deadline) {
        holder.kill("SIGKILL");
        throw new Error(`sprite ${s.name}: its root did not come up`);
      }
      await sleep(20);
    }
    const init = Number(
      Deno.readTextFileSync(`/proc/${holder.pid}/task/${holder.pid}/children`)
        .trim().split(/\s+/)[0],
    );
    s.vm = {
      holder,
      init,
      ns: Deno.readLinkSync(`/proc/${init}/ns/pid`),
      root,
    };
  }

  /** Ends a bare sprite's namespaces: every process in it dies. */
  private stopVm(s: Sprite): void {
    const vm = s.vm;
    s.vm = null;
    if (!vm) return;
    signalAll(processesInPidNs(vm.ns), "SIGKILL");
    try {
      vm.holder.kill("SIGKILL");
    } catch { /* gone */ }
    void vm.holder.status;
  }

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
    await Deno.mkdir(`${dir}/sprite/logs/services`, { recursive: true });
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
      vm: null,
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
        signalAll(this.procs(s), "SIGCONT");
      } else {
        if (this.knobs.bare) await this.startVm(s);
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
      // Idle time counts from the end of a boot, however long it took.
      this.touch(s);
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
    const log = `${this.runtimeIn(s)}/logs/services/${svc.name}.log`;
    let child: Deno.ChildProcess;
    try {
      child = this.spawn(s, [
        "/bin/sh",
        "-c",
        // The runtime's log: both streams into one file.
        'exec "$@" >>"$0" 2>&1',
        log,
        svc.cmd,
        ...svc.args,
      ], {
        cwd: svc.dir ? this.insidePath(s, svc.dir) : this.homeIn(s),
        env: { ...this.baseEnv(s), ...svc.env },
        stdin: "null",
        stdout: "null",
        stderr: "null",
      });
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
    killGroup(child, "SIGTERM");
    const t = setTimeout(() => killGroup(child, "SIGKILL"), 5_000);
    void child.status.finally(() => clearTimeout(t));
  }

  /**
   * A path of the sprite on the host: /home/sprite/... is the sprite's
   * home, relative paths are under it; other paths are the host's own, or
   * under a bare sprite's root.
   */
  mapPath(s: Sprite, path: string): string {
    if (path === "/home/sprite" || path === "~") return s.home;
    if (path.startsWith("/home/sprite/")) return s.home + path.slice(12);
    if (path.startsWith("~/")) return `${s.home}/${path.slice(2)}`;
    if (!path.startsWith("/")) return `${s.home}/${path}`;
    return this.knobs.bare ? `${s.dir}/root${path}` : path;
  }

  /** Warm pause: connections drop, processes stop where they are. */
  pause(s: Sprite, outbound: (s: Sprite) => void): void {
    if (s.status !== "running") return;
    s.status = "warm";
    for (const x of [...s.sessions]) x.drop();
    outbound(s);
    signalAll(this.procs(s), "SIGSTOP");
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
    if (this.knobs.bare) this.stopVm(s);
    else signalAll(this.procs(s), "SIGKILL");
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

  /** Stops everything of the sprite (its files stay). */
  async halt(s: Sprite): Promise<void> {
    for (const x of [...s.sessions]) x.drop();
    for (const svc of s.services.values()) this.stopService(svc);
    await s.mgmt?.shutdown().catch(() => {});
    s.mgmt = null;
    for (let i = 0; i < 20; i++) {
      const left = this.procs(s);
      if (left.length === 0) break;
      signalAll(left, "SIGKILL");
      await sleep(50);
    }
    this.stopVm(s);
  }

  async destroy(s: Sprite): Promise<void> {
    this.sprites.delete(s.name);
    await this.halt(s);
    await Deno.remove(s.dir, { recursive: true }).catch(() => {});
  }
}
