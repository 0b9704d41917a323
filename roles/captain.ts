/**
 * A ship: one checkout, its inbox and its agent. Its RPC surface grows with
 * the inbox and voyages; today a ship answers only the common VM operations.
 */
import type { RpcHandlers } from "../lib/rpc/server.ts";
import type { Identity } from "../lib/state/identity.ts";

export function captainHandlers(_self: Identity): RpcHandlers {
  return {};
}
