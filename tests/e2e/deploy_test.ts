/**
 * Where VMs get their binary, through the real CLI: the laptop sends it to
 * the flagship only; ships get the flagship's copy from the flagship.
 */
import assert from "node:assert/strict";
import { sha256Hex } from "../../lib/deploy.ts";
import { localFleet, ohcOk } from "../helpers/cli.ts";

const bin = (home: string, vm: string) =>
  `${home}/.ohcommodore/local/${vm}/.ohcommodore/bin/ohcommodore`;

Deno.test("ships get their binary from the flagship, never from the laptop", async () => {
  await using f = await localFleet();
  // The laptop no longer has a binary to send: ship create must not need one.
  const gone = { OHCOMMODORE_BINARY: `${f.home}/no-such-binary` };
  await ohcOk(f.home, ["ship", "create", "alpha", "beta"], { env: gone });
  const flagship = await sha256Hex(
    await Deno.readFile(bin(f.home, "flagship")),
  );
  for (const s of ["alpha", "beta"]) {
    assert.equal(
      await sha256Hex(await Deno.readFile(bin(f.home, s))),
      flagship,
    );
  }
  const r = await ohcOk(f.home, ["ship", "exec", "alpha", "--", "echo", "hi"], {
    env: gone,
  });
  assert.equal(r.stdout, "hi\n");
});
