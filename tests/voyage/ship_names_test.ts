import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import {
  nextShipNames,
  resolveVoyageShip,
  shipNumber,
} from "../../lib/voyage/flagship/ship_names.ts";

Deno.test("a voyage's ships answer to ocaptain's names: ship-N, shipN, N (from 0), and their own", () => {
  const ships = ["v1-0", "v1-1", "v1-10"];
  for (
    const [given, want] of [
      ["v1-1", "v1-1"],
      ["ship-0", "v1-0"],
      ["ship1", "v1-1"],
      ["10", "v1-10"],
      ["ship-10", "v1-10"],
    ]
  ) assert.equal(resolveVoyageShip("v1", ships, given), want, given);
  for (const bad of ["ship-2", "3", "v1", "ship-", "-1", "1x"]) {
    assert.throws(
      () => resolveVoyageShip("v1", ships, bad),
      (e: Error) =>
        e instanceof UsageError &&
        e.message ===
          `voyage v1 has no ship "${bad}"; its ships: v1-0 (ship-0), v1-1 (ship-1), v1-10 (ship-10)`,
      bad,
    );
  }
});

Deno.test("new ships of a voyage are numbered after every ship it had", () => {
  assert.deepEqual(nextShipNames("v1", [], 3), ["v1-0", "v1-1", "v1-2"]);
  assert.deepEqual(nextShipNames("v1", ["v1-0", "v1-4", "other"], 2), [
    "v1-5",
    "v1-6",
  ]);
  assert.equal(shipNumber("v1", "v1-07"), null);
  assert.equal(shipNumber("v1", "v2-0"), null);
  assert.equal(shipNumber("v1", "v1-12"), 12);
});
