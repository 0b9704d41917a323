import { OhcError } from "../errors.ts";
import {
  fromChild,
  type RemoteProcess,
  type SpawnOptions,
  type Transport,
} from "./types.ts";

/**
 * A sprite (sprites.dev) reached through the `sprite` CLI:
 * `sprite exec [-o org] -s <name> -- argv...` (reference §2.1).
 *
 * Unlike ssh, `sprite exec` passes the argv as separate words (`--` ends
 * the CLI's own flags), so nothing is quoted or spliced into a shell line.
 * stdin, stdout and stderr pass through as pipes, and the exit code comes
 * back. Each exec is a new session in the sprite user's home.
 */
export interface SpriteTransportOptions {
  /** The sprite's name. */
  name: string;
  /** `-o <org>`; omitted when undefined (the CLI's default org). */
  org?: string;
  /** The CLI to run. Default `sprite` (on PATH). */
  spriteBin?: string;
  /** Extra environment for the CLI (e.g. test knobs); the rest is inherited. */
  env?: Record<string, string>;
}

function checkWord(what: string, v: string): void {
  if (v === "" || v.startsWith("-") || /[\s\0]/.test(v)) {
    throw new Error(`invalid sprite ${what}: ${JSON.stringify(v)}`);
  }
}

/** The global flags that pick the org (empty without one). */
export function orgArgs(org?: string): string[] {
  if (org === undefined || org === "") return [];
  checkWord("org", org);
  return ["-o", org];
}

/** The error for a missing CLI, with how to install it. */
export function spriteCliMissing(bin: string): OhcError {
  return new OhcError(
    "sprite_cli_missing",
    `the sprite CLI was not found (${bin})`,
    "install it with `curl https://sprites.dev/install.sh | bash` and log in with `sprite login`",
  );
}

/** Spawns the CLI, turning "not found" into a clear error. */
export function spawnCli(cmd: Deno.Command, bin: string): Deno.ChildProcess {
  try {
    return cmd.spawn();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) throw spriteCliMissing(bin);
    throw e;
  }
}

export class SpriteTransport implements Transport {
  readonly dest: string;
  readonly name: string;
  readonly org?: string;
  readonly spriteBin: string;
  private readonly env?: Record<string, string>;

  constructor(opts: SpriteTransportOptions) {
    checkWord("name", opts.name);
    orgArgs(opts.org);
    this.name = opts.name;
    this.dest = opts.name;
    this.org = opts.org;
    this.spriteBin = opts.spriteBin ?? "sprite";
    this.env = opts.env;
  }

  /** Full argv of the CLI for a command (exposed for tests and logs). */
  commandArgs(argv: string[], tty = false): string[] {
    return [
      "exec",
      ...orgArgs(this.org),
      "-s",
      this.name,
      ...(tty ? ["--tty"] : []),
      "--",
      ...argv,
    ];
  }

  spawn(argv: string[], opts: SpawnOptions = {}): RemoteProcess {
    if (argv.length === 0) throw new Error("spawn needs a command");
    const child = spawnCli(
      this.command(this.commandArgs(argv), {
        stdin: opts.stdin ?? "null",
        stdout: opts.stdout ?? "piped",
        stderr: opts.stderr ?? "piped",
        signal: opts.signal,
      }),
      this.spriteBin,
    );
    return fromChild(child);
  }

  async interactive(
    argv: string[],
    opts: { tty?: boolean } = {},
  ): Promise<number> {
    const tty = (opts.tty ?? false) && Deno.stdin.isTerminal();
    const cmd = argv.length > 0 ? argv : ["bash", "-l"];
    const child = spawnCli(
      this.command(this.commandArgs(cmd, tty), {
        stdin: "inherit",
        stdout: "inherit",
        stderr: "inherit",
      }),
      this.spriteBin,
    );
    return (await child.status).code;
  }

  private command(
    args: string[],
    o: Pick<
      Deno.CommandOptions,
      "stdin" | "stdout" | "stderr" | "signal"
    >,
  ): Deno.Command {
    return new Deno.Command(this.spriteBin, {
      args,
      ...(this.env ? { env: this.env } : {}),
      ...o,
    });
  }
}
