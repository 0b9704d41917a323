import {
  fromChild,
  type RemoteProcess,
  type SpawnOptions,
  type Transport,
} from "./types.ts";

/**
 * Variables a local "VM" inherits from the laptop. Everything else is
 * dropped, as a real VM would not see the laptop's environment: in
 * particular GH_TOKEN and other secrets must reach a VM on stdin only.
 * OHCOMMODORE_* settings (test knobs, endpoints) pass through, except the
 * binary path, which each VM sets for itself.
 */
const PASS_THROUGH = [
  "PATH",
  "LANG",
  "LC_ALL",
  "TERM",
  "TZ",
  "TMPDIR",
  "SHELL",
  "USER",
  "LOGNAME",
  "DENO_DIR",
];

export function vmEnv(home: string): Record<string, string> {
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (PASS_THROUGH.includes(k)) env[k] = v;
    else if (k.startsWith("OHCOMMODORE_") && k !== "OHCOMMODORE_BINARY") {
      env[k] = v;
    }
  }
  env.HOME = home;
  return env;
}

/** A machine that is a folder on this host: processes run with HOME there. */
export class LocalTransport implements Transport {
  constructor(readonly home: string) {}

  get dest(): string {
    return this.home;
  }

  spawn(argv: string[], opts: SpawnOptions = {}): RemoteProcess {
    if (argv.length === 0) throw new Error("spawn needs a command");
    const child = new Deno.Command(argv[0], {
      args: argv.slice(1),
      cwd: this.home,
      env: vmEnv(this.home),
      clearEnv: true,
      stdin: opts.stdin ?? "null",
      stdout: opts.stdout ?? "piped",
      stderr: opts.stderr ?? "piped",
      signal: opts.signal,
    }).spawn();
    return fromChild(child);
  }

  async interactive(argv: string[]): Promise<number> {
    const cmd = argv.length > 0
      ? argv
      : [Deno.env.get("SHELL") || "bash", "-l"];
    const child = this.spawn(cmd, {
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    });
    return (await child.status).code;
  }
}
