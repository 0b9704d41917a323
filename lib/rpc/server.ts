import { toErrorInfo } from "../errors.ts";
import { type RpcHandlers, serveOne, splitFirstLine } from "./stream.ts";
export type { RpcContext, RpcHandler, RpcHandlers } from "./stream.ts";
export { argString } from "./stream.ts";

/** Operations the daemon owns: `_rpc` passes them through to its socket. */
export const DAEMON_OPS =
  /^(inbox|link|daemon)\.|^voyage\.(create|list|status|tasks|events|get|stop|ships_gone|purge|retry_tasks|add_tasks|add_ships)$/;

/**
 * `ohcommodore _rpc`: serves one request from stdin on stdout. Errors travel
 * in the protocol, so the exit code is 0.
 */
export async function serveStdio(
  load: () => Promise<RpcHandlers>,
): Promise<number> {
  const { first, rest } = await splitFirstLine(Deno.stdin.readable);
  const line = new TextEncoder().encode(first + "\n");
  let op = "";
  try {
    op = JSON.parse(first)?.op ?? "";
  } catch { /* serveOne reports it */ }
  if (DAEMON_OPS.test(op)) {
    const { proxyToDaemon } = await import("../daemon/client.ts");
    try {
      await proxyToDaemon(
        line,
        rest,
        Deno.stdout.writable,
        op === "link.attach",
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
