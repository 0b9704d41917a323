/**
 * The fleet's ships as the flagship's registry holds them: found by name
 * (or a unique prefix), sorted, and counted against the provider's limit.
 */
import { OhcError, UsageError } from "../errors.ts";
import type { ShipRecord } from "../state/fleet.ts";

/**
 * Refuses, before anything is created, a fleet that needs more VMs at once
 * than the plan runs: a voyage needs the flagship and every ship running.
 */
export function overLimit(
  limit: number | undefined,
  ships: number,
  adding: number,
  what: string,
): void {
  if (limit === undefined || 1 + ships + adding <= limit) return;
  throw new UsageError(
    `cannot create ${what}: the sprites plan runs at most ${limit} sprites at once (running_limit ${limit}), and the flagship and ${ships} ship${
      ships === 1 ? "" : "s"
    } already make ${1 + ships}`,
    "destroy a ship, or move to a plan that runs more sprites at once",
  );
}

export function sortShips(ships: ShipRecord[]): ShipRecord[] {
  return ships.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Exact name, or a unique prefix (not for `exact`: commands that destroy);
 * an ambiguous prefix lists the matches.
 */
export function resolveShip(
  ships: ShipRecord[],
  nameOrPrefix: string,
  o: { ready?: boolean; exact?: boolean } = {},
): ShipRecord {
  const mustBeReady = o.ready === true;
  const exact = ships.find((s) => s.name === nameOrPrefix);
  const prefixed = ships.filter((s) => s.name.startsWith(nameOrPrefix));
  const matches = exact ? [exact] : o.exact ? [] : prefixed;
  if (matches.length === 0 || nameOrPrefix === "") {
    const near = o.exact && nameOrPrefix !== "" && prefixed.length > 0
      ? ` (this command takes a whole name: ${
        prefixed.map((s) => s.name).join(", ")
      })`
      : "";
    throw new UsageError(`no ship named "${nameOrPrefix}"${near}`);
  }
  if (matches.length > 1) {
    throw new UsageError(
      `"${nameOrPrefix}" matches ${matches.length} ships: ${
        matches.map((s) => s.name).join(", ")
      }`,
    );
  }
  const ship = matches[0];
  if (mustBeReady && (ship.status === "creating" || !ship.ssh_dest)) {
    throw new OhcError(
      "not_ready",
      `ship "${ship.name}" is still being created`,
    );
  }
  return ship;
}
