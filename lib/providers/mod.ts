import { ExeDevProvider } from "./exedev.ts";
import { LocalProvider } from "./local.ts";
import { SpritesProvider } from "./sprites.ts";
import type { Provider, ProviderSettings } from "./types.ts";
import { paths } from "../state/paths.ts";

/**
 * The sprite CLI's token: the user's own on the laptop; on the flagship, the
 * one `init` brought in a 0600 file. It reaches the CLI through its
 * environment, never its command line.
 */
function spriteCredentials(): Record<string, string> | undefined {
  if (Deno.env.get("SPRITE_TOKEN")) return undefined;
  try {
    const token = Deno.readTextFileSync(`${paths.secrets()}/sprite_token`)
      .trim();
    return token ? { SPRITE_TOKEN: token } : undefined;
  } catch {
    return undefined;
  }
}

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
      return new SpritesProvider(s, { env: spriteCredentials() });
  }
}
