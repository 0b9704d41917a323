/**
 * Calls an operation of the flagship from wherever the CLI runs: over the
 * transport from the laptop; in this process (or through the daemon) on
 * the flagship itself. Ships are not allowed. Calls are typed by the
 * registry of operations (lib/rpc/ops.ts) and routed by its owner.
 */
import { UsageError } from "../errors.ts";
import type { Machine } from "../machine.ts";
import type { RpcEvent } from "../rpc/protocol.ts";
import type { CallOptions } from "../rpc/stream.ts";
import type { OpArgs, OpName, OpResult } from "../rpc/ops.ts";
import type { Backends } from "./backends.ts";

/** An operation of the flagship, called from wherever the CLI runs. */
export type FlagshipCall = <N extends OpName>(
  op: N,
  args: OpArgs<N>,
  opts?: CallOptions,
) => Promise<OpResult<N>>;

/** The refusal of a fleet command on a ship. */
export function notOnShip(command: string, ship: string): UsageError {
  return new UsageError(
    `'${command}' runs on your own machine or on the flagship, not on ship "${ship}"`,
  );
}

export async function flagshipCaller(
  backends: Backends,
  machine: Machine,
  command: string,
): Promise<FlagshipCall> {
  const id = machine.identity;
  if (!id) {
    const laptop = await backends.laptop(machine.home);
    const t = laptop.transport(await laptop.requireConfig());
    const { callRemote } = await import("../rpc/calls.ts");
    return (op, args, opts) => callRemote(t, op, args, opts);
  }
  if (id.role !== "commodore") throw notOnShip(command, id.name);
  const { daemonCall } = await import("../daemon/client.ts");
  // The registry holds every feature's operations: loaded by the commands
  // that call the flagship, not by every start of the CLI.
  const { opSpec } = await import("../rpc/ops.ts");
  let own: ReturnType<Backends["flagship"]> | undefined;
  return async <N extends OpName>(
    op: N,
    args: OpArgs<N>,
    opts: CallOptions = {},
  ): Promise<OpResult<N>> => {
    type T = OpResult<N>;
    const raw = args as Record<string, unknown>;
    if (opSpec(op)?.owner === "daemon") {
      return await daemonCall<T>(op, raw, { ...opts, home: machine.home });
    }
    own ??= backends.flagship(id, machine.home);
    const h = (await own).handlers[op];
    if (!h) throw new UsageError(`the flagship does not handle "${op}"`);
    return await h({
      args: raw,
      secrets: opts.secrets ?? {},
      emit: (ev: RpcEvent) => opts.onEvent?.(ev),
      input: opts.input ?? new ReadableStream({ start: (c) => c.close() }),
      signal: new AbortController().signal,
    }) as T;
  };
}
