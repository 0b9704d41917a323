/**
 * The role implementations the CLI acts through (lib/cli/backends.ts),
 * each imported only when a command needs it: the laptop's (local.ts) and
 * the flagship's own (commodore.ts).
 */
import type { Backends } from "../lib/cli/backends.ts";
import type { ExeDevProvider } from "../lib/providers/exedev.ts";

export const backends: Backends = {
  async laptop(home) {
    const local = await import("./local.ts");
    return {
      requireConfig: () => local.requireConfig(home),
      fleet: (c) => new local.RemoteFleet(c, home),
      transport: (c) => local.flagshipTransport(c, home),
      init: (o) => local.initFlagship(o, home),
      scuttle: (c, onProgress) => local.scuttle(c, home, onProgress),
      exeDevAccount: (c) =>
        (local.laptopProvider(c, home) as ExeDevProvider).whoami(),
    };
  },
  async flagship(self, home) {
    const { Commodore, commodoreHandlers } = await import("./commodore.ts");
    const fleet = new Commodore(self, home);
    return { fleet, handlers: commodoreHandlers(fleet) };
  },
};
