import { OhcError } from "../errors.ts";
import { lostConnection, remoteBin } from "../transport/run.ts";
import type { Transport } from "../transport/types.ts";
import { type CallOptions, exchange, unwrap } from "./stream.ts";
export type { CallOptions } from "./stream.ts";

/**
 * Calls `op` on the machine behind `t` through its installed binary and
 * returns the result, rethrowing a remote error with its code and hint.
 */
export async function call<T = unknown>(
  t: Transport,
  op: string,
  args: Record<string, unknown> = {},
  opts: CallOptions & { signal?: AbortSignal } = {},
): Promise<T> {
  const child = t.spawn(remoteBin("_rpc"), {
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: opts.signal,
  });
  const stderrText = new Response(child.stderr).text();
  const final = await exchange(child.stdin, child.stdout, op, args, opts);
  const status = await child.status;
  if (final) return unwrap<T>(final);
  const err = (await stderrText).trim().split("\n").slice(-3).join(" | ");
  throw new OhcError(
    "unreachable",
    `no answer from ${t.dest} (exit ${status.code})${err ? `: ${err}` : ""}`,
    "check that the machine is up: ohcommodore fleet status",
  );
}

/**
 * Whether a call failed only because its connection was lost before any
 * answer (exit 255 and what transports say then): an idempotent call (such
 * as `vm.setup`) may be made again.
 */
export function lostCall(e: unknown): boolean {
  return e instanceof OhcError && e.code === "unreachable" &&
    /\(exit 255\)/.test(e.message) && lostConnection(255, e.message);
}
