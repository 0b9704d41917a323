/**
 * A ship: one checkout, its inbox and its agent. What it answers for a
 * voyage is the flagship's `captain.session` (lib/voyage/ship/session.ts),
 * loaded when a session opens, not for every call this machine answers.
 */
import { implement } from "../lib/rpc/ops.ts";
import type { RpcHandlers } from "../lib/rpc/server.ts";
import type { Identity } from "../lib/state/identity.ts";

export function captainHandlers(self: Identity, home: string): RpcHandlers {
  return implement("call", {
    "captain.session": async (_args, ctx) => {
      const { serveSession } = await import("../lib/voyage/ship/session.ts");
      return await serveSession(self, home, ctx);
    },
  });
}
