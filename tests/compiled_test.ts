import assert from "node:assert/strict";
import { compiledSelf, isCompiled } from "../lib/compiled.ts";
import { selfBinary } from "../lib/daemon/control.ts";
import { binaryToDeploy } from "../lib/deploy.ts";
import { OhcError } from "../lib/errors.ts";

const COMPILED = { standalone: true };
const SOURCE = { standalone: false };

/** An environment without OHCOMMODORE_BINARY, and one with it set. */
const UNSET = () => undefined;
const SET = (k: string) => k === "OHCOMMODORE_BINARY" ? "/opt/ohc" : undefined;

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
  assert.equal(binaryToDeploy(COMPILED, UNSET), Deno.execPath());
  assert.throws(
    () => binaryToDeploy(SOURCE, UNSET),
    (e: Error) => e instanceof OhcError && e.code === "no_binary",
  );
});

Deno.test("selfBinary: the daemon runs this compiled binary, else the installed one", () => {
  assert.equal(selfBinary("/h", COMPILED, UNSET), Deno.execPath());
  assert.equal(
    selfBinary("/h", SOURCE, UNSET),
    "/h/.ohcommodore/bin/ohcommodore",
  );
});

Deno.test("OHCOMMODORE_BINARY wins on both branches", () => {
  for (const build of [COMPILED, SOURCE]) {
    assert.equal(binaryToDeploy(build, SET), "/opt/ohc");
    assert.equal(selfBinary("/h", build, SET), "/opt/ohc");
  }
});
