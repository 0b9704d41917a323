/**
 * Everything an inbox command starts, so a timeout can end all of it.
 *
 * A command runs in its own session and process group (setsid), which a
 * signal to the group reaches; a process that leaves the group (`setsid x &`)
 * escapes that. So, in addition:
 *
 * - With cgroup v2 (a `cgroup2` mount holding this process's cgroup, that
 *   this process may write), each command gets its own cgroup beside the
 *   daemon, `ohc-<machine>-<message id>` (CommandCgroups), entered by its
 *   shell before it runs anything (the scheduler's held shell waits for
 *   "go"); ending it is `cgroup.kill`, which no process can leave, and the
 *   cgroup goes when the command ends.
 * - Else, every process still carrying the message's marker in its
 *   environment (`OHC_MESSAGE_ID=<id>`, which children inherit) is found in
 *   /proc and killed, a few rounds so that one forked meanwhile goes too.
 *   A process that clears its environment and leaves its group escapes
 *   this; the scheduler then stops reading its output after a grace, so the
 *   inbox still moves on.
 */

/** What holds one command's processes. */
export interface Containment {
  /** Kills every process of the command with `sig` (a timeout). */
  kill(sig: Deno.Signal): void;
  /**
   * The command's shell ended: what is left of its group (and cgroup) is
   * killed, and its cgroup removed once empty. Cheap: no /proc scan.
   */
  end(): void;
}

/**
 * Where this daemon makes its commands' cgroups: `dir` (its own cgroup),
 * names starting with `prefix`. Daemons that share a cgroup (local VMs on
 * one host, emulated VMs) have different prefixes, so each sweeps only its
 * own.
 */
export interface CommandCgroups {
  dir: string;
  prefix: string;
}

/**
 * The prefix for a machine: its host name and home, hashed (local VMs share
 * a host name, emulated VMs a home path).
 */
export function cgroupPrefixFor(home: string): string {
  let host = "";
  try {
    host = Deno.hostname();
  } catch { /* no sys permission: the home alone */ }
  let h = 0x811c9dc5; // FNV-1a
  for (const b of new TextEncoder().encode(`${host}\0${home}`)) {
    h = Math.imul(h ^ b, 0x01000193) >>> 0;
  }
  return `ohc-${h.toString(16).padStart(8, "0")}-`;
}

const found = new Map<string, CommandCgroups | null>();

/**
 * Command cgroups for the machine whose home is `home`, when cgroup v2 is
 * mounted and this process may make cgroups beside itself (tried once,
 * with a probe made and removed); null otherwise. Cached.
 */
export function commandCgroups(home: string): CommandCgroups | null {
  if (!found.has(home)) found.set(home, findCgroups(cgroupPrefixFor(home)));
  return found.get(home)!;
}

/**
 * Ends and removes what a machine's commands left in cgroups (local VMs:
 * `destroy` removes what the VM made; a daemon starting after a crash).
 */
export async function sweepCommandCgroups(
  cg: CommandCgroups | null,
): Promise<number> {
  if (cg === null) return 0;
  let n = 0;
  for (const e of Deno.readDirSync(cg.dir)) {
    if (!e.isDirectory || !e.name.startsWith(cg.prefix)) continue;
    const dir = `${cg.dir}/${e.name}`;
    try {
      Deno.writeTextFileSync(`${dir}/cgroup.kill`, "1");
    } catch {
      for (const p of cgroupPids(dir)) signalPid(p, "SIGKILL");
    }
    await removeWhenEmpty(dir);
    n++;
  }
  return n;
}

function findCgroups(prefix: string): CommandCgroups | null {
  try {
    const line = Deno.readTextFileSync("/proc/self/cgroup").split("\n")
      .find((l) => l.startsWith("0::"));
    if (!line) return null;
    const path = line.slice(3).trim();
    // The cgroup2 mounts: field 5 is the mount point, after " - " the type.
    for (const l of Deno.readTextFileSync("/proc/self/mountinfo").split("\n")) {
      const [pre, post] = l.split(" - ");
      if (!post?.startsWith("cgroup2 ")) continue;
      const mount = unescapeMount(pre.split(" ")[4]);
      const dir = `${mount}${path === "/" ? "" : path}`;
      const probe = `${dir}/${prefix}probe-${Deno.pid}`;
      try {
        Deno.statSync(`${dir}/cgroup.procs`);
        Deno.mkdirSync(probe);
        Deno.removeSync(probe);
        return { dir, prefix };
      } catch {
        continue;
      }
    }
  } catch {
    // No /proc (macOS) or unreadable: no cgroups.
  }
  return null;
}

function unescapeMount(s: string): string {
  return s.replace(
    /\\([0-7]{3})/g,
    (_, o) => String.fromCharCode(parseInt(o, 8)),
  );
}

/**
 * Contains the held shell `pid` (its own process group) of message `id`:
 * in a new cgroup (see commandCgroups) when given, which it enters here,
 * before it runs anything; else by its marker.
 */
export function contain(
  id: string,
  pid: number,
  cgroups: CommandCgroups | null,
): Containment {
  if (cgroups !== null) {
    const dir = `${cgroups.dir}/${cgroups.prefix}${id}`;
    try {
      Deno.mkdirSync(dir);
      try {
        Deno.writeTextFileSync(`${dir}/cgroup.procs`, `${pid}\n`);
        return cgroupContainment(dir, pid);
      } catch {
        Deno.removeSync(dir);
      }
    } catch {
      // Fall back to the marker.
    }
  }
  return markerContainment(id, pid);
}

function killGroup(pid: number, sig: Deno.Signal) {
  try {
    Deno.kill(-pid, sig);
  } catch { /* the group is gone */ }
}

function cgroupContainment(dir: string, pid: number): Containment {
  return {
    kill(sig) {
      killGroup(pid, sig);
      if (sig !== "SIGKILL") {
        for (const p of cgroupPids(dir)) signalPid(p, sig);
        return;
      }
      try {
        Deno.writeTextFileSync(`${dir}/cgroup.kill`, "1");
      } catch {
        // Before Linux 5.14: kill what is there, a few rounds.
        for (let i = 0; i < 5; i++) {
          const pids = cgroupPids(dir);
          if (pids.length === 0) break;
          for (const p of pids) signalPid(p, "SIGKILL");
        }
      }
    },
    end() {
      killGroup(pid, "SIGKILL");
      try {
        Deno.writeTextFileSync(`${dir}/cgroup.kill`, "1");
      } catch { /* before 5.14, or gone */ }
      void removeWhenEmpty(dir);
    },
  };
}

function markerContainment(id: string, pid: number): Containment {
  return {
    kill(sig) {
      killGroup(pid, sig);
      // Rounds: a process forked while we looked is found the next time.
      for (let i = 0; i < (sig === "SIGKILL" ? 5 : 1); i++) {
        const found = marked(id);
        if (found.length === 0) break;
        for (const p of found) signalPid(p, sig);
      }
    },
    end() {
      killGroup(pid, "SIGKILL");
    },
  };
}

function signalPid(pid: number, sig: Deno.Signal) {
  try {
    Deno.kill(pid, sig);
  } catch { /* gone */ }
}

function cgroupPids(dir: string): number[] {
  try {
    return Deno.readTextFileSync(`${dir}/cgroup.procs`).split("\n")
      .filter((l) => l).map(Number);
  } catch {
    return [];
  }
}

/** Pids of the processes whose environment holds OHC_MESSAGE_ID=<id>. */
export function marked(id: string): number[] {
  const want = new TextEncoder().encode(`\0OHC_MESSAGE_ID=${id}\0`);
  const out: number[] = [];
  let entries: Iterable<Deno.DirEntry>;
  try {
    entries = Deno.readDirSync("/proc");
  } catch {
    return out;
  }
  for (const e of entries) {
    if (!/^\d+$/.test(e.name)) continue;
    const pid = Number(e.name);
    if (pid === Deno.pid) continue;
    let env: Uint8Array;
    try {
      env = Deno.readFileSync(`/proc/${pid}/environ`);
    } catch {
      continue; // gone, or not ours to read
    }
    if (holds(env, want)) out.push(pid);
  }
  return out;
}

/** Whether `env` (NUL-separated) holds the entry `want` (NUL on both sides). */
function holds(env: Uint8Array, want: Uint8Array): boolean {
  // The first entry has no NUL before it.
  if (startsWith(env, want.subarray(1))) return true;
  outer: for (let i = 0; i + want.length <= env.length; i++) {
    if (env[i] !== 0) continue;
    for (let j = 1; j < want.length; j++) {
      if (env[i + j] !== want[j]) continue outer;
    }
    return true;
  }
  return false;
}

function startsWith(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length < b.length) return false;
  for (let i = 0; i < b.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** rmdir once `populated 0` (killed processes take a moment to go). */
async function removeWhenEmpty(dir: string): Promise<void> {
  for (let i = 0; i < 100; i++) {
    try {
      Deno.removeSync(dir);
      return;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return;
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}
