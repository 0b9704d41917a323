import type { RpcHandlers } from "../lib/rpc/server.ts";
import { readIdentity } from "../lib/state/identity.ts";
import { vmHandlers } from "./vm.ts";

/** The RPC operations this machine answers, by its role. */
export async function handlersForRole(): Promise<RpcHandlers> {
  const id = await readIdentity();
  if (id?.role === "commodore") {
    const { Commodore, commodoreHandlers } = await import("./commodore.ts");
    const ops = commodoreHandlers(new Commodore(id));
    if (id.provider.kind === "sprites") await holdWhileLong(ops);
    return { ...vmHandlers, ...ops };
  }
  if (id?.role === "captain") {
    const { captainHandlers } = await import("./captain.ts");
    return { ...vmHandlers, ...captainHandlers(id) };
  }
  return vmHandlers;
}

/**
 * On a sprite, the flagship holds itself awake while it serves an operation
 * that can be quiet for longer than a sprite waits before it pauses (making
 * a ship, sailing, a user's command): the caller hears nothing meanwhile,
 * and a paused flagship would drop the call.
 */
const LONG = [
  "ship.create",
  "ship.destroy",
  "ship.exec",
  "fleet.sink",
  "fleet.recover",
  "voyage.sail",
  "voyage.sink",
  "voyage.logs",
  "voyage.bundle",
];

async function holdWhileLong(ops: RpcHandlers): Promise<void> {
  const { SpriteHold } = await import("../lib/providers/sprites_runtime.ts");
  // Killed with its session, this process would leave its hold behind:
  // a short one.
  const hold = new SpriteHold(`ohcommodore-rpc-${Deno.pid}`, { expireS: 90 });
  for (const op of LONG) {
    const h = ops[op];
    if (h) ops[op] = (ctx) => hold.during(() => h(ctx));
  }
}
