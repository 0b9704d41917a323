import { OhcError } from "../errors.ts";
import { paths } from "../state/paths.ts";
import { type CallOptions, exchange, unwrap } from "../rpc/stream.ts";
import { connectDaemon } from "./socket.ts";
export { connectDaemon };

/** Connects to the daemon, starting it first if nobody answers. */
async function connectOrStart(
  home: string,
  remote = false,
): Promise<Deno.UnixConn> {
  let conn = await connectDaemon(home);
  if (!conn) {
    const { ensureDaemon } = await import("./control.ts");
    await ensureDaemon(home, { remote });
    conn = await connectDaemon(home);
  }
  if (!conn) {
    const { thisMachine } = await import("./control.ts");
    const m = await thisMachine(home);
    throw new OhcError(
      "daemon_down",
      `the daemon on ${m.label} is not answering`,
      `see ${paths.daemonLog(home)} there, and run: ${m.run("daemon restart")}`,
    );
  }
  return conn;
}

/**
 * Calls `op` on this machine's daemon, starting it first if it is not
 * running (commands that need it never ask the user to start it).
 */
export async function daemonCall<T = unknown>(
  op: string,
  args: Record<string, unknown> = {},
  opts: CallOptions & { home: string },
): Promise<T> {
  const conn = await connectOrStart(opts.home);
  try {
    // Our side stays open until the answer: Deno closes a whole socket
    // when its reading half sees EOF, so a half-close would cut the answer.
    const final = await exchange(
      conn.writable,
      conn.readable,
      op,
      args,
      opts,
      () => Promise.resolve(),
    );
    if (!final) {
      throw new OhcError(
        "daemon_down",
        "the daemon closed the connection without answering",
        `see ${paths.daemonLog(opts.home)}`,
      );
    }
    return unwrap<T>(final);
  } finally {
    try {
      conn.close();
    } catch { /* already closed */ }
  }
}

/**
 * Pipes a whole RPC exchange (request line, input, answer) between stdio
 * and the daemon: `_rpc` uses it for daemon-owned operations so the far side
 * of a transport reaches the daemon without opening its database.
 */
export async function proxyToDaemon(
  home: string,
  firstLine: Uint8Array,
  rest: ReadableStream<Uint8Array>,
  out: WritableStream<Uint8Array>,
  closeOnInputEnd: boolean,
): Promise<void> {
  const c = await connectOrStart(home, true);
  const done = (async () => {
    const w = c.writable.getWriter();
    await w.write(firstLine);
    for await (const chunk of rest) await w.write(chunk);
    w.releaseLock();
  })().catch(() => {});
  // A link lasts as long as its caller's input; other calls end when the
  // daemon has answered (see daemonCall on why we never half-close).
  if (closeOnInputEnd) {
    void done.then(() => {
      try {
        c.close();
      } catch { /* closed */ }
    });
  }
  await c.readable.pipeTo(out).catch(() => {});
}
