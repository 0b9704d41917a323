/**
 * Everything an inbox command starts, so a timeout can end all of it.
 *
 * A command runs in its own session and process group (setsid), which a
 * signal to the group reaches; a process that leaves the group (`setsid x &`)
 * escapes that. So, in addition:
 *
 * - With cgroup v2 (a `cgroup2` mount holding this process's cgroup, that
 *   this process may write), each command gets a cgroup `m-<message id>`
 *   under the daemon's own (commandCgroups), entered by its shell before
 *   it runs anything (the
 *   scheduler's held shell waits for "go"); ending it is `cgroup.kill`,
 *   which no process can leave.
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
 * The per-daemon cgroup name for a machine's home: daemons of local VMs
 * share their host's cgroup, and each sweeps only its own.
 */
export function cgroupNameFor(home: string): string {
  let h = 0x811c9dc5; // FNV-1a
  for (const b of new TextEncoder().encode(home)) {
    h = Math.imul(h ^ b, 0x01000193) >>> 0;
  }
  return `ohc-${h.toString(16).padStart(8, "0")}`;
}

const roots = new Map<string, string | null>();

/**
 * The cgroup v2 directory `<this process's cgroup>/<name>` for this
 * daemon's commands (made when missing), when cgroup v2 is mounted and this
 * process may make cgroups there; null otherwise. `name` keeps daemons that
 * share a cgroup (local VMs on one host) apart. Cached.
 */
export function commandCgroups(name: string): string | null {
  if (!roots.has(name)) roots.set(name, findCgroups(name));
  return roots.get(name)!;
}

/**
 * Removes a machine's command cgroups (local VMs: `destroy` removes what
 * the VM made). Its processes must be gone.
 */
export async function removeCommandCgroups(home: string): Promise<void> {
  const dir = findCgroups(cgroupNameFor(home), false);
  if (dir === null) return;
  for (const e of Deno.readDirSync(dir)) {
    if (e.isDirectory) await removeWhenEmpty(`${dir}/${e.name}`);
  }
  await removeWhenEmpty(dir);
}

function findCgroups(name: string, create = true): string | null {
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
      try {
        Deno.statSync(`${dir}/cgroup.procs`);
        if (create) Deno.mkdirSync(`${dir}/${name}`, { recursive: true });
        else Deno.statSync(`${dir}/${name}`);
        return `${dir}/${name}`;
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
 * in a new cgroup under `cgroups` (see commandCgroups) when given, which it
 * enters here, before it runs anything; else by its marker.
 */
export function contain(
  id: string,
  pid: number,
  cgroups: string | null,
): Containment {
  if (cgroups !== null) {
    const dir = `${cgroups}/m-${id}`;
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

/**
 * At daemon start: cgroups left by a daemon that died belong to messages
 * now marked interrupted; what still runs in them is ended, and they go.
 */
export async function sweepStaleCgroups(cgroups: string): Promise<number> {
  let n = 0;
  for (const e of Deno.readDirSync(cgroups)) {
    if (!e.isDirectory || !e.name.startsWith("m-")) continue;
    const dir = `${cgroups}/${e.name}`;
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
