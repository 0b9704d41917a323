import { UsageError } from "../errors.ts";
import { LocalProvider } from "./local.ts";
import type { Provider, ProviderSettings } from "./types.ts";

/** The provider for stored settings. */
export function providerFor(s: ProviderSettings): Provider {
  switch (s.kind) {
    case "local":
      return new LocalProvider(s.root);
    case "exedev":
    case "sprites":
      throw new UsageError(
        `the ${s.kind} provider is not available in this version yet; use --provider local`,
      );
  }
}
