import { OhcError, toErrorInfo, UsageError } from "../errors.ts";
import {
  PROTOCOL_VERSION,
  type RpcEvent,
  type RpcRequest,
} from "./protocol.ts";

export interface RpcContext {
  args: Record<string, unknown>;
  secrets: Record<string, string>;
  emit(ev: Extract<RpcEvent, { type: "progress" | "output" }>): void;
  /** The caller's input after the request line. */
  input: ReadableStream<Uint8Array>;
}

export type RpcHandler = (ctx: RpcContext) => Promise<unknown>;
export type RpcHandlers = Record<string, RpcHandler>;

/**
 * Serves one request from stdin with `handlers`, writing JSON lines to
 * stdout. Returns the process exit code (0 even for a reported error: the
 * error is in the protocol).
 */
export async function serveStdio(
  load: () => Promise<RpcHandlers>,
): Promise<number> {
  const enc = new TextEncoder();
  const out = Deno.stdout;
  let writing = Promise.resolve();
  const send = (ev: RpcEvent) => {
    const line = enc.encode(JSON.stringify(ev) + "\n");
    writing = writing.then(async () => {
      let off = 0;
      while (off < line.length) off += await out.write(line.subarray(off));
    });
    return writing;
  };
  try {
    const { first, rest } = await splitFirstLine(Deno.stdin.readable);
    let req: RpcRequest;
    try {
      req = JSON.parse(first);
    } catch {
      throw new UsageError("_rpc expects one JSON request line on stdin");
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
    });
    await send({ type: "result", data: data ?? null });
  } catch (e) {
    await send({ type: "error", error: toErrorInfo(e) });
  }
  await writing;
  return 0;
}

/** Reads up to the first newline; the remainder stays a stream. */
async function splitFirstLine(
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
  const first = new TextDecoder().decode(concat(chunks));
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

function concat(chunks: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return out;
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
