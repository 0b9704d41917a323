/**
 * Ids as people type them: the short form a listing shows (a unique prefix
 * of at least MIN_PREFIX characters) stands for the whole id. An ambiguous
 * prefix names its candidates instead of picking one.
 */
import { UsageError } from "./errors.ts";

export const MIN_PREFIX = 4;
/** Candidates listed for an ambiguous prefix. */
const SHOWN = 10;

/**
 * The one id `given` names, from `find(prefix, limit)` (ids starting with
 * the prefix). `what` names the kind in errors ("message", "voyage").
 */
export async function resolveShortId(
  given: string,
  find: (prefix: string, limit: number) => Promise<string[]>,
  what: string,
): Promise<string> {
  const found = [...new Set(await find(given, SHOWN + 1))];
  if (found.includes(given)) return given;
  if (given.length < MIN_PREFIX) {
    throw new UsageError(
      `no ${what} ${given} (a short id needs ${MIN_PREFIX} characters or more)`,
    );
  }
  if (found.length === 1) return found[0];
  if (found.length === 0) throw new UsageError(`no ${what} ${given}`);
  const more = found.length > SHOWN ? ", …" : "";
  throw new UsageError(
    `${what} id "${given}" is ambiguous: ${
      found.slice(0, SHOWN).join(", ")
    }${more}`,
    "give more characters of the id",
  );
}
