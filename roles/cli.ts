/**
 * The role implementations the CLI acts through (lib/cli/backends.ts),
 * each imported only when a command needs it: the laptop's (local.ts) and
 * the flagship's own (commodore.ts).
 */
import type { Backends } from "../lib/cli/backends.ts";
import type { ExeDevProvider } from "../lib/providers/exedev.ts";

export const backends: Backends = {
  async laptop() {
    const local = await import("./local.ts");
    return {
      requireConfig: local.requireConfig,
      fleet: (c) => new local.RemoteFleet(c),
      transport: local.flagshipTransport,
      init: local.initFlagship,
      scuttle: local.scuttle,
      exeDevAccount: (c) =>
        (local.laptopProvider(c) as ExeDevProvider).whoami(),
    };
  },
  async flagship(self) {
    const { Commodore, commodoreHandlers } = await import("./commodore.ts");
    const fleet = new Commodore(self);
    return { fleet, handlers: commodoreHandlers(fleet) };
  },
};
