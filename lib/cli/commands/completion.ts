/** `completion SHELL`: the shell completion script. */
import type { Command } from "@commander-js/extra-typings";
import { UsageError } from "../../errors.ts";
import type { CliContext } from "../context.ts";

export function registerCompletion(program: Command, ctx: CliContext): void {
  program.command("completion")
    .description(
      "print a shell completion script: commands, flags, and the ship names\n" +
        "and voyage ids the last 'fleet status' or 'voyage list' saw.\n" +
        'bash: eval "$(ohcommodore completion bash)" (in ~/.bashrc)\n' +
        'zsh:  eval "$(ohcommodore completion zsh)" (in ~/.zshrc)\n' +
        "fish: ohcommodore completion fish | source",
    )
    .argument("<shell>", "bash, zsh or fish")
    .action(async (shell) => {
      const { completionScript, SHELLS } = await import("../completion.ts");
      if (!(SHELLS as readonly string[]).includes(shell)) {
        throw new UsageError(
          `unknown shell "${shell}": one of ${SHELLS.join(", ")}`,
        );
      }
      ctx.io.write(
        "stdout",
        new TextEncoder().encode(
          completionScript(program, shell as (typeof SHELLS)[number]),
        ),
      );
    });
}
