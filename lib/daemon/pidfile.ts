/**
 * The supervisor's pidfile, and whether the pid it names is still that
 * supervisor. A pid is reused once its process is gone (after a reboot or
 * a sprite's cold wake, at once): the file holds the process's start time
 * beside its pid, and a process is ours only while both match. Nothing is
 * signalled to find out (a SIGCONT would resume a stranger someone stopped).
 */

/**
 * When `pid` started, in a form that only compares (Linux: clock ticks
 * after boot; elsewhere ps's start time); null when no such process is.
 */
export async function processStart(pid: number): Promise<string | null> {
  try {
    const stat = await Deno.readTextFile(`/proc/${pid}/stat`);
    // The command name (field 2) may hold spaces and ')': count after it.
    const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
    // A zombie has ended; only its parent has not reaped it yet.
    if (fields[0] === "Z") return null;
    return fields[19] ?? null;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      try {
        await Deno.stat("/proc/self/stat");
        return null; // /proc exists: the process does not
      } catch { /* no /proc: ask ps */ }
    }
  }
  try {
    const r = await new Deno.Command("ps", {
      args: ["-o", "lstart=", "-p", String(pid)],
      stdout: "piped",
      stderr: "null",
    }).output();
    const text = new TextDecoder().decode(r.stdout).trim();
    return r.success && text ? text : null;
  } catch {
    return null;
  }
}

/** The process's argv where /proc shows it; null elsewhere. */
async function commandLine(pid: number): Promise<string[] | null> {
  const raw = await Deno.readTextFile(`/proc/${pid}/cmdline`).catch(() => null);
  return raw === null ? null : raw.split("\0").filter((a) => a !== "");
}

export interface PidRecord {
  pid: number;
  /** processStart of the pid when it was written. */
  start: string | null;
}

/** Written by the process itself: its pid and start time. */
export async function writePidfile(file: string): Promise<void> {
  const start = await processStart(Deno.pid);
  await Deno.writeTextFile(
    file,
    start === null ? `${Deno.pid}\n` : `${Deno.pid} ${start}\n`,
  );
}

export async function readPidfile(file: string): Promise<PidRecord | null> {
  try {
    const text = (await Deno.readTextFile(file)).trim();
    const sp = text.indexOf(" ");
    const pid = Number(sp < 0 ? text : text.slice(0, sp));
    if (!Number.isInteger(pid) || pid <= 1) return null;
    return { pid, start: sp < 0 ? null : text.slice(sp + 1) };
  } catch {
    return null;
  }
}

/**
 * Whether the process `rec` names still runs and is the one that wrote it:
 * the same start time; for a file written before start times were kept,
 * a command line ending in `daemon supervise` where /proc shows one.
 */
export async function stillOurs(
  rec: PidRecord,
  lastArgs = ["daemon", "supervise"],
): Promise<boolean> {
  const start = await processStart(rec.pid);
  if (start === null) return false;
  if (rec.start !== null) return start === rec.start;
  const argv = await commandLine(rec.pid);
  if (argv === null) return true;
  return argv.slice(-lastArgs.length).join("\0") === lastArgs.join("\0");
}
