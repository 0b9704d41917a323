import assert from "node:assert/strict";
import * as node from "node:path";
import { basename, dirname, join, normalize, resolve } from "../lib/path.ts";

const CASES = [
  "/",
  "/a",
  "/a/b/",
  "a",
  "a/b",
  "./a",
  "../a",
  "a/../..",
  "/a/../..",
  "/a/./b//c",
  "a/b/../../..",
  "",
  ".",
  "..",
  "/x/y.duckdb",
];

Deno.test("lib/path: normalize, join, resolve, basename and dirname answer as node:path does", () => {
  for (const p of CASES) {
    // node keeps a trailing slash; nothing here relies on one.
    assert.equal(normalize(p), node.normalize(p).replace(/(.)\/$/, "$1"), p);
    assert.equal(basename(p), node.basename(p), `basename ${p}`);
    assert.equal(dirname(p), node.dirname(p), `dirname ${p}`);
    assert.equal(resolve(p), node.resolve(p), `resolve ${p}`);
    for (const q of CASES) {
      assert.equal(
        join(p, q),
        node.join(p, q).replace(/(.)\/$/, "$1"),
        `join ${p} ${q}`,
      );
      assert.equal(resolve(p, q), node.resolve(p, q), `resolve ${p} ${q}`);
    }
  }
  assert.equal(resolve("/h", ".ohcommodore", ".env"), "/h/.ohcommodore/.env");
});
