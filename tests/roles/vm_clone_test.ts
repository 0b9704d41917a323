/**
 * roles/vm.ts clones a ship's repo with the hardened git runner
 * (lib/git/exec.ts): a hook the machine's git config names does not run,
 * and a failed clone leaves nothing behind. It used to call git directly.
 */
import assert from "node:assert/strict";
import { vmHandlers } from "../../roles/vm.ts";

async function g(cwd: string, ...args: string[]): Promise<void> {
  const out = await new Deno.Command("git", {
    args,
    cwd,
    env: {
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_AUTHOR_NAME: "T",
      GIT_AUTHOR_EMAIL: "t@example.com",
      GIT_COMMITTER_NAME: "T",
      GIT_COMMITTER_EMAIL: "t@example.com",
    },
    stdin: "null",
  }).output();
  assert.ok(out.success, new TextDecoder().decode(out.stderr));
}

Deno.test("vm.setup clones with the hardened runner: no hooks from the machine's git config", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ohc-vm-clone-" });
  const home = `${dir}/home`;
  await Deno.mkdir(home);
  try {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await g(src, "init", "-q", "-b", "main");
    await Deno.writeTextFile(`${src}/a.txt`, "a\n");
    await g(src, "add", ".");
    await g(src, "commit", "-q", "-m", "one");
    // git runs post-checkout after a clone; a person's config may name it.
    const hooks = `${dir}/hooks`;
    await Deno.mkdir(hooks);
    const marker = `${dir}/hook-ran`;
    await Deno.writeTextFile(
      `${hooks}/post-checkout`,
      `#!/bin/sh\ntouch '${marker}'\n`,
      { mode: 0o755 },
    );
    await Deno.writeTextFile(
      `${home}/.gitconfig`,
      `[core]\n\thooksPath = ${hooks}\n`,
    );
    const setup = (clone: { url: string; dir: string }, name: string) =>
      vmHandlers(home)["vm.setup"]({
        args: {
          identity: {
            role: "captain",
            name,
            flagship: "f",
            provider: { kind: "local", root: dir },
            created_at: new Date().toISOString(),
          },
          clone,
        },
        secrets: {},
        emit: () => {},
        input: new ReadableStream({ start: (c) => c.close() }),
        signal: new AbortController().signal,
      });
    await setup({ url: src, dir: "proj" }, "s1");
    assert.equal(await Deno.readTextFile(`${home}/proj/a.txt`), "a\n");
    assert.equal(
      await Deno.stat(marker).then(() => true, () => false),
      false,
      "the configured post-checkout hook ran",
    );

    await Deno.remove(`${home}/.ohcommodore/identity.json`);
    await assert.rejects(
      setup({ url: `${dir}/nothing`, dir: "other" }, "s1"),
      (e: Error & { code?: string }) => e.code === "clone_failed",
    );
    assert.equal(
      await Deno.stat(`${home}/other`).then(() => true, () => false),
      false,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
