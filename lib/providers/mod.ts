import { ExeDevProvider } from "./exedev.ts";
import { LocalProvider } from "./local.ts";
import { SpritesProvider } from "./sprites.ts";
import type { Provider, ProviderSettings } from "./types.ts";

/**
 * The provider for stored settings. exedev uses this machine's fleet key
 * (~/.ohcommodore/ssh, see ssh_keys.ts); sprites uses the `sprite` CLI.
 */
export function providerFor(s: ProviderSettings): Provider {
  switch (s.kind) {
    case "local":
      return new LocalProvider(s.root);
    case "exedev":
      return new ExeDevProvider(s);
    case "sprites":
      return new SpritesProvider(s);
  }
}
