/**
 * What any machine answers before and after it has a role: its identity,
 * and `vm.setup`, which makes a fresh VM a commodore or a captain. Setting
 * up is in vm_setup.ts, loaded only for it: this table is built for every
 * `_rpc` call the machine answers.
 */
import { implement } from "../lib/rpc/ops.ts";
import type { RpcHandlers } from "../lib/rpc/server.ts";
import { parseIdentity, readIdentity } from "../lib/state/identity.ts";
import { VERSION } from "../lib/version.ts";

/** What this machine (its home) answers before and after it has a role. */
export const vmHandlers = (home: string): RpcHandlers =>
  implement("call", {
    "vm.identity": async () => ({
      identity: await readIdentity(home),
      version: VERSION,
    }),

    /** `fleet config set` on this VM: its daemon reloads them by itself. */
    "vm.settings": async (a) => {
      const { settingsArg } = await import("./vm_setup.ts");
      const { writeSettingsFile } = await import("../lib/settings.ts");
      const values = settingsArg(a.settings);
      await writeSettingsFile(values, home);
      return { settings: values };
    },

    "vm.setup": async (_a, ctx) => {
      const wanted = parseIdentity(ctx.args.identity, "setup request");
      const { setup } = await import("./vm_setup.ts");
      if (wanted.provider.kind !== "sprites") {
        return await setup(home, ctx, wanted);
      }
      // cloudinit and a clone can be quiet for longer than a sprite waits
      // before it pauses (which would stop them): hold it meanwhile.
      const { SpriteHold } = await import(
        "../lib/providers/sprites_runtime.ts"
      );
      return await new SpriteHold("ohcommodore-setup", { expireS: 90 }).during(
        () => setup(home, ctx, wanted),
      );
    },
  });
