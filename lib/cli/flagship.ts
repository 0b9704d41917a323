/**
 * Calls an operation of the flagship from wherever the CLI runs: over the
 * transport from the laptop; in this process (or through the daemon) on
 * the flagship itself. Ships are not allowed.
 */
import { UsageError } from "../errors.ts";
import type { RpcEvent } from "../rpc/protocol.ts";
import type { CallOptions } from "../rpc/stream.ts";
import { type OpArgs, type OpName, type OpResult, opSpec } from "../rpc/ops.ts";
import { readIdentity } from "../state/identity.ts";

export async function flagshipCall<N extends OpName>(
  command: string,
  op: N,
  args: OpArgs<N>,
  opts: CallOptions = {},
): Promise<OpResult<N>> {
  type T = OpResult<N>;
  const id = await readIdentity();
  if (!id) {
    const { flagshipTransport, requireConfig } = await import(
      "../../roles/local.ts"
    );
    const { call } = await import("../rpc/client.ts");
    return await call<T>(
      flagshipTransport(await requireConfig()),
      op,
      args,
      opts,
    );
  }
  if (id.role !== "commodore") {
    throw new UsageError(
      `'${command}' runs on your own machine or on the flagship, not on ship "${id.name}"`,
    );
  }
  if (opSpec(op)?.owner === "daemon") {
    const { daemonCall } = await import("../daemon/client.ts");
    return await daemonCall<T>(op, args, opts);
  }
  const { Commodore, commodoreHandlers } = await import(
    "../../roles/commodore.ts"
  );
  const h = commodoreHandlers(new Commodore(id))[op];
  if (!h) throw new UsageError(`the flagship does not handle "${op}"`);
  return await h({
    args,
    secrets: opts.secrets ?? {},
    emit: (ev: RpcEvent) => opts.onEvent?.(ev),
    input: opts.input ?? new ReadableStream({ start: (c) => c.close() }),
    signal: new AbortController().signal,
  }) as T;
}
