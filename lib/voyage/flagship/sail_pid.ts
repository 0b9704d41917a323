/**
 * The sail's pidfile: the process that makes a voyage's ships (a sail, or a
 * retry or add that makes new ones) holds it until they are made, so the
 * daemon can tell a sail still at work from one that died (daemon_ops.ts,
 * afterSail).
 */
import { readPidfile, stillOurs, writePidfile } from "../../daemon/pidfile.ts";
import { paths } from "../../state/paths.ts";

/** Held by this process from now; the function given back lets it go. */
export async function holdSail(
  home: string,
  voyage: string,
): Promise<() => Promise<void>> {
  const file = paths.sailPid(home, voyage);
  await writePidfile(file);
  return () => Deno.remove(file).catch(() => {});
}

/** Its pidfile names a process that is gone: that sail died first. */
export async function sailDied(home: string, voyage: string): Promise<boolean> {
  const rec = await readPidfile(paths.sailPid(home, voyage));
  return rec !== null && !(await stillOurs(rec));
}
