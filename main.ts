/**
 * ohcommodore: parse arguments, find this machine's role, dispatch. No logic
 * lives here. `--version` and the machine-to-machine entry points skip the
 * command parser, since they run on every hop.
 */
import { VERSION } from "./lib/version.ts";

async function main(args: string[]): Promise<number> {
  if (args.length === 1 && (args[0] === "--version" || args[0] === "-V")) {
    console.log(`ohcommodore ${VERSION}`);
    return 0;
  }
  if (args[0] === "_rpc") {
    const { serveStdio } = await import("./lib/rpc/server.ts");
    const { handlersForRole } = await import("./roles/mod.ts");
    return await serveStdio(handlersForRole);
  }
  const { runCli } = await import("./lib/cli/run.ts");
  return await runCli(args);
}

Deno.exit(await main(Deno.args));
