/**
 * Starting, stopping and supervising the daemon. Where systemd runs, a user
 * unit with Restart=always does the supervising. On a sprite the daemon is a
 * sprite service: the runtime starts it at boot, restarts it when it dies
 * and after a cold wake (which kills whatever `sprite exec` started), and
 * `stop` is sticky. Elsewhere (containers, local VMs) `daemon supervise`,
 * started in its own session, writes a pidfile, runs `daemon run` and
 * restarts it when it dies.
 */
import { compiledSelf } from "../compiled.ts";
import { OhcError } from "../errors.ts";
import { type Env, knob, knobOn } from "../knobs.ts";
import { withLock } from "../state/atomic.ts";
import { paths } from "../state/paths.ts";
import {
  onSprite,
  serviceState,
  spriteEnvRun,
} from "../providers/sprites_runtime.ts";
import {
  type PidRecord,
  readPidfile,
  stillOurs,
  writePidfile,
} from "./pidfile.ts";
import { connectDaemon } from "./socket.ts";
import { sleep } from "../sleep.ts";

/** The program to run for the daemon: this same ohcommodore. */
export function selfBinary(
  home: string,
  build: { standalone?: boolean } = Deno.build,
  env?: Env,
): string {
  const set = knob("OHCOMMODORE_BINARY", env);
  if (set) return set;
  return compiledSelf(build) ?? paths.bin(home);
}

export interface DaemonState {
  running: boolean;
  answering: boolean;
  pid: number | null;
  supervisor: "systemd" | "sprite" | "pidfile" | null;
  socket: string;
  log: string;
}

/**
 * The supervisor the pidfile names, if it still runs. After a reboot (a
 * sprite's cold wake) the pid may belong to some other process now, which
 * ensureDaemon would wait on and stopDaemon would kill (pidfile.ts).
 */
async function readPid(home: string): Promise<PidRecord | null> {
  const rec = await readPidfile(paths.daemonPid(home));
  return rec && (await stillOurs(rec)) ? rec : null;
}

async function answering(home: string): Promise<boolean> {
  const c = await connectDaemon(home);
  if (!c) return false;
  c.close();
  return true;
}

export async function daemonState(home: string): Promise<DaemonState> {
  const service = await spriteService();
  let pid = (await readPid(home))?.pid ?? null;
  const ok = await answering(home);
  if (service?.status === "running") pid = service.pid ?? null;
  return {
    running: pid !== null || ok,
    answering: ok,
    pid,
    supervisor: service?.status === "running"
      ? "sprite"
      : pid !== null
      ? "pidfile"
      : (await systemdUnitActive())
      ? "systemd"
      : null,
    socket: paths.daemonSocket(home),
    log: paths.daemonLog(home),
  };
}

/**
 * Polls cond every 10 ms. A check is a connect to a Unix socket or a
 * signal 0, some microseconds; a longer step only adds its own wait to
 * every daemon start (up to 200 ms, which every ship create paid).
 */
async function waitFor(
  cond: () => Promise<boolean>,
  timeoutMs: number,
): Promise<boolean> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await cond()) return true;
    await sleep(10);
  }
  return await cond();
}

const stoppedMarker = (home: string) => `${paths.runDir(home)}/stopped`;

/**
 * Starts the daemon unless it already answers; waits until it does.
 * `remote`: the request came from another machine (a link, an RPC); then a
 * daemon the user stopped with `daemon stop` stays stopped.
 */
export async function ensureDaemon(
  home: string,
  opts: { remote?: boolean } = {},
): Promise<DaemonState> {
  if (await answering(home)) return await daemonState(home);
  // One starter at a time: two commands (or a command and a link) finding
  // no daemon at once would otherwise each start a supervisor, and the
  // pidfile would name only the last, so 'daemon stop' missed the other.
  await withLock(`${paths.runDir(home)}/start`, async () => {
    if (await answering(home)) return;
    // A sprite's runtime starts its services in its own time (after a
    // cold boot, all of them): give it longer than our own supervisor, and
    // hold the sprite meanwhile (whoever waits on it hears nothing).
    const how = await startSupervised(home, opts);
    const withinS = how === "sprite" ? 60 : 15;
    const up = () => waitFor(() => answering(home), withinS * 1000);
    const hold = how === "sprite"
      ? new (await import("../providers/sprites_runtime.ts")).SpriteHold(
        `ohcommodore-start-${Deno.pid}`,
        { expireS: 90 },
      )
      : null;
    if (!(await (hold ? hold.during(up) : up()))) {
      throw new OhcError(
        "daemon_start",
        `the daemon did not come up within ${withinS} s`,
        `see ${paths.daemonLog(home)}`,
      );
    }
  });
  return await daemonState(home);
}

/**
 * This machine as errors that travel to the laptop name it, and how a
 * person runs a command there.
 */
export async function thisMachine(
  home: string,
): Promise<{ label: string; run: (cmd: string) => string }> {
  const { readIdentity } = await import("../state/identity.ts");
  const id = await readIdentity(home).catch(() => null);
  if (id?.role === "captain") {
    return {
      label: `ship "${id.name}"`,
      run: (cmd) => `ohcommodore ship exec ${id.name} -- ohcommodore ${cmd}`,
    };
  }
  if (id?.role === "commodore") {
    const there = id.provider.kind === "local"
      ? (cmd: string) => `HOME=${home} ohcommodore ${cmd}`
      : (cmd: string) =>
        `ohcommodore ${cmd}, on the flagship (ssh ${id.ssh_dest ?? id.name})`;
    return { label: `the flagship "${id.name}"`, run: there };
  }
  return { label: "this machine", run: (cmd) => `ohcommodore ${cmd}` };
}

/**
 * Starts the supervisor (or the systemd unit, or the sprite service),
 * unless the user stopped it; which one.
 */
async function startSupervised(
  home: string,
  opts: { remote?: boolean },
): Promise<"systemd" | "sprite" | "pidfile"> {
  try {
    await Deno.stat(stoppedMarker(home));
    if (opts.remote) {
      const m = await thisMachine(home);
      throw new OhcError(
        "daemon_stopped",
        `the daemon on ${m.label} was stopped with 'ohcommodore daemon stop'`,
        `start it again: ${m.run("daemon start")}`,
      );
    }
    await Deno.remove(stoppedMarker(home));
  } catch (e) {
    if (e instanceof OhcError) throw e;
  }
  if (await useSystemd(home)) {
    await systemctl(["start", UNIT]);
    return "systemd";
  }
  if (await startSpriteService(home)) return "sprite";
  if ((await readPid(home)) === null) {
    // setsid -f: its own session, so it outlives this command and the
    // SSH connection; stdio to the log so nobody waits on its output.
    const r = await new Deno.Command("sh", {
      args: [
        "-c",
        'exec setsid -f "$1" daemon supervise >>"$2" 2>&1 </dev/null',
        "sh",
        selfBinary(home),
        paths.daemonLog(home),
      ],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!r.success) {
      throw new OhcError(
        "daemon_start",
        `cannot start the daemon: ${new TextDecoder().decode(r.stderr).trim()}`,
      );
    }
  }
  return "pidfile";
}

export async function stopDaemon(home: string): Promise<boolean> {
  await Deno.mkdir(paths.runDir(home), { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(
    stoppedMarker(home),
    new Date().toISOString() + "\n",
  );
  if (await systemdUnitActive()) {
    await systemctl(["stop", UNIT]);
    return true;
  }
  if ((await spriteService())?.status === "running") {
    await spriteEnvRun(["services", "stop", SERVICE]);
    await waitFor(async () => !(await answering(home)), 10_000);
    return true;
  }
  const rec = await readPid(home);
  if (rec === null) return false;
  try {
    Deno.kill(rec.pid, "SIGTERM"); // the supervisor stops its daemon, then itself
  } catch { /* gone */ }
  const gone = async () => !(await stillOurs(rec));
  // Its group goes only while the pid is still the supervisor's.
  if (!(await waitFor(gone, 10_000)) && !(await gone())) {
    try {
      Deno.kill(-rec.pid, "SIGKILL");
    } catch { /* gone */ }
  }
  await waitFor(async () => !(await answering(home)), 5_000);
  return true;
}

/**
 * `daemon supervise`: runs `daemon run` and restarts it when it dies, with
 * backoff; stops it on SIGTERM. Exits when the machine loses its identity
 * (the VM was destroyed under it).
 */
export async function supervise(home: string): Promise<number> {
  await Deno.mkdir(paths.runDir(home), { recursive: true, mode: 0o700 });
  await writePidfile(paths.daemonPid(home));
  let child: Deno.ChildProcess | null = null;
  let stopping = false;
  const stop = () => {
    stopping = true;
    try {
      child?.kill("SIGTERM");
    } catch { /* gone */ }
  };
  Deno.addSignalListener("SIGTERM", stop);
  Deno.addSignalListener("SIGINT", stop);
  let backoff = 250;
  while (!stopping) {
    try {
      await Deno.stat(paths.identity(home));
    } catch {
      break; // this machine is gone
    }
    const started = Date.now();
    child = new Deno.Command(selfBinary(home), {
      args: ["daemon", "run"],
      stdin: "null",
    }).spawn();
    const status = await child.status;
    child = null;
    if (stopping) break;
    log(
      `daemon exited (${status.signal ?? `code ${status.code}`}); restarting`,
    );
    if (Date.now() - started > 30_000) backoff = 250;
    await sleep(backoff);
    backoff = Math.min(backoff * 2, 5_000);
  }
  await Deno.remove(paths.daemonPid(home)).catch(() => {});
  return 0;
}

function log(msg: string) {
  console.error(`${new Date().toISOString()} supervise: ${msg}`);
}

// The sprite service, where a sprite runtime is (sprites_runtime.ts).
const SERVICE = "ohcommodore";

async function spriteService(): Promise<
  { status: string; pid?: number } | null
> {
  if (!(await onSprite())) return null;
  return await serviceState(SERVICE);
}

/**
 * Makes the daemon a sprite service (or starts the one there is); false
 * when this is no sprite. Its output goes to the daemon's log, as the
 * supervisor's does.
 */
async function startSpriteService(home: string): Promise<boolean> {
  if (!(await onSprite())) return false;
  const bin = selfBinary(home);
  const logFile = paths.daemonLog(home);
  if (bin.includes(",") || logFile.includes(",")) return false; // --args splits on commas
  const created = await spriteEnvRun([
    "services",
    "create",
    SERVICE,
    "--cmd",
    "/bin/sh",
    "--args",
    ["-c", 'exec "$0" daemon run >>"$1" 2>&1', bin, logFile].join(","),
    "--no-stream",
  ]);
  if (created.code === 0) return true;
  const started = await spriteEnvRun(["services", "start", SERVICE]);
  if (started.code !== 0) {
    throw new OhcError(
      "daemon_start",
      `cannot start the daemon's sprite service: ${
        (started.stderr || created.stderr).trim().split("\n")[0]
      }`,
    );
  }
  return true;
}

// systemd user units, where a user manager runs.
const UNIT = "ohcommodore.service";

async function systemctl(
  args: string[],
  env: Env = (k) => Deno.env.get(k),
): Promise<boolean> {
  try {
    // Found on the given environment's PATH.
    const path = env("PATH");
    const r = await new Deno.Command("systemctl", {
      args: ["--user", ...args],
      ...(path !== undefined ? { env: { PATH: path } } : {}),
      stdout: "null",
      stderr: "null",
    }).output();
    return r.success;
  } catch {
    return false;
  }
}

/**
 * Installs and enables the user unit for `home`'s daemon where a user
 * manager runs; false where none does (or OHCOMMODORE_NO_SYSTEMD is set).
 */
export async function useSystemd(
  home: string,
  env: Env = (k) => Deno.env.get(k),
): Promise<boolean> {
  if (knobOn("OHCOMMODORE_NO_SYSTEMD", env)) return false;
  if (!(await systemctl(["show-environment"], env))) return false;
  const dir = paths.systemdUserDir(home);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/${UNIT}`,
    `[Unit]
Description=ohcommodore daemon (inbox, scheduler, ship links)

[Service]
ExecStart=${selfBinary(home, Deno.build, env)} daemon run
Restart=always
RestartSec=1

[Install]
WantedBy=default.target
`,
  );
  await systemctl(["daemon-reload"], env);
  await systemctl(["enable", UNIT], env);
  return true;
}

async function systemdUnitActive(): Promise<boolean> {
  if (knobOn("OHCOMMODORE_NO_SYSTEMD")) return false;
  return await systemctl(["is-active", "--quiet", UNIT]);
}
