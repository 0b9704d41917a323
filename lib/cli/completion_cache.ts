/**
 * The ship names and voyage ids shell completion offers: written, one per
 * line, by the commands that list them anyway, so a TAB reads a file
 * instead of asking the flagship.
 */
import { writeFileAtomic } from "../state/atomic.ts";
import { remotePaths } from "../state/paths.ts";

export type CachedKind = "ships" | "voyages";

/** Home-relative, so the completion script can find it under $HOME. */
export const cacheFile = (kind: CachedKind) =>
  remotePaths.completionCache(kind);

/** Best effort: completion is a convenience, never a reason to fail. */
export async function rememberNames(
  kind: CachedKind,
  names: string[],
  home: string,
): Promise<void> {
  const text = names.length ? names.join("\n") + "\n" : "";
  await writeFileAtomic(`${home}/${cacheFile(kind)}`, text, 0o600)
    .catch(() => {});
}
