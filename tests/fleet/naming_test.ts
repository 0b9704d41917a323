import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import {
  checkVmName,
  FLEET_ID_RE,
  fleetTag,
  isFleetVm,
  namesAreGlobal,
  newFleetId,
  vmName,
} from "../../lib/fleet/naming.ts";
import { exeDevNewNameError } from "../../lib/providers/exedev_lobby.ts";

Deno.test("naming: a fleet id is a letter and 5 of [a-z0-9], drawn at random", () => {
  const ids = new Set<string>();
  for (let i = 0; i < 200; i++) {
    const id = newFleetId();
    assert.match(id, FLEET_ID_RE);
    // Any id makes valid exe.dev names, however short the machine's name.
    assert.equal(exeDevNewNameError(`${id}-a`), null, id);
    ids.add(id);
  }
  assert.ok(ids.size > 190, `only ${ids.size} distinct ids in 200`);
  assert.equal(fleetTag("k3x9q2"), "ohcommodore-k3x9q2");
});

Deno.test("naming: exe.dev names derive from the fleet id; local and sprites keep the short name", () => {
  assert.equal(namesAreGlobal("exedev"), true);
  assert.equal(vmName("exedev", "k3x9q2", "flagship"), "k3x9q2-flagship");
  assert.equal(vmName("exedev", "k3x9q2", "alpha"), "k3x9q2-alpha");
  // A fleet made before fleet ids keeps its plain names.
  assert.equal(vmName("exedev", null, "alpha"), "alpha");
  assert.equal(vmName("exedev", undefined, "alpha"), "alpha");
  for (const kind of ["local", "sprites"] as const) {
    assert.equal(namesAreGlobal(kind), false);
    assert.equal(vmName(kind, "k3x9q2", "alpha"), "alpha");
    assert.equal(checkVmName(kind, "k3x9q2", "x"), "x");
  }
});

Deno.test("naming: exe.dev's 5-52 characters and reservations apply to the derived name (exit 2)", () => {
  // 6 + 1 + 45 = 52: the longest ship name a fleet id leaves.
  const longest = "s".repeat(45);
  assert.equal(checkVmName("exedev", "k3x9q2", longest), `k3x9q2-${longest}`);
  assert.throws(
    () => checkVmName("exedev", "k3x9q2", `${longest}s`),
    (e: Error) =>
      e instanceof UsageError &&
      e.message ===
        `ship name "${longest}s" is too long for exedev: its VM name k3x9q2-${longest}s would be 53 characters; the limit is 52 (so 45 for the ship name)`,
  );
  // Short names are fine once the id is in front; alone they are not.
  assert.equal(checkVmName("exedev", "k3x9q2", "ab"), "k3x9q2-ab");
  assert.throws(
    () => checkVmName("exedev", null, "ab", "flagship name"),
    (e: Error) =>
      e instanceof UsageError &&
      /^flagship name "ab": invalid VM name, must be 5-52 characters/.test(
        e.message,
      ),
  );
  // Port-like endings and "exelet" are reserved by exe.dev whatever the id.
  for (const name of ["p80", "web-port8080", "my-exelet", "exe-let"]) {
    assert.throws(
      () => checkVmName("exedev", "k3x9q2", name),
      (e: Error) =>
        e instanceof UsageError &&
        e.message.startsWith(
          `ship name "${name}" cannot name an exe.dev VM: exe.dev reserves k3x9q2-${name}`,
        ),
      name,
    );
    // Where names are private, the same ship name is fine.
    assert.equal(checkVmName("local", "k3x9q2", name), name);
  }
  assert.equal(checkVmName("exedev", "k3x9q2", "ship-1"), "k3x9q2-ship-1");
  assert.equal(checkVmName("exedev", "k3x9q2", "p80x"), "k3x9q2-p80x");
});

Deno.test("naming: sweeps see only the fleet's VMs where names are global", () => {
  assert.equal(isFleetVm("exedev", "k3x9q2", "k3x9q2-alpha"), true);
  assert.equal(isFleetVm("exedev", "k3x9q2", "k3x9q2x-alpha"), false);
  assert.equal(isFleetVm("exedev", "k3x9q2", "someone-elses-vm"), false);
  assert.equal(isFleetVm("exedev", "k3x9q2", "alpha"), false);
  // Without a fleet id (an old fleet) and on private names: all of them,
  // told apart by the identity each VM answers.
  assert.equal(isFleetVm("exedev", null, "alpha"), true);
  assert.equal(isFleetVm("sprites", "k3x9q2", "alpha"), true);
});
