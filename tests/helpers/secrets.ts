/**
 * Where a secret shows up during a test: in any process's argv (sampled
 * with ps while something runs) or in any file under a directory.
 */

/**
 * Samples every process's argv (`ps -e -ww`) every 20 ms until `stop()`,
 * which returns how many samples were taken and the lines holding `secret`.
 * All local VMs' processes (laptop, flagship, ships) show in this host's ps.
 */
export function watchArgv(
  secret: string,
): { stop(): Promise<{ samples: number; leaks: string[] }> } {
  let done = false;
  let samples = 0;
  const leaks: string[] = [];
  const loop = (async () => {
    while (!done) {
      const ps = await new Deno.Command("ps", {
        args: ["-e", "-ww", "-o", "pid=,args="],
        stdout: "piped",
        stderr: "null",
      }).output();
      samples++;
      for (const line of new TextDecoder().decode(ps.stdout).split("\n")) {
        if (line.includes(secret)) leaks.push(line);
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  })();
  return {
    async stop() {
      done = true;
      await loop;
      return { samples, leaks };
    },
  };
}

/** Every regular file under `dir` whose bytes contain `needle`, with its mode. */
export async function filesContaining(
  dir: string,
  needle: string,
): Promise<{ path: string; mode: number }[]> {
  const out: { path: string; mode: number }[] = [];
  const want = new TextEncoder().encode(needle);
  const walk = async (d: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(d));
    } catch {
      return;
    }
    for (const e of entries) {
      const p = `${d}/${e.name}`;
      if (e.isDirectory) await walk(p);
      else if (e.isFile) {
        let bytes: Uint8Array;
        try {
          bytes = await Deno.readFile(p);
        } catch {
          continue;
        }
        if (indexOf(bytes, want) >= 0) {
          out.push({ path: p, mode: (await Deno.lstat(p)).mode! & 0o777 });
        }
      }
    }
  };
  await walk(dir);
  return out;
}

function indexOf(hay: Uint8Array, needle: Uint8Array): number {
  const first = needle[0];
  for (let i = hay.indexOf(first); i >= 0; i = hay.indexOf(first, i + 1)) {
    if (i + needle.length > hay.length) return -1;
    let ok = true;
    for (let j = 1; j < needle.length; j++) {
      if (hay[i + j] !== needle[j]) {
        ok = false;
        break;
      }
    }
    if (ok) return i;
  }
  return -1;
}

/** Processes (host-wide) whose environment holds `needle`, with their command lines. */
export function processesWithEnv(
  needle: string,
): { pid: number; cmdline: string }[] {
  const out: { pid: number; cmdline: string }[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const env = Deno.readTextFileSync(`/proc/${e.name}/environ`);
      if (!env.includes(needle)) continue;
      out.push({
        pid: Number(e.name),
        cmdline: Deno.readTextFileSync(`/proc/${e.name}/cmdline`)
          .replaceAll("\0", " ").trim(),
      });
    } catch { /* gone, or a kernel thread */ }
  }
  return out;
}
