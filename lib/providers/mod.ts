import { ExeDevProvider } from "./exedev.ts";
import { LocalProvider } from "./local.ts";
import { SpritesProvider } from "./sprites.ts";
import type { Provider, ProviderSettings } from "./types.ts";
import { paths } from "../state/paths.ts";
import { OhcError } from "../errors.ts";

/**
 * The sprites token: on the flagship, the 0600 file `init` brought; on the
 * user's machine, $SPRITE_TOKEN or the `sprite` CLI's login. Looked up the
 * first time the API is called, so commands that never call it pay nothing.
 */
async function spriteToken(org?: string): Promise<string> {
  try {
    const t = (await Deno.readTextFile(`${paths.secrets()}/sprite_token`))
      .trim();
    if (t) return t;
  } catch { /* not the flagship */ }
  const { findSpriteToken, NO_TOKEN_HINT } = await import(
    "./sprites_token.ts"
  );
  const found = await findSpriteToken({ org });
  if (!found) {
    throw new OhcError(
      "sprites_no_token",
      `no sprites token found${org ? ` for org ${org}` : ""}`,
      NO_TOKEN_HINT,
    );
  }
  return found.token;
}

/**
 * The provider for stored settings. exedev uses this machine's fleet key
 * (~/.ohcommodore/ssh, see ssh_keys.ts); sprites the HTTP API with the
 * token above.
 */
export function providerFor(s: ProviderSettings): Provider {
  switch (s.kind) {
    case "local":
      return new LocalProvider(s.root);
    case "exedev":
      return new ExeDevProvider(s);
    case "sprites":
      return new SpritesProvider(s, { token: () => spriteToken(s.org) });
  }
}
