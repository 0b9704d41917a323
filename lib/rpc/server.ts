import { toErrorInfo } from "../errors.ts";
import { opSpec } from "./ops.ts";
import { type RpcHandlers, serveOne, splitFirstLine } from "./stream.ts";
export type { RpcContext, RpcHandler, RpcHandlers } from "./stream.ts";
export { argString } from "./stream.ts";

/**
 * `ohcommodore _rpc`: serves one request from stdin on stdout. Errors travel
 * in the protocol, so the exit code is 0.
 */
export async function serveStdio(
  home: string,
  load: () => Promise<RpcHandlers>,
): Promise<number> {
  const { first, rest } = await splitFirstLine(Deno.stdin.readable);
  const line = new TextEncoder().encode(first + "\n");
  let op = "";
  try {
    op = JSON.parse(first)?.op ?? "";
  } catch { /* serveOne reports it */ }
  // The registry says who owns it: the daemon's are passed through to its
  // socket; the rest are served here.
  const spec = opSpec(op);
  if (spec?.owner === "daemon") {
    const { proxyToDaemon } = await import("../daemon/client.ts");
    try {
      await proxyToDaemon(
        home,
        line,
        rest,
        Deno.stdout.writable,
        spec.session,
      );
    } catch (e) {
      const ev = { type: "error", error: toErrorInfo(e) };
      await Deno.stdout.write(
        new TextEncoder().encode(JSON.stringify(ev) + "\n"),
      );
    }
    return 0;
  }
  const input = new ReadableStream<Uint8Array>({
    start(c) {
      c.enqueue(line);
    },
    async pull(c) {
      const r = rest.getReader();
      const { value, done } = await r.read();
      r.releaseLock();
      if (done) c.close();
      else c.enqueue(value);
    },
  });
  await serveOne(input, Deno.stdout.writable, load);
  return 0;
}
