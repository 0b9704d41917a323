import { CommanderError } from "@commander-js/extra-typings";
import { reportFailure } from "./failure.ts";
import { buildProgram, type Exit } from "./program.ts";

/**
 * Runs the CLI and turns every failure into one line on stderr: exit 2 for
 * misuse (commander's parse errors included), 1 for failures while acting.
 */
export async function runCli(args: string[]): Promise<number> {
  const exit: Exit = { code: 0 };
  const program = buildProgram(exit);
  try {
    // ~/.ohcommodore/.env < ./.env < the real environment (lib/env_file.ts).
    // Only on the user's side: VMs get their settings through requests.
    if (!Deno.env.get("OHCOMMODORE_NO_DOTENV")) {
      const { applyLoadedEnv, loadEnvSync } = await import("../env_file.ts");
      applyLoadedEnv(loadEnvSync());
    }
    await program.parseAsync(args, { from: "user" });
    return exit.code;
  } catch (e) {
    if (e instanceof CommanderError) {
      // commander already printed its one-line message (or the help).
      if (
        e.code === "commander.helpDisplayed" ||
        e.code === "commander.version" || e.code === "commander.help"
      ) return 0;
      return 2;
    }
    return reportFailure(e);
  }
}
