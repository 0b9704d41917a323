import { CommanderError } from "@commander-js/extra-typings";
import { processHome } from "../process_home.ts";
import { knobOn } from "../knobs.ts";
import { paths } from "../state/paths.ts";
import type { Backends } from "./backends.ts";
import { type CliContext, processContext } from "./context.ts";
import { reportFailure } from "./failure.ts";
import { type Io, processIo } from "./io.ts";
import { type BuildOptions, buildProgram } from "./program.ts";

/**
 * Runs the CLI and turns every failure into one line on stderr: exit 2 for
 * misuse (commander's parse errors included), 1 for failures while acting.
 */
export async function runCli(
  args: string[],
  backends: Backends,
  io: Io = processIo,
): Promise<number> {
  let home: string;
  try {
    // The one read of the process's HOME; the context passes it down.
    home = processHome();
    // ~/.ohcommodore/.env < ./.env < the real environment (lib/env_file.ts).
    // Only on the user's side: VMs get their settings through requests,
    // and a VM's home is no place for the user's tokens to be picked up.
    if (!knobOn("OHCOMMODORE_NO_DOTENV") && !isVm(home)) {
      const { applyLoadedEnv, loadEnvSync } = await import("../env_file.ts");
      applyLoadedEnv(loadEnvSync({ home }));
    }
  } catch (e) {
    return reportFailure(e, io);
  }
  return await runParsed(processContext(backends, io, home), args);
}

/** A VM holds an identity; the user's own machine none. */
function isVm(home: string): boolean {
  try {
    Deno.statSync(paths.identity(home));
    return true;
  } catch {
    return false;
  }
}

/** Parses and runs one command line in `ctx`; its exit code. */
export async function runParsed(
  ctx: CliContext,
  args: string[],
  opts: BuildOptions = {},
): Promise<number> {
  const program = buildProgram(ctx, opts);
  try {
    await program.parseAsync(args, { from: "user" });
    return ctx.exit.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its one-line message (or the help).
      if (
        e.code === "commander.helpDisplayed" ||
        e.code === "commander.version" || e.code === "commander.help"
      ) return 0;
      return 2;
    }
    return reportFailure(e, ctx.io);
  }
}
