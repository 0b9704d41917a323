/**
 * The daemon's own processes, `daemon run` and `daemon supervise`, and the
 * check every `daemon` command makes first. main.ts starts the two
 * processes without the command parser (the supervisor and systemd start
 * them on every VM); the CLI's `daemon run` and `daemon supervise` come
 * here too.
 */
import { reportFailure } from "../cli/failure.ts";
import { UsageError } from "../errors.ts";
import { type Identity, readIdentity } from "../state/identity.ts";

/** `daemon <what>` runs on a VM: the refusal on the user's own machine. */
export function notOnVm(what: string): UsageError {
  return new UsageError(
    `'daemon ${what}' runs on the flagship or a ship; from here: ohcommodore ship exec <ship> -- ohcommodore daemon ${what}`,
  );
}

/** This machine's identity: `daemon <what>` runs on the flagship or a ship. */
export async function requireVm(
  what: string,
  home: string,
): Promise<Identity> {
  const id = await readIdentity(home);
  if (!id) throw notOnVm(what);
  return id;
}

/** Runs `daemon <verb>` to its end; its exit code. */
export async function runDaemonProcess(
  verb: "run" | "supervise",
  home: string,
): Promise<number> {
  await requireVm(verb, home);
  if (verb === "run") {
    const { runDaemon } = await import("./daemon.ts");
    return await runDaemon(home);
  }
  const { supervise } = await import("./control.ts");
  return await supervise(home);
}

/** main.ts's entry: failures as one line on stderr, as the CLI reports them. */
export async function daemonEntry(
  verb: "run" | "supervise",
  home: string,
): Promise<number> {
  try {
    return await runDaemonProcess(verb, home);
  } catch (e) {
    return reportFailure(e);
  }
}
