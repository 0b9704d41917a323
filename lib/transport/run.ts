import type { Transport } from "./types.ts";
import { remotePaths } from "../state/paths.ts";

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface RunOptions {
  stdin?: Uint8Array | string;
  signal?: AbortSignal;
}

/**
 * Whether a command's connection was lost, not the command failing: exit
 * 255 with what ssh or the sprites transport say then (a reset, a TLS
 * handshake that timed out, "sprites.dev: connection to …"). For an
 * idempotent step, worth another try.
 */
export function lostConnection(code: number, stderr: string): boolean {
  return code === 255 &&
    /sprites\.dev: connection to|connection (reset|closed|timed out|refused|lost)|kex_exchange|broken pipe|handshake/i
      .test(stderr);
}

/**
 * Runs an idempotent step again (up to `tries` times, with a short
 * backoff) while it fails only because its connection was lost: `lost`
 * tells from the error.
 */
export async function retryLost<T>(
  fn: () => Promise<T>,
  lost: (e: unknown) => boolean,
  tries = 3,
): Promise<T> {
  for (let i = 1;; i++) {
    try {
      return await fn();
    } catch (e) {
      if (i >= tries || !lost(e)) throw e;
      await new Promise((r) => setTimeout(r, 500 * i));
    }
  }
}

/** Runs argv to completion, collecting its output as text. */
export async function run(
  t: Transport,
  argv: string[],
  opts: RunOptions = {},
): Promise<RunResult> {
  const child = t.spawn(argv, {
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: opts.signal,
  });
  const feeding = opts.stdin === undefined
    ? Promise.resolve()
    : writeAll(child.stdin, opts.stdin);
  const [stdout, stderr, status] = await Promise.all([
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
    child.status,
    feeding.catch(() => {}), // a child that exits early closes its stdin
  ]);
  return { code: status.code, stdout, stderr };
}

export async function writeAll(
  w: WritableStream<Uint8Array>,
  data: Uint8Array | string,
): Promise<void> {
  const writer = w.getWriter();
  try {
    await writer.write(
      typeof data === "string" ? new TextEncoder().encode(data) : data,
    );
  } finally {
    await writer.close().catch(() => {});
  }
}

/**
 * A fixed script that writes stdin to `$1` atomically with mode `$2`:
 * temp file beside the target, fsync, rename. Paths are relative to home
 * unless absolute. The script is constant; paths arrive as arguments.
 */
const UPLOAD_SCRIPT = [
  'set -e; umask 077; cd "$HOME"',
  'd=$(dirname -- "$1"); mkdir -p -- "$d"',
  't="$1.tmp.$$"',
  'cat > "$t"',
  'chmod "$2" "$t"',
  'sync "$t" 2>/dev/null || true',
  'mv -f -- "$t" "$1"',
].join("; ");

/**
 * Uploads bytes to a path on the machine (atomic; mode e.g. "600"). Being
 * atomic, it is tried again when only its connection was lost.
 */
export async function upload(
  t: Transport,
  data: Uint8Array | string,
  remotePath: string,
  mode: string,
): Promise<void> {
  let res: RunResult;
  for (let i = 1;; i++) {
    res = await run(
      t,
      ["sh", "-c", UPLOAD_SCRIPT, "upload", remotePath, mode],
      { stdin: data },
    );
    if (i >= 3 || !lostConnection(res.code, res.stderr)) break;
    await new Promise((r) => setTimeout(r, 500 * i));
  }
  if (res.code !== 0) {
    throw new Error(
      `upload to ${t.dest}:${remotePath} failed: ${
        res.stderr.trim() || `exit ${res.code}`
      }`,
    );
  }
}

/** argv that runs the installed ohcommodore on the far side. */
export function remoteBin(...args: string[]): string[] {
  return [
    "sh",
    "-c",
    `exec "$HOME/${remotePaths.bin}" "$@"`,
    "ohcommodore",
    ...args,
  ];
}

/** argv that runs a command with the machine's `~/.ohcommodore/bin` on PATH. */
export function withBinPath(argv: string[]): string[] {
  return [
    "sh",
    "-c",
    `PATH="$HOME/${remotePaths.binDir}:$PATH"; export PATH; exec "$@"`,
    "sh",
    ...argv,
  ];
}

/** Reads a file (relative to home unless absolute) from the machine, as bytes. */
export async function download(
  t: Transport,
  remotePath: string,
): Promise<Uint8Array> {
  const child = t.spawn(
    ["sh", "-c", 'cd "$HOME" && exec cat -- "$1"', "download", remotePath],
    { stdout: "piped", stderr: "piped" },
  );
  const [bytes, err, status] = await Promise.all([
    new Response(child.stdout).bytes(),
    new Response(child.stderr).text(),
    child.status,
  ]);
  if (status.code !== 0) {
    throw new Error(
      `download of ${t.dest}:${remotePath} failed: ${
        err.trim() || `exit ${status.code}`
      }`,
    );
  }
  return bytes;
}
