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
async function spriteToken(on: ProviderHome, org?: string): Promise<string> {
  try {
    const t =
      (await Deno.readTextFile(`${paths.secrets(on.home)}/sprite_token`))
        .trim();
    if (t) return t;
  } catch { /* not the flagship */ }
  const { findSpriteToken, NO_TOKEN_HINT } = await import(
    "./sprites_token.ts"
  );
  const found = await findSpriteToken({ org, home: on.home, env: on.env });
  if (!found) {
    throw new OhcError(
      "sprites_no_token",
      `no sprites token found${org ? ` for org ${org}` : ""}`,
      NO_TOKEN_HINT,
    );
  }
  return found.token;
}

/** Whose provider: the machine's home and, for a token, its environment. */
export interface ProviderHome {
  home: string;
  /** Where a sprites token may be found; default the process's. */
  env?: Record<string, string>;
}

/** How the user's own machine reaches the provider (config.json). */
export interface LaptopSsh {
  /** `init --identity`: offer this key only; else the user's ssh setup. */
  identityFile?: string;
}

/**
 * What of the laptop's settings the flagship keeps: an ssh config file is
 * the laptop's (a VM reaches exe.dev with its own system config and key).
 */
export function vmProviderSettings(s: ProviderSettings): ProviderSettings {
  if (s.kind !== "exedev") return s;
  const { ssh_config: _laptops, ...rest } = s;
  return rest;
}

/**
 * The provider for stored settings. On a VM (the flagship), exedev uses the
 * machine's own fleet key (~/.ohcommodore/ssh, see ssh_keys.ts); on the
 * laptop (`laptop` given) the user's OpenSSH setup, as `ssh exe.dev` does.
 * sprites uses the HTTP API with the token above.
 */
export function providerFor(
  s: ProviderSettings,
  on: ProviderHome,
  laptop?: LaptopSsh,
): Provider {
  switch (s.kind) {
    case "local":
      return new LocalProvider(s.root);
    case "exedev":
      return new ExeDevProvider(
        s,
        laptop === undefined
          ? { home: on.home }
          : laptop.identityFile !== undefined
          ? { home: on.home, identityFile: laptop.identityFile }
          : { home: on.home, userSsh: true },
      );
    case "sprites":
      return new SpritesProvider(s, { token: () => spriteToken(on, s.org) });
  }
}
