/**
 * A voyage's ships and what people call them. The flagship names them
 * `<voyage id>-<n>`, counting from 0 as ocaptain's `ship-0`, `ship-1` do;
 * so `ship-0`, `ship0` and `0` mean the same ship as its real name.
 */
import { UsageError } from "../../errors.ts";

/** The voyage's n-th ship (0-based). */
export const voyageShipName = (voyage: string, n: number): string =>
  `${voyage}-${n}`;

/** Its number, when `ship` is named as the voyage's ships are; else null. */
export function shipNumber(voyage: string, ship: string): number | null {
  const prefix = `${voyage}-`;
  if (!ship.startsWith(prefix)) return null;
  const n = ship.slice(prefix.length);
  return /^(0|[1-9]\d{0,5})$/.test(n) ? Number(n) : null;
}

/** Names for `count` more ships of the voyage, after those it has had. */
export function nextShipNames(
  voyage: string,
  had: string[],
  count: number,
): string[] {
  const first = Math.max(-1, ...had.map((s) => shipNumber(voyage, s) ?? -1)) +
    1;
  return Array.from(
    { length: count },
    (_, i) => voyageShipName(voyage, first + i),
  );
}

/** How a ship is listed for people: `v1abc-0 (ship-0)`. */
function shown(voyage: string, ship: string): string {
  const n = shipNumber(voyage, ship);
  return n === null ? ship : `${ship} (ship-${n})`;
}

/**
 * The ship of `ships` that `given` names: its real name, or ocaptain's
 * `ship-N` / `shipN` / `N`. A UsageError listing them when none is.
 */
export function resolveVoyageShip(
  voyage: string,
  ships: string[],
  given: string,
): string {
  if (ships.includes(given)) return given;
  const m = /^(?:ship-?)?(\d{1,6})$/.exec(given);
  if (m) {
    const name = voyageShipName(voyage, Number(m[1]));
    if (ships.includes(name)) return name;
  }
  throw new UsageError(
    `voyage ${voyage} has no ship "${given}"; its ships: ${
      ships.length ? ships.map((s) => shown(voyage, s)).join(", ") : "none"
    }`,
  );
}
