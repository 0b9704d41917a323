/**
 * What a voyage id is, defined once. `voyage sail` makes them, and an id
 * names a git branch (`voyage/<id>`) and paths on the flagship and the
 * ships (`.ohcommodore/voyages/<id>`, `~/voyage-<id>`), so it holds only
 * what is safe in all of them: lowercase letters, digits and '-', starting
 * with a letter or digit, at most 64.
 */
import { UsageError } from "../errors.ts";

const VOYAGE_ID_RE = /^[a-z0-9][a-z0-9-]{0,63}$/;

export function isVoyageId(id: unknown): id is string {
  return typeof id === "string" && VOYAGE_ID_RE.test(id);
}

/** The id, or a UsageError (exit 2) naming `where` it came from. */
export function checkVoyageId(id: unknown, where = ""): string {
  if (isVoyageId(id)) return id;
  throw new UsageError(
    `${where ? `${where}: ` : ""}invalid voyage id ${JSON.stringify(id)}`,
    "a voyage id is lowercase letters, digits and '-' (at most 64), starting with a letter or digit",
  );
}

/** A fresh id: `v` and six random base-36 characters. */
export function newVoyageId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return "v" + [...bytes].map((b) => alphabet[b % 36]).join("");
}
