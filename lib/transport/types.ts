/**
 * A transport runs an argv on one machine. Everything that crosses to another
 * machine (RPC, uploads, interactive shells, links) goes through this one
 * interface, so the local provider exercises the same paths SSH carries.
 *
 * Rules every implementation keeps:
 * - argv is passed as separate words; user input is never spliced into a
 *   shell string. (SSH must quote each word with `quoteArgv`.)
 * - The command starts in the remote user's home directory.
 * - Secrets travel on stdin, never in argv or env.
 */
export interface SpawnOptions {
  /** "piped" to write to the child; default "null". */
  stdin?: "piped" | "null" | "inherit";
  stdout?: "piped" | "null" | "inherit";
  stderr?: "piped" | "null" | "inherit";
  signal?: AbortSignal;
}

export interface RemoteProcess {
  readonly stdin: WritableStream<Uint8Array>;
  readonly stdout: ReadableStream<Uint8Array>;
  readonly stderr: ReadableStream<Uint8Array>;
  readonly status: Promise<{ code: number; signal: string | null }>;
  kill(signal?: Deno.Signal): void;
}

export interface Transport {
  /** A human-readable destination (ssh_dest, sprite name, or folder). */
  readonly dest: string;
  spawn(argv: string[], opts?: SpawnOptions): RemoteProcess;
  /**
   * Runs argv (or a login shell when argv is empty) attached to this
   * terminal; `tty` asks for a pseudo-terminal where the transport has one.
   * Resolves to the exit code.
   */
  interactive(argv: string[], opts?: { tty?: boolean }): Promise<number>;
  /** Releases shared resources (e.g. an SSH master connection). */
  close?(): Promise<void>;
}

/** A local child process as a RemoteProcess (local and sprite transports). */
export function fromChild(child: Deno.ChildProcess): RemoteProcess {
  return {
    get stdin() {
      return child.stdin;
    },
    get stdout() {
      return child.stdout;
    },
    get stderr() {
      return child.stderr;
    },
    status: child.status.then((s) => ({ code: s.code, signal: s.signal })),
    kill: (sig?: Deno.Signal) => {
      try {
        child.kill(sig);
      } catch { /* already gone */ }
    },
  };
}
