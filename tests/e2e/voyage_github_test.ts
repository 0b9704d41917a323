/**
 * A voyage on a private GitHub repository, through the CLI, against the
 * fake GitHub (its API and git over smart HTTP, where a private repo needs
 * the token): the laptop checks access before any VM exists, the flagship
 * clones with the token from a 0600 file it removes afterwards, and the
 * token is in no argv and no log.
 */
import assert from "node:assert/strict";
import { startFakeGitHub } from "./emulators/github.ts";
import { listDir, localFleet, ohc, ohcOk } from "../helpers/cli.ts";
import { writePlan } from "../helpers/plans.ts";
import { filesContaining, watchArgv } from "../helpers/secrets.ts";
import { sailOk, waitVoyage } from "../helpers/voyage.ts";

const TOKEN = `ghp_${crypto.randomUUID().replaceAll("-", "")}`;

/** One line saying what is wrong, and at most a hint after it. */
function assertOneLineError(stderr: string, re: RegExp) {
  const lines = stderr.trim().split("\n");
  assert.match(lines[0], /^error: /, stderr);
  assert.match(lines[0], re);
  assert.ok(
    lines.length === 1 || (lines.length === 2 && lines[1].startsWith("hint: ")),
    stderr,
  );
}

Deno.test("a voyage on a private GitHub repo: access checked before any VM, cloned with the token, which is in no argv or log", async () => {
  const gh = await startFakeGitHub({ dir: await Deno.makeTempDir() });
  await using fleet = await localFleet();
  const home = fleet.home;
  try {
    await gh.addRepo("acme", "widgets", { "README.md": "widgets\n" }, {
      private: true,
    });
    gh.addToken(TOKEN, { login: "alice", repos: { "acme/widgets": "pull" } });
    gh.addToken("ghp_other", { login: "bob", repos: {} });
    const plan = await writePlan(`${home}/plan`, [
      { id: "1", command: "cp README.md copy.txt" },
    ], {
      ships: 1,
      verify: '#!/bin/bash\ntest "$(cat copy.txt)" = widgets\n',
    });
    // The plan names the repo, as ocaptain's plans do.
    const vj = JSON.parse(await Deno.readTextFile(`${plan}/voyage.json`));
    await Deno.writeTextFile(
      `${plan}/voyage.json`,
      JSON.stringify({ ...vj, repo: "acme/widgets" }),
    );
    // Clones go over HTTP, where the private repo needs the token.
    const env = {
      OHCOMMODORE_GITHUB_API: gh.url,
      OHCOMMODORE_GITHUB_URL: gh.url,
    };
    const vms = await listDir(`${home}/.ohcommodore/local`);

    const refused: [Record<string, string>, string[], number, RegExp][] = [
      [{}, [], 2, /GH_TOKEN is required to clone acme\/widgets/],
      [{ GH_TOKEN: "ghp_wrong" }, [], 1, /GitHub rejected the token \(401/],
      [{ GH_TOKEN: "ghp_other" }, [], 1, /acme\/widgets was not found/],
      [{ GH_TOKEN: TOKEN }, ["--repo", "acme/gadgets"], 1, /acme\/gadgets/],
    ];
    for (const [extra, args, code, re] of refused) {
      const r = await ohc(home, [
        "voyage",
        "sail",
        plan,
        "--agent",
        "shell",
        ...args,
      ], {
        env: { ...env, ...extra },
      });
      const what = `${JSON.stringify(extra)} ${args.join(" ")}`;
      assert.equal(r.code, code, `${what}: ${r.stderr}`);
      assert.equal(r.stdout, "", what);
      assertOneLineError(r.stderr, re);
    }
    // Nothing was done: no VM, no voyage, no clone attempted.
    assert.deepEqual(await listDir(`${home}/.ohcommodore/local`), vms);
    assert.equal(
      (await ohcOk(home, ["voyage", "list"])).stdout.trim(),
      "No voyages.",
    );
    assert.deepEqual(gh.requests.filter((q) => q.path.includes(".git")), []);

    const watch = watchArgv(TOKEN);
    let id: string;
    let state: string;
    try {
      id = await sailOk(home, [plan, "--agent", "shell"], {
        ...env,
        GH_TOKEN: TOKEN,
      });
      state = (await waitVoyage(home, id)).voyage.state;
    } finally {
      const { samples, leaks } = await watch.stop();
      assert.ok(samples >= 10, `only ${samples} ps samples`);
      assert.deepEqual(leaks, [], "the token showed in a command line");
    }
    assert.equal(state, "verified");
    await ohcOk(home, ["voyage", "clone", id, "-d", `${home}/result`]);
    assert.equal(
      await Deno.readTextFile(`${home}/result/copy.txt`),
      "widgets\n",
    );
    // The flagship's clone authenticated (Basic, the token as password).
    assert.ok(
      gh.requests.some((q) =>
        q.path === "/acme/widgets.git/git-upload-pack" &&
        q.auth?.startsWith("Basic ")
      ),
      JSON.stringify(gh.requests),
    );
    // The token rests nowhere: not in any log, not on the flagship (which
    // kept it only while cloning), not on the ships (they get the voyage's
    // code from the flagship, never from GitHub).
    assert.deepEqual(await filesContaining(home, TOKEN), []);
    assert.deepEqual(
      (await listDir(
        `${home}/.ohcommodore/local/flagship/.ohcommodore/secrets`,
      ))
        .filter((f) => f.startsWith("gh_token")),
      [],
    );
  } finally {
    await gh.stop();
  }
});
