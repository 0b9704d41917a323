import { fromErrorInfo, OhcError } from "../errors.ts";
import { remoteBin } from "../transport/run.ts";
import type { Transport } from "../transport/types.ts";
import {
  PROTOCOL_VERSION,
  type RpcEvent,
  type RpcRequest,
} from "./protocol.ts";
import { readLines } from "../lines.ts";

export interface CallOptions {
  secrets?: Record<string, string>;
  onEvent?: (e: RpcEvent) => void;
  /** Extra input after the request line (e.g. stdin for `ship exec`). */
  input?: ReadableStream<Uint8Array>;
  signal?: AbortSignal;
}

/**
 * Calls `op` on the machine behind `t` through its installed binary and
 * returns the result, rethrowing a remote error with its code and hint.
 */
export async function call<T = unknown>(
  t: Transport,
  op: string,
  args: Record<string, unknown> = {},
  opts: CallOptions = {},
): Promise<T> {
  const child = t.spawn(remoteBin("_rpc"), {
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: opts.signal,
  });
  const req: RpcRequest = { v: PROTOCOL_VERSION, op, args };
  if (opts.secrets && Object.keys(opts.secrets).length > 0) {
    req.secrets = opts.secrets;
  }
  const feeding = (async () => {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(JSON.stringify(req) + "\n"));
    if (opts.input) {
      w.releaseLock();
      await opts.input.pipeTo(child.stdin);
    } else {
      await w.close();
    }
  })().catch(() => {}); // the far side may exit before reading everything
  const stderrText = new Response(child.stderr).text();

  let final: RpcEvent | undefined;
  for await (const line of readLines(child.stdout)) {
    if (!line.trim()) continue;
    let ev: RpcEvent;
    try {
      ev = JSON.parse(line);
    } catch {
      continue; // stray output (e.g. a login banner) is not protocol
    }
    if (ev.type === "result" || ev.type === "error") final = ev;
    else opts.onEvent?.(ev);
  }
  const status = await child.status;
  void feeding;
  if (final?.type === "result") return final.data as T;
  if (final?.type === "error") throw fromErrorInfo(final.error);
  const err = (await stderrText).trim().split("\n").slice(-3).join(" | ");
  throw new OhcError(
    "unreachable",
    `no answer from ${t.dest} (exit ${status.code})${err ? `: ${err}` : ""}`,
    "check that the machine is up: ohcommodore fleet status",
  );
}
