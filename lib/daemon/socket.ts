/**
 * The daemon's Unix socket, as a connection or nothing: what both the
 * client (calls) and control (is it answering?) need, kept apart from
 * either so neither imports the other.
 */
import { paths } from "../state/paths.ts";

/** Connects to this machine's daemon socket, or null if nobody answers. */
export async function connectDaemon(
  home: string,
): Promise<Deno.UnixConn | null> {
  try {
    return await Deno.connect({
      transport: "unix",
      path: paths.daemonSocket(home),
    });
  } catch {
    return null;
  }
}
