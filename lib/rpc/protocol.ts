import type { ErrorInfo } from "../errors.ts";

/**
 * Machine-to-machine calls: `ohcommodore _rpc` reads one JSON request line on
 * stdin (anything after that line is the operation's own input stream) and
 * answers with JSON lines: any number of events, then exactly one `result`
 * or `error`. Secrets ride in `secrets`, so they are never in any argv.
 */
export interface RpcRequest {
  v: 1;
  op: string;
  args?: Record<string, unknown>;
  secrets?: Record<string, string>;
}

export type RpcEvent =
  | { type: "progress"; message: string; subject?: string }
  | { type: "output"; stream: "stdout" | "stderr"; data: string } // base64
  | { type: "link"; msg: unknown } // one link message (see lib/link/)
  // The answer to request `n` of a session op (one that reads requests
  // from its input until it closes, e.g. captain.session)
  | { type: "reply"; n: number; data?: unknown; error?: ErrorInfo }
  | { type: "result"; data: unknown }
  | { type: "error"; error: ErrorInfo };

export const PROTOCOL_VERSION = 1;
