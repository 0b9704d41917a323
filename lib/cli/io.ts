/**
 * What a command reads and writes, as one object: the process's own streams
 * in the program, captured buffers in unit tests (tests/helpers/cli_context.ts).
 * Text goes out as whole lines; `write` passes a command's bytes through.
 */
import type { Progress } from "../fleet/api.ts";

export interface Io {
  write(stream: "stdout" | "stderr", data: Uint8Array): void;
  /** stdin, unless it is a terminal (then a command has no input to pass). */
  input(): ReadableStream<Uint8Array> | undefined;
  /** Whether stdin is a terminal (a person can be asked, a tty attached). */
  stdinIsTerminal(): boolean;
  stderrIsTerminal(): boolean;
  /** Asks a person on the terminal; null when nobody answers. */
  prompt(message: string): string | null;
}

const enc = new TextEncoder();

function line(text: string): Uint8Array {
  return enc.encode(text.endsWith("\n") ? text : text + "\n");
}

export function out(io: Io, text: string): void {
  io.write("stdout", line(text));
}

export function err(io: Io, text: string): void {
  io.write("stderr", line(text));
}

export function printJson(io: Io, v: unknown): void {
  out(io, JSON.stringify(v, null, 2));
}

/** Progress for people, on stderr, so stdout stays clean for --json. */
export function progressTo(io: Io): Progress {
  return (message, subject) =>
    err(io, subject ? `==> [${subject}] ${message}` : `==> ${message}`);
}

function writeAll(f: typeof Deno.stdout, b: Uint8Array) {
  let off = 0;
  while (off < b.length) off += f.writeSync(b.subarray(off));
}

/** The process's own streams. */
export const processIo: Io = {
  write: (s, d) => writeAll(s === "stdout" ? Deno.stdout : Deno.stderr, d),
  input: () => Deno.stdin.isTerminal() ? undefined : Deno.stdin.readable,
  stdinIsTerminal: () => Deno.stdin.isTerminal(),
  stderrIsTerminal: () => Deno.stderr.isTerminal(),
  prompt: (m) => prompt(m),
};
