import assert from "node:assert/strict";
import {
  nameFromRepo,
  parseRepoArg,
  repoBaseName,
  validateName,
} from "../lib/validate.ts";
import { UsageError } from "../lib/errors.ts";

Deno.test("ship names follow exe.dev's rule", () => {
  for (const ok of ["a", "alpha", "web-1", "a1-b2-c3", "x".repeat(52)]) {
    assert.equal(validateName(ok), ok);
  }
  for (
    const bad of [
      "",
      "Alpha",
      "1abc",
      "a--b",
      "a-",
      "-a",
      "a_b",
      "a.b",
      "a b",
      "x".repeat(53),
      "x;rm",
    ]
  ) {
    assert.throws(() => validateName(bad), UsageError, bad);
  }
});

Deno.test("repo specs: names, owner/repo, URLs, git paths, and everything else", async () => {
  assert.deepEqual(parseRepoArg("alpha"), { kind: "none" });
  const gh = parseRepoArg("smithclay/ice_pick.git");
  assert.equal(gh.kind, "github");
  assert.equal(repoBaseName(gh), "ice_pick");
  assert.equal(parseRepoArg("https://example.com/a/b.git").kind, "url");
  assert.equal(parseRepoArg("git@github.com:a/b.git").kind, "url");
  assert.equal(repoBaseName(parseRepoArg("git@github.com:a/b.git")), "b");

  const dir = await Deno.makeTempDir();
  await new Deno.Command("git", { args: ["init", "-q", `${dir}/r`] }).output();
  assert.deepEqual(parseRepoArg(`${dir}/r`), {
    kind: "path",
    path: `${dir}/r`,
  });
  assert.deepEqual(parseRepoArg("./r", dir), {
    kind: "path",
    path: `${dir}/r`,
  });
  for (
    const bad of ["../../etc", "/etc", "x;touch /tmp/p", "", "a/b/c", "$(id)"]
  ) {
    assert.throws(() => parseRepoArg(bad, dir), UsageError, bad);
  }
});

Deno.test("ship names derived from repo names", () => {
  assert.equal(nameFromRepo("My_Service"), "my-service");
  assert.equal(nameFromRepo("web.app"), "web-app");
  assert.equal(nameFromRepo("123"), null);
  assert.equal(nameFromRepo("1st-thing"), "st-thing");
  assert.equal(nameFromRepo("x".repeat(80))?.length, 52);
});
