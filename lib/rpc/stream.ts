import { concatBytes } from "../bytes.ts";
import { fromErrorInfo, OhcError, toErrorInfo, UsageError } from "../errors.ts";
import { readLines } from "../lines.ts";
import {
  PROTOCOL_VERSION,
  type RpcEvent,
  type RpcRequest,
} from "./protocol.ts";

/**
 * The RPC protocol over any pair of byte streams: stdio of `ohcommodore _rpc`
 * (across a transport) or a connection to the daemon's Unix socket.
 */

export interface RpcContext {
  args: Record<string, unknown>;
  secrets: Record<string, string>;
  emit(
    ev: Extract<RpcEvent, { type: "progress" | "output" | "link" | "reply" }>,
  ): void;
  /** The caller's input after the request line. */
  input: ReadableStream<Uint8Array>;
  /** Aborted when the caller goes away. */
  signal: AbortSignal;
}

export type RpcHandler = (ctx: RpcContext) => Promise<unknown>;
export type RpcHandlers = Record<string, RpcHandler>;

/** Serves one request read from `input`, answering on `output`. */
export async function serveOne(
  input: ReadableStream<Uint8Array>,
  output: WritableStream<Uint8Array>,
  load: () => Promise<RpcHandlers> | RpcHandlers,
): Promise<void> {
  const enc = new TextEncoder();
  const writer = output.getWriter();
  const gone = new AbortController();
  let writing = Promise.resolve();
  const send = (ev: RpcEvent) => {
    writing = writing.then(() =>
      writer.write(enc.encode(JSON.stringify(ev) + "\n"))
    )
      .catch(() => gone.abort());
    return writing;
  };
  try {
    const { first, rest } = await splitFirstLine(input);
    let req: RpcRequest;
    try {
      req = JSON.parse(first);
    } catch {
      throw new UsageError("expected one JSON request line");
    }
    if (req?.v !== PROTOCOL_VERSION || typeof req.op !== "string") {
      throw new OhcError(
        "version_mismatch",
        `unsupported RPC request (protocol ${req?.v}, this is ${PROTOCOL_VERSION})`,
        "update ohcommodore on both machines",
      );
    }
    const handlers = await load();
    const h = Object.hasOwn(handlers, req.op) ? handlers[req.op] : undefined;
    if (!h) {
      throw new OhcError(
        "unknown_op",
        `this machine does not handle "${req.op}"`,
        "is it the right machine, with the same ohcommodore version?",
      );
    }
    const data = await h({
      args: req.args ?? {},
      secrets: req.secrets ?? {},
      emit: (ev) => void send(ev),
      input: rest,
      signal: gone.signal,
    });
    await send({ type: "result", data: data ?? null });
  } catch (e) {
    await send({ type: "error", error: toErrorInfo(e) });
  }
  await writing;
  await writer.close().catch(() => {});
}

export interface CallOptions {
  secrets?: Record<string, string>;
  onEvent?: (e: RpcEvent) => void;
  /** Extra input after the request line (e.g. stdin for `ship exec`). */
  input?: ReadableStream<Uint8Array>;
}

/**
 * Sends a request on `w` and reads events from `r` until the result.
 * Returns the final event, or undefined if the stream ended without one.
 */
export async function exchange(
  w: WritableStream<Uint8Array>,
  r: ReadableStream<Uint8Array>,
  op: string,
  args: Record<string, unknown>,
  opts: CallOptions,
  /**
   * Ends our half of the exchange. A socket must half-close (closing its
   * writable closes the whole connection); pipes just close.
   */
  endInput?: () => Promise<void>,
): Promise<Extract<RpcEvent, { type: "result" | "error" }> | undefined> {
  const req: RpcRequest = { v: PROTOCOL_VERSION, op, args };
  if (opts.secrets && Object.keys(opts.secrets).length > 0) {
    req.secrets = opts.secrets;
  }
  void (async () => {
    const writer = w.getWriter();
    await writer.write(new TextEncoder().encode(JSON.stringify(req) + "\n"));
    if (opts.input) {
      for await (const chunk of opts.input) await writer.write(chunk);
    }
    if (endInput) {
      writer.releaseLock();
      await endInput();
    } else {
      await writer.close();
    }
  })().catch(() => {}); // the far side may finish before reading everything

  for await (const line of readLines(r)) {
    if (!line.trim()) continue;
    let ev: RpcEvent;
    try {
      ev = JSON.parse(line);
    } catch {
      continue; // stray output (e.g. a login banner) is not protocol
    }
    if (ev.type === "result" || ev.type === "error") return ev;
    opts.onEvent?.(ev);
  }
  return undefined;
}

/** The result's data, or the remote error rethrown with its kind. */
export function unwrap<T>(
  final: Extract<RpcEvent, { type: "result" | "error" }>,
): T {
  if (final.type === "result") return final.data as T;
  throw fromErrorInfo(final.error);
}

/** Reads up to the first newline; the remainder stays a stream. */
export async function splitFirstLine(
  stream: ReadableStream<Uint8Array>,
): Promise<{ first: string; rest: ReadableStream<Uint8Array> }> {
  const reader = stream.getReader();
  const chunks: Uint8Array[] = [];
  let leftover: Uint8Array | null = null;
  while (true) {
    const { value, done } = await reader.read();
    if (done) break;
    const nl = value.indexOf(10);
    if (nl >= 0) {
      chunks.push(value.subarray(0, nl));
      leftover = value.subarray(nl + 1);
      break;
    }
    chunks.push(value);
  }
  const first = new TextDecoder().decode(concatBytes(chunks));
  const rest = new ReadableStream<Uint8Array>({
    start(c) {
      if (leftover && leftover.length) c.enqueue(leftover);
    },
    async pull(c) {
      const { value, done } = await reader.read();
      if (done) c.close();
      else c.enqueue(value);
    },
    cancel() {
      reader.releaseLock();
    },
  });
  return { first, rest };
}

export function argString(
  args: Record<string, unknown>,
  key: string,
): string {
  const v = args[key];
  if (typeof v !== "string") {
    throw new UsageError(`missing argument "${key}"`);
  }
  return v;
}
