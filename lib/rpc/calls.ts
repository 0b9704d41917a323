/**
 * Calls typed by the registry (lib/rpc/ops.ts): the operation's name picks
 * the type of its arguments and of its result.
 */
import type { CallOptions } from "./stream.ts";
import type { OpArgs, OpName, OpResult, OpsOf } from "./ops.ts";
import type { Transport } from "../transport/types.ts";

/** Calls a daemon operation on this machine's daemon (started if need be). */
export async function callDaemon<N extends OpsOf<"daemon">>(
  op: N,
  args: OpArgs<N>,
  opts: CallOptions & { home: string },
): Promise<OpResult<N>> {
  const { daemonCall } = await import("../daemon/client.ts");
  return await daemonCall<OpResult<N>>(
    op,
    args as Record<string, unknown>,
    opts,
  );
}

/**
 * Asks this machine's daemon when it is up (it is not started for this):
 * null when it is down or the call failed.
 */
export async function callDaemonIfUp<N extends OpsOf<"daemon">>(
  home: string,
  op: N,
  args: OpArgs<N>,
): Promise<OpResult<N> | null> {
  const { connectDaemon } = await import("../daemon/socket.ts");
  const conn = await connectDaemon(home);
  if (!conn) return null;
  conn.close();
  return await callDaemon(op, args, { home }).catch(() => null);
}

/** callDaemon bound to one machine's home. */
export function daemonCaller(home: string) {
  return <N extends OpsOf<"daemon">>(
    op: N,
    args: OpArgs<N>,
    opts: CallOptions = {},
  ): Promise<OpResult<N>> => callDaemon(op, args, { ...opts, home });
}

/** Calls an operation on the machine behind `t` (its `_rpc`). */
export async function callRemote<N extends OpName>(
  t: Transport,
  op: N,
  args: OpArgs<N>,
  opts: CallOptions & { signal?: AbortSignal } = {},
): Promise<OpResult<N>> {
  const { call } = await import("./client.ts");
  return await call<OpResult<N>>(
    t,
    op,
    args as Record<string, unknown>,
    opts,
  );
}
