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
import { out, printJson } from "./io.ts";

/** Resolves to the process exit code (commands/voyage.ts, until it takes a CliContext). */
export type Exit = { code: number };

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

  const voyage = program.command("voyage").description(
    "voyages: plans of dependent tasks sailed by many ships",
  );

  voyage.command("check")
    .description(
      "validate a plan directory and show its levels, widest level,\n" +
        "critical path and a recommended ship count (nothing is created)",
    )
    .argument(
      "<plan>",
      "plan directory (voyage.json, spec.md, verify.sh, tasks/)",
    )
    .option("--json", "machine-readable output")
    .action(async (dir, o) => {
      const { loadPlan } = await import("../voyage/plan/read.ts");
      const { analyze } = await import("../voyage/plan/dag.ts");
      const { checkJson, formatCheck } = await import(
        "../voyage/plan/check_report.ts"
      );
      const plan = await loadPlan(dir);
      const analysis = analyze(plan.tasks);
      if (o.json) printJson(ctx.io, checkJson(plan, analysis));
      else out(ctx.io, formatCheck(plan, analysis));
    });

  registerVoyage(program, ctx.exit);
  registerDoctor(program, ctx, opts.probes);
  registerCompletion(program, ctx);
  return program;
}
