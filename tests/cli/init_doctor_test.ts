/** `init`, `doctor` and `completion` against fakes, nothing spawned. */
import assert from "node:assert/strict";
import type { InitOptions } from "../../lib/fleet/api.ts";
import type { LaptopBackend } from "../../lib/cli/backends.ts";
import { CAPTAIN, runWith } from "../helpers/cli_context.ts";

function laptop(seen: InitOptions[]): () => Promise<LaptopBackend> {
  return () =>
    Promise.resolve({
      init: (o: InitOptions) => {
        seen.push(o);
        return Promise.resolve({
          version: 1 as const,
          flagship: {
            name: o.name,
            ssh_dest: "me@flag",
            provider: o.provider,
            created_at: "now",
          },
        });
      },
    } as unknown as LaptopBackend);
}

Deno.test("init: misuse is exit 2 before anything is made", async () => {
  const seen: InitOptions[] = [];
  for (
    const [args, line] of [
      [
        ["--root", "/x", "--provider", "exedev"],
        "--root is for --provider local",
      ],
      [["--lobby", "l"], "--lobby is for --provider exedev"],
      [["--org", "o"], "--org is for --provider sprites"],
      [
        ["--provider", "exedev", "--identity", "/no/such"],
        "--identity /no/such: no such file",
      ],
      [
        ["--provider", "exedev", "--ssh-config", "/no/such"],
        "--ssh-config /no/such: no such file",
      ],
    ] as const
  ) {
    const r = await runWith({ backends: { laptop: laptop(seen) } }, [
      "init",
      ...args,
    ]);
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.stderr, `error: ${line}\n`);
  }
  let r = await runWith({ backends: { laptop: laptop(seen) } }, [
    "init",
    "--provider",
    "nope",
  ]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /Allowed choices are local, exedev, sprites/);
  r = await runWith({ identity: CAPTAIN }, ["init"]);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    "error: 'init' runs on your own machine, not on this captain VM\n",
  );
  assert.deepEqual(seen, []);
});

Deno.test("init: the provider's settings from flags and env, relative paths made absolute", async () => {
  const seen: InitOptions[] = [];
  let r = await runWith({
    home: "/h",
    env: { OHCOMMODORE_LOCAL_ROOT: "vms", OHCOMMODORE_INBOX_TIMEOUT: "60" },
    backends: { laptop: laptop(seen) },
  }, ["init"]);
  assert.equal(r.code, 0, r.stderr);
  assert.equal(
    r.stdout,
    "Flagship ready: me@flag\nNext: ohcommodore ship create <name|owner/repo>\n",
  );
  assert.deepEqual(seen[0].provider, { kind: "local", root: "/h/vms" });
  assert.equal(seen[0].name, "flagship");
  assert.equal(seen[0].exactVmName, false);
  assert.deepEqual(seen[0].settings, { OHCOMMODORE_INBOX_TIMEOUT: "60" });
  r = await runWith({ home: "/h", backends: { laptop: laptop(seen) } }, [
    "init",
    "--provider",
    "sprites",
    "--org",
    "acme",
    "--name",
    "mine",
    "--json",
  ]);
  assert.equal(JSON.parse(r.stdout).flagship.name, "mine");
  assert.deepEqual(seen[1].provider, { kind: "sprites", org: "acme" });
  assert.equal(seen[1].exactVmName, true);
  // A bad VM setting in the env is misuse too.
  r = await runWith({
    env: { OHCOMMODORE_TASK_LEASE: "soon" },
    backends: { laptop: laptop(seen) },
  }, ["init"]);
  assert.equal(r.code, 2);
  assert.equal(seen.length, 2);
});

const probes = {
  tool: (cmd: string) => Promise.resolve(cmd === "tmux" ? null : `${cmd} 1.0`),
  duckdb: () => Promise.resolve(null),
};

Deno.test("doctor: each check one line; a missing tool warns, an old flagship fails", async () => {
  // Without a flagship: tools and tokens only.
  let r = await runWith({ env: { GH_TOKEN: "t" }, probes }, ["doctor"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^ok\s+ssh\s+ssh 1\.0$/m);
  assert.match(r.stdout, /^warn\s+tmux\s+not found/m);
  assert.match(r.stdout, /^ok\s+GH_TOKEN\s+set$/m);
  assert.match(r.stdout, /^warn\s+claude credential\s+not set/m);
  assert.match(r.stdout, /^ok\s+duckdb\s+loads$/m);
  // On a flagship whose ships run another version.
  r = await runWith({
    identity: { ...CAPTAIN, role: "commodore", name: "flagship" },
    probes,
    flagship: {
      "fleet.versions": () => ({
        flagship: "0.0.0-old",
        ships: [{ name: "alpha", version: null, error: "down" }],
      }),
    },
  }, ["doctor", "--json"]);
  assert.equal(r.code, 1);
  const checks = JSON.parse(r.stdout).checks as { name: string; ok: boolean }[];
  assert.deepEqual(
    checks.filter((c) => !c.ok).map((c) => c.name),
    ["tmux", "GH_TOKEN", "claude credential", "flagship", "ship alpha"],
  );
  // On a ship the flagship is not asked.
  r = await runWith({ identity: CAPTAIN, probes }, ["doctor"]);
  assert.equal(r.code, 1);
  assert.match(
    r.stdout,
    /^FAIL\s+flagship\s+'doctor' runs on your own machine or on the flagship/m,
  );
});

Deno.test("completion: a script for each shell; another shell is exit 2", async () => {
  let r = await runWith({}, ["completion", "bash"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /complete -F/);
  r = await runWith({}, ["completion", "tcsh"]);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    'error: unknown shell "tcsh": one of bash, zsh, fish\n',
  );
});
