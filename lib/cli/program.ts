/**
 * The command tree, assembled: one file per noun under commands/, each
 * given the CliContext it acts through (context.ts).
 */
import { Command } from "@commander-js/extra-typings";
import { VERSION } from "../version.ts";
import { registerCompletion } from "./commands/completion.ts";
import { registerDaemon } from "./commands/daemon.ts";
import { type DoctorProbes, registerDoctor } from "./commands/doctor.ts";
import { registerFleet } from "./commands/fleet.ts";
import { registerInbox } from "./commands/inbox.ts";
import { registerInit } from "./commands/init.ts";
import { registerShip } from "./commands/ship.ts";
import { registerVoyage } from "./commands/voyage.ts";
import type { CliContext } from "./context.ts";

export interface BuildOptions {
  /** What doctor looks at (this machine's tools, unless a test's fakes). */
  probes?: DoctorProbes;
}

export function buildProgram(
  ctx: CliContext,
  opts: BuildOptions = {},
): Command {
  const program = new Command("ohcommodore")
    .description(
      "Control plane for fleets of AI coding agents on VMs.\n" +
        "Run 'ohcommodore init' once, then create ships and sail voyages.",
    )
    .version(VERSION, "-V, --version")
    .exitOverride() // inherited by every subcommand; run.ts maps the exit code
    .enablePositionalOptions()
    .showSuggestionAfterError(true)
    .helpCommand(true)
    .configureOutput({
      writeOut: (s) => ctx.io.write("stdout", new TextEncoder().encode(s)),
      writeErr: (s) => ctx.io.write("stderr", new TextEncoder().encode(s)),
    });

  registerInit(program, ctx);
  registerFleet(program, ctx);
  registerShip(program, ctx);
  registerInbox(program, ctx);
  registerDaemon(program, ctx);

  registerVoyage(program, ctx);
  registerDoctor(program, ctx, opts.probes);
  registerCompletion(program, ctx);
  return program;
}
