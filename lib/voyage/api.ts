/**
 * What the voyage commands need from the flagship, typed by the registry
 * of operations (lib/voyage/rpc.ts). Built twice, as FleetApi is: remote
 * from the laptop (over the flagship's transport) and direct on the
 * flagship (in this process, or through its daemon): `voyageApi` over
 * either caller. Commands are written once against it and unit-tested
 * against a fake.
 */
import type { Progress } from "../fleet/api.ts";
import type { OpArgs, OpResult } from "../rpc/ops.ts";
import type { RpcEvent } from "../rpc/protocol.ts";
import type { CallOptions } from "../rpc/stream.ts";

type Args<N extends VoyageOp> = OpArgs<N>;
type Result<N extends VoyageOp> = Promise<OpResult<N>>;
type VoyageOp =
  | "voyage.sail"
  | "voyage.status"
  | "voyage.list"
  | "voyage.tasks"
  | "voyage.logs"
  | "voyage.bundle"
  | "voyage.sink"
  | "voyage.retry"
  | "voyage.add";

/** Bytes a streaming operation sends (log lines, a bundle). */
export type OnData = (data: Uint8Array) => void;

export interface VoyageApi {
  /** Secrets travel on the request's stdin, never in argv. */
  sail(
    args: Args<"voyage.sail">,
    secrets: Record<string, string>,
    onProgress: Progress,
  ): Result<"voyage.sail">;
  status(id?: string): Result<"voyage.status">;
  list(): Result<"voyage.list">;
  tasks(args: Args<"voyage.tasks">): Result<"voyage.tasks">;
  logs(args: Args<"voyage.logs">, onData: OnData): Result<"voyage.logs">;
  /** A git bundle of the voyage's branch, to `onData`. */
  bundle(id: string | undefined, onData: OnData): Result<"voyage.bundle">;
  sink(args: Args<"voyage.sink">, onProgress: Progress): Result<"voyage.sink">;
  retry(
    args: Args<"voyage.retry">,
    onProgress: Progress,
  ): Result<"voyage.retry">;
  add(args: Args<"voyage.add">, onProgress: Progress): Result<"voyage.add">;
}

/** How a VoyageApi reaches the flagship (cli/flagship.ts builds both). */
export type VoyageCall = <N extends VoyageOp>(
  op: N,
  args: OpArgs<N>,
  opts?: CallOptions,
) => Promise<OpResult<N>>;

function decodeOutput(e: RpcEvent): Uint8Array | null {
  if (e.type !== "output" || !e.data) return null;
  return Uint8Array.from(atob(e.data), (c) => c.charCodeAt(0));
}

const progressOf = (p: Progress): CallOptions => ({
  onEvent: (e) => {
    if (e.type === "progress") p(e.message, e.subject);
  },
});

const dataOf = (onData: OnData): CallOptions => ({
  onEvent: (e) => {
    const b = decodeOutput(e);
    if (b) onData(b);
  },
});

export function voyageApi(call: VoyageCall): VoyageApi {
  return {
    sail: (args, secrets, p) =>
      call("voyage.sail", args, { secrets, ...progressOf(p) }),
    status: (id) => call("voyage.status", { id }),
    list: () => call("voyage.list", {}),
    tasks: (args) => call("voyage.tasks", args),
    logs: (args, onData) => call("voyage.logs", args, dataOf(onData)),
    bundle: (id, onData) => call("voyage.bundle", { id }, dataOf(onData)),
    sink: (args, p) => call("voyage.sink", args, progressOf(p)),
    retry: (args, p) => call("voyage.retry", args, progressOf(p)),
    add: (args, p) => call("voyage.add", args, progressOf(p)),
  };
}
