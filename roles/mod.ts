import type { RpcHandlers } from "../lib/rpc/server.ts";
import { readIdentity } from "../lib/state/identity.ts";
import { vmHandlers } from "./vm.ts";

/** The RPC operations this machine answers, by its role. */
export async function handlersForRole(): Promise<RpcHandlers> {
  const id = await readIdentity();
  if (id?.role === "commodore") {
    const { Commodore, commodoreHandlers } = await import("./commodore.ts");
    return { ...vmHandlers, ...commodoreHandlers(new Commodore(id)) };
  }
  if (id?.role === "captain") {
    const { captainHandlers } = await import("./captain.ts");
    return { ...vmHandlers, ...captainHandlers(id) };
  }
  return vmHandlers;
}
