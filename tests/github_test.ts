/**
 * checkRepoAccess against the fake GitHub API (a real HTTP server on
 * loopback, tests/e2e/emulators/github.ts).
 */
import assert from "node:assert/strict";
import { checkRepoAccess, parseRepoSlug } from "../lib/github.ts";
import { OhcError, UsageError } from "../lib/errors.ts";
import { startFakeGitHub } from "./e2e/emulators/github.ts";

async function rejectsWith(
  p: Promise<unknown>,
  check: (e: unknown) => boolean,
): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(check(e), `unexpected error: ${(e as Error)?.stack ?? e}`);
    return true;
  });
}

Deno.test("github: owner/repo slugs", () => {
  assert.deepEqual(parseRepoSlug("acme/widgets"), {
    owner: "acme",
    repo: "widgets",
  });
  assert.deepEqual(parseRepoSlug("acme/w.x-y_z.git"), {
    owner: "acme",
    repo: "w.x-y_z",
  });
  for (
    const bad of ["acme", "acme/", "/w", "a/b/c", "ac me/w", "acme/..", "-x/y"]
  ) {
    assert.throws(() => parseRepoSlug(bad), UsageError, bad);
  }
});

Deno.test("github: checkRepoAccess answers 200, 401, 404 and network failure clearly", async (t) => {
  const dir = await Deno.makeTempDir({ prefix: "ohc-gh-" });
  const gh = await startFakeGitHub({ dir });
  try {
    await gh.addRepo("acme", "widgets", { "README.md": "hi\n" }, {
      private: true,
    });
    await gh.addRepo("acme", "public-thing", { "README.md": "hi\n" });
    gh.addToken("tok-read", {
      login: "alice",
      repos: { "acme/widgets": "pull" },
    });
    gh.addToken("tok-none", { login: "bob" });
    const apiBase = gh.url;

    await t.step("200: the token can read the private repo", async () => {
      const r = await checkRepoAccess("acme", "widgets", "tok-read", {
        apiBase,
      });
      assert.equal(r.full_name, "acme/widgets");
      assert.equal(r.private, true);
      assert.equal(r.permissions?.pull, true);
      assert.equal(r.permissions?.push, false);
      const last = gh.requests.at(-1)!;
      assert.deepEqual(last, {
        method: "GET",
        path: "/repos/acme/widgets",
        auth: "Bearer tok-read",
      });
      // Any token that works can read a public repo.
      const pub = await checkRepoAccess("acme", "public-thing", "tok-none", {
        apiBase,
      });
      assert.equal(pub.private, false);
    });

    await t.step("401: a bad token", async () => {
      await rejectsWith(
        checkRepoAccess("acme", "widgets", "tok-wrong", { apiBase }),
        (e) =>
          e instanceof OhcError && e.code === "github_bad_token" &&
          /401/.test(e.message) && !e.message.includes("tok-wrong") &&
          /GH_TOKEN/.test(e.hint ?? ""),
      );
    });

    await t.step("404: a token without access, or no such repo", async () => {
      for (
        const [repo, tok] of [["widgets", "tok-none"], ["nope", "tok-read"]]
      ) {
        await rejectsWith(
          checkRepoAccess("acme", repo, tok, { apiBase }),
          (e) =>
            e instanceof OhcError && e.code === "github_repo_not_found" &&
            e.message ===
              `GitHub repository acme/${repo} was not found, or the token cannot read it`,
        );
      }
    });

    await t.step("the API base comes from OHCOMMODORE_GITHUB_API", async () => {
      const env = (k: string) =>
        k === "OHCOMMODORE_GITHUB_API" ? apiBase + "/" : undefined;
      const r = await checkRepoAccess("acme", "widgets", "tok-read", { env });
      assert.equal(r.full_name, "acme/widgets");
    });

    await t.step("bad input is a usage error, with no request", async () => {
      const n = gh.requests.length;
      await rejectsWith(
        checkRepoAccess("acme", "widgets", "", { apiBase }),
        (e) => e instanceof UsageError && /GH_TOKEN/.test(e.message),
      );
      await rejectsWith(
        checkRepoAccess("acme", "a/b", "tok-read", { apiBase }),
        (e) => e instanceof UsageError,
      );
      assert.equal(gh.requests.length, n);
    });
  } finally {
    await gh.stop();
    await Deno.remove(dir, { recursive: true });
  }

  await t.step("network failure: GitHub unreachable", async () => {
    const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = (l.addr as Deno.NetAddr).port;
    l.close();
    await rejectsWith(
      checkRepoAccess("acme", "widgets", "tok-read", {
        apiBase: `http://127.0.0.1:${port}`,
      }),
      (e) =>
        e instanceof OhcError && e.code === "github_unreachable" &&
        e.message.startsWith(
          `cannot reach the GitHub API at http://127.0.0.1:${port} to check acme/widgets: `,
        ) && !e.message.includes("tok-read"),
    );
  });
});
