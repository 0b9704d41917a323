/**
 * Which host processes make up a fake sprite, and which TCP connections
 * they hold (Linux /proc). A process belongs to the sprite whose directory
 * its FAKE_SPRITE_SANDBOX marker, its HOME or its cwd names, so daemons
 * that start a new session, or clear their environment but keep HOME, are
 * still found (as the local provider finds a local VM's processes).
 */

export const MARKER = "FAKE_SPRITE_SANDBOX";

function pids(): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (/^\d+$/.test(e.name) && Number(e.name) !== Deno.pid) {
      out.push(Number(e.name));
    }
  }
  return out;
}

function state(pid: number): string | null {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return null;
  }
}

/** Pids of the live processes inside `dir` (a sprite's directory). */
export function processesOf(dir: string): number[] {
  const inside = (p: string) => p === dir || p.startsWith(`${dir}/`);
  const out: number[] = [];
  for (const pid of pids()) {
    const st = state(pid);
    if (st === null || st === "Z" || st === "X") continue;
    let hit = false;
    try {
      for (
        const kv of Deno.readTextFileSync(`/proc/${pid}/environ`).split("\0")
      ) {
        if (
          kv === `${MARKER}=${dir}` ||
          (kv.startsWith("HOME=") && inside(kv.slice(5)))
        ) {
          hit = true;
          break;
        }
      }
      if (!hit) hit = inside(Deno.readLinkSync(`/proc/${pid}/cwd`));
    } catch { /* gone, or not ours to read */ }
    if (hit) out.push(pid);
  }
  return out;
}

export function signalAll(list: number[], sig: Deno.Signal): void {
  for (const pid of list) {
    try {
      Deno.kill(pid, sig);
    } catch { /* gone */ }
  }
}

/** Whether any of these processes is still alive (not a zombie). */
export function anyAlive(list: number[]): boolean {
  return list.some((pid) => {
    const st = state(pid);
    return st !== null && st !== "Z" && st !== "X";
  });
}

/** The socket inodes these processes hold. */
export function socketInodes(list: number[]): Set<string> {
  const inodes = new Set<string>();
  for (const pid of list) {
    try {
      for (const fd of Deno.readDirSync(`/proc/${pid}/fd`)) {
        try {
          const l = Deno.readLinkSync(`/proc/${pid}/fd/${fd.name}`);
          const m = /^socket:\[(\d+)\]$/.exec(l);
          if (m) inodes.add(m[1]);
        } catch { /* closed meanwhile */ }
      }
    } catch { /* gone */ }
  }
  return inodes;
}

/**
 * The local ports of the TCP connections these processes hold: a sprite's
 * outbound connections, which drop when it pauses.
 */
export function localPortsOf(list: number[]): Set<number> {
  const inodes = socketInodes(list);
  const ports = new Set<number>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(table);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || !inodes.has(f[9])) continue;
      ports.add(parseInt(f[1].split(":").pop()!, 16));
    }
  }
  return ports;
}

/** Pids in the process group `pgid`. */
export function processGroup(pgid: number): number[] {
  return pids().filter((pid) => {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      return Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[2]) ===
        pgid;
    } catch {
      return false;
    }
  });
}

/** Every TCP listening socket on the host: inode → port. */
export function listeners(): Map<string, number> {
  const out = new Map<string, number>();
  for (const table of ["/proc/net/tcp", "/proc/net/tcp6"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(table);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10 || f[3] !== "0A") continue;
      out.set(f[9], parseInt(f[1].split(":").pop()!, 16));
    }
  }
  return out;
}
