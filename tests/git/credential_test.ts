/** lib/git/credential.ts: git's credential helper reads the token from a file, and
 * withTokenFile keeps that file only while it is needed. */
import assert from "node:assert/strict";
import { gitCredentialArgs, withTokenFile } from "../../lib/git/credential.ts";

/** What `git credential fill` answers with our helper for a GitHub URL. */
async function fill(args: string[], home: string): Promise<string> {
  const child = new Deno.Command("git", {
    args: [...args, "credential", "fill"],
    env: {
      HOME: home,
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_TERMINAL_PROMPT: "0",
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    },
    clearEnv: true,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(
    new TextEncoder().encode("protocol=https\nhost=github.com\n\n"),
  );
  await w.close();
  const out = await child.output();
  return new TextDecoder().decode(out.stdout);
}

Deno.test("gitCredentialArgs: the token comes from the file, never from the argv", async () => {
  const home = await Deno.makeTempDir();
  try {
    const dir = `${home}/it's a dir`;
    await Deno.mkdir(dir);
    const file = `${dir}/tok`;
    await Deno.writeTextFile(file, "ghp_fromfile\n", { mode: 0o600 });
    const args = gitCredentialArgs(file);
    assert.ok(!args.join(" ").includes("ghp_fromfile"));
    assert.match(await fill(args, home), /^password=ghp_fromfile$/m);
    // The default: the machine's secrets file.
    await Deno.mkdir(`${home}/.ohcommodore/secrets`, { recursive: true });
    await Deno.writeTextFile(
      `${home}/.ohcommodore/secrets/gh_token`,
      "ghp_ship",
    );
    assert.match(
      await fill(gitCredentialArgs(), home),
      /^username=x-access-token\npassword=ghp_ship$/m,
    );
    // A missing file gives git no credentials (and the prompt is off).
    assert.doesNotMatch(
      await fill(gitCredentialArgs(`${dir}/missing`), home),
      /password=/,
    );
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("withTokenFile: a 0600 file while fn runs, gone after, also on error", async () => {
  const home = await Deno.makeTempDir();
  try {
    let seen = "";
    await withTokenFile(home, "ghp_x", async (f) => {
      seen = f!;
      assert.equal(await Deno.readTextFile(f!), "ghp_x");
      assert.equal((await Deno.stat(f!)).mode! & 0o777, 0o600);
    });
    assert.ok(seen.startsWith(`${home}/.ohcommodore/secrets/`));
    await assert.rejects(() => Deno.stat(seen), Deno.errors.NotFound);
    await assert.rejects(
      withTokenFile(home, "ghp_y", (f) => {
        seen = f!;
        throw new Error("clone failed");
      }),
      /clone failed/,
    );
    await assert.rejects(() => Deno.stat(seen), Deno.errors.NotFound);
    assert.equal(
      await withTokenFile(home, undefined, (f) => Promise.resolve(f)),
      undefined,
    );
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
