/** The custom agent: `bash -c <--agent-command CMD>` (exit 0 = success). */
import { UsageError } from "../../../errors.ts";
import type { AgentAdapter } from "./types.ts";

export const custom: AgentAdapter = {
  takesModel: false,
  build(opts) {
    const command = opts.agentCommand;
    if (command === undefined || command.trim() === "") {
      throw new UsageError("--agent custom needs --agent-command CMD");
    }
    return { argv: ["bash", "-c", command] };
  },
};
