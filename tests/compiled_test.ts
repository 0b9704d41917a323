import assert from "node:assert/strict";
import { compiledSelf, isCompiled } from "../lib/compiled.ts";
import { selfBinary } from "../lib/daemon/control.ts";
import { binaryToDeploy } from "../lib/deploy.ts";
import { OhcError } from "../lib/errors.ts";

const COMPILED = { standalone: true };
const SOURCE = { standalone: false };

/** Runs fn with OHCOMMODORE_BINARY unset, restoring it after. */
function withoutBinaryEnv<T>(fn: () => T): T {
  const saved = Deno.env.get("OHCOMMODORE_BINARY");
  Deno.env.delete("OHCOMMODORE_BINARY");
  try {
    return fn();
  } finally {
    if (saved !== undefined) Deno.env.set("OHCOMMODORE_BINARY", saved);
  }
}

Deno.test("isCompiled: Deno.build.standalone decides, whatever the module URL says", () => {
  assert.equal(isCompiled(COMPILED), true);
  assert.equal(isCompiled(SOURCE), false);
  assert.equal(isCompiled({}), false);
  // This test runs from source.
  assert.equal(isCompiled(), false);
  assert.equal(compiledSelf(COMPILED), Deno.execPath());
  assert.equal(compiledSelf(SOURCE), null);
});

Deno.test("binaryToDeploy: a compiled binary installs itself; source without OHCOMMODORE_BINARY has nothing", () => {
  withoutBinaryEnv(() => {
    assert.equal(binaryToDeploy(COMPILED), Deno.execPath());
    assert.throws(
      () => binaryToDeploy(SOURCE),
      (e: Error) => e instanceof OhcError && e.code === "no_binary",
    );
  });
});

Deno.test("selfBinary: the daemon runs this compiled binary, else the installed one", () => {
  withoutBinaryEnv(() => {
    assert.equal(selfBinary("/h", COMPILED), Deno.execPath());
    assert.equal(selfBinary("/h", SOURCE), "/h/.ohcommodore/bin/ohcommodore");
  });
});

Deno.test("OHCOMMODORE_BINARY wins on both branches", () => {
  const saved = Deno.env.get("OHCOMMODORE_BINARY");
  Deno.env.set("OHCOMMODORE_BINARY", "/opt/ohc");
  try {
    for (const build of [COMPILED, SOURCE]) {
      assert.equal(binaryToDeploy(build), "/opt/ohc");
      assert.equal(selfBinary("/h", build), "/opt/ohc");
    }
  } finally {
    if (saved === undefined) Deno.env.delete("OHCOMMODORE_BINARY");
    else Deno.env.set("OHCOMMODORE_BINARY", saved);
  }
});
