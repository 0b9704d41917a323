/**
 * ohcommodore: parse arguments, find this machine's role, dispatch. No logic
 * lives here. `--version` and the machine-to-machine entry points (`_rpc`,
 * and the daemon's own processes) skip the command parser: they run on every
 * hop and every VM start, and the parser's imports cost more than Deno's start.
 */
import { processHome } from "./lib/process_home.ts";
import { VERSION } from "./lib/version.ts";

/** What the supervisor (or systemd) starts: `daemon run`, `daemon supervise`. */
const DAEMON_ENTRY = new Set(["run", "supervise"]);

async function main(args: string[]): Promise<number> {
  if (args.length === 1 && (args[0] === "--version" || args[0] === "-V")) {
    console.log(`ohcommodore ${VERSION}`);
    return 0;
  }
  if (args[0] === "_rpc") {
    const { serveStdio } = await import("./lib/rpc/server.ts");
    const home = processHome();
    // The roles load only for the operations this process serves itself,
    // not for the daemon's, which it passes through.
    return await serveStdio(home, async () => {
      const { handlersForRole } = await import("./roles/mod.ts");
      return await handlersForRole(home);
    });
  }
  if (args.length === 2 && args[0] === "daemon" && DAEMON_ENTRY.has(args[1])) {
    const { daemonEntry } = await import("./lib/daemon/entry.ts");
    return await daemonEntry(args[1] as "run" | "supervise", processHome());
  }
  const { runCli } = await import("./lib/cli/run.ts");
  const { backends } = await import("./roles/cli.ts");
  return await runCli(args, backends);
}

Deno.exit(await main(Deno.args));
