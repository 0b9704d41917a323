/** The shell agent: `bash -c <the task's command>` (exit 0 = success). */
import { UsageError } from "../../../errors.ts";
import type { AgentAdapter } from "./types.ts";

export const shell: AgentAdapter = {
  takesModel: false,
  build(opts) {
    const command = opts.task.command;
    if (command === undefined || command.trim() === "") {
      throw new UsageError(
        `task ${opts.task.id} has no "command": the shell agent runs a task's command`,
        'add "command" to the task, or choose another --agent',
      );
    }
    return { argv: ["bash", "-c", command] };
  },
};
