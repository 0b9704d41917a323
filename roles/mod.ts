import type { RpcHandlers } from "../lib/rpc/server.ts";
import { wrapOps } from "../lib/rpc/ops.ts";
import { readIdentity } from "../lib/state/identity.ts";
import { vmHandlers } from "./vm.ts";

/** The RPC operations this machine answers, by its role. */
export async function handlersForRole(home: string): Promise<RpcHandlers> {
  const id = await readIdentity(home);
  const vm = vmHandlers(home);
  if (id?.role === "commodore") {
    const { Commodore, commodoreHandlers } = await import("./commodore.ts");
    const ops = commodoreHandlers(new Commodore(id, home));
    return {
      ...vm,
      ...(id.provider.kind === "sprites" ? await holdWhileLong(ops) : ops),
    };
  }
  if (id?.role === "captain") {
    const { captainHandlers } = await import("./captain.ts");
    return { ...vm, ...captainHandlers(id, home) };
  }
  return vm;
}

/**
 * On a sprite, the flagship holds itself awake while it serves an operation
 * that can be quiet for longer than a sprite waits before it pauses (the
 * registry marks them `long`: making a ship, sailing, a user's command):
 * the caller hears nothing meanwhile, and a paused flagship would drop the
 * call.
 */
async function holdWhileLong(ops: RpcHandlers): Promise<RpcHandlers> {
  const { SpriteHold } = await import("../lib/providers/sprites_runtime.ts");
  // Killed with its session, this process would leave its hold behind:
  // a short one.
  const hold = new SpriteHold(`ohcommodore-rpc-${Deno.pid}`, { expireS: 90 });
  return wrapOps(
    ops,
    (spec) => spec.long,
    (h) => (ctx) => hold.during(() => h(ctx)),
  );
}
