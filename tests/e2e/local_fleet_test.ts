/**
 * The local provider end to end, through the real CLI: every hop (laptop →
 * flagship → ship) is a real `ohcommodore _rpc` process on the same path
 * SSH will carry.
 */
import assert from "node:assert/strict";
import { startFakeGitHub } from "./emulators/github.ts";
import {
  exists,
  listDir,
  localFleet,
  makeGitRepo,
  ohc,
  ohcOk,
  scratchHome,
  teardown,
} from "../helpers/cli.ts";

const localRoot = (home: string) => `${home}/.ohcommodore/local`;
const fleetFile = (home: string) =>
  `${localRoot(home)}/flagship/.ohcommodore/fleet.json`;

async function shipNames(home: string): Promise<string[]> {
  const r = await ohcOk(home, ["fleet", "status", "--json"]);
  return JSON.parse(r.stdout).ships.map((s: { name: string }) => s.name);
}

Deno.test("the issue's walkthrough: init, create, status, exec, destroy, sink, scuttle", async () => {
  const home = await scratchHome();
  await using _ = { [Symbol.asyncDispose]: () => teardown(home) };
  await ohcOk(home, ["init", "--provider", "local"]);
  await ohcOk(home, ["ship", "create", "alpha"]);
  await ohcOk(home, ["ship", "create", "beta"]);

  const status = JSON.parse(
    (await ohcOk(home, ["fleet", "status", "--json"])).stdout,
  );
  assert.equal(status.flagship.name, "flagship");
  assert.equal(status.flagship.provider, "local");
  assert.equal(status.flagship.status, "up");
  assert.ok(status.flagship.ssh_dest);
  assert.deepEqual(status.ships.map((s: { name: string }) => s.name), [
    "alpha",
    "beta",
  ]);
  for (const s of status.ships) {
    assert.equal(s.repo, null);
    assert.equal(s.status, "running");
    assert.ok(s.ssh_dest);
  }

  const text = (await ohcOk(home, ["fleet", "status"])).stdout;
  assert.match(text, /^FLAGSHIP: .* \(up\)$/m);
  assert.match(text, /^SHIPS \(2\):$/m);
  assert.match(text, /^ {2}NAME +REPO +STATUS +AGE +LINK$/m);
  // The flagship's daemon holds a heartbeating link to each ship.
  for (let i = 0; i < 100; i++) {
    const s = JSON.parse(
      (await ohcOk(home, ["fleet", "status", "--json"])).stdout,
    );
    if (
      s.ships.every((x: { link: { state: string } }) => x.link.state === "up")
    ) break;
    await new Promise((r) => setTimeout(r, 100));
  }
  const linked = JSON.parse(
    (await ohcOk(home, ["fleet", "status", "--json"])).stdout,
  );
  for (const s of linked.ships) {
    assert.equal(s.link.state, "up");
    assert.ok(Date.now() - Date.parse(s.link.last_heartbeat) < 10_000);
  }

  const echo = await ohcOk(home, [
    "ship",
    "exec",
    "alpha",
    "--",
    "sh",
    "-c",
    "echo $HOME",
  ]);
  assert.equal(echo.stdout.trim(), `${localRoot(home)}/alpha`);

  await ohcOk(home, ["ship", "destroy", "alpha"]);
  assert.deepEqual(await shipNames(home), ["beta"]);
  assert.equal(await exists(`${localRoot(home)}/alpha`), false);

  await ohcOk(home, ["fleet", "sink", "--force"]);
  assert.deepEqual(await shipNames(home), []);
  assert.equal(await exists(`${localRoot(home)}/beta`), false);

  await ohcOk(home, ["fleet", "sink", "--scuttle", "--force"]);
  assert.deepEqual(await listDir(localRoot(home)), []);
  assert.equal(await exists(`${home}/.ohcommodore/config.json`), false);
});

Deno.test("ship exec: exit code, stderr, stdin, ~/.ohcommodore/bin on PATH", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  await ohcOk(home, ["ship", "create", "gamma"]);
  const r = await ohc(home, [
    "ship",
    "exec",
    "gamma",
    "--",
    "sh",
    "-c",
    "echo out; echo err >&2; exit 7",
  ]);
  assert.equal(r.code, 7);
  assert.equal(r.stdout, "out\n");
  assert.match(r.stderr, /^err$/m);

  const cat = await ohcOk(home, ["ship", "exec", "gamma", "--", "cat"], {
    stdin: "line1\nline2 $(x) `y` 'z'\n",
  });
  assert.equal(cat.stdout, "line1\nline2 $(x) `y` 'z'\n");

  const v = await ohcOk(home, [
    "ship",
    "exec",
    "gamma",
    "--",
    "ohcommodore",
    "--version",
  ]);
  assert.match(v.stdout, /^ohcommodore \d+\.\d+\.\d+/);

  // Arguments arrive as words, never re-parsed by a shell.
  const words = await ohcOk(home, [
    "ship",
    "exec",
    "gamma",
    "--",
    "printf",
    "[%s]\\n",
    "a b",
    "$(touch /tmp/ohc-never)",
    "",
  ]);
  assert.equal(words.stdout, "[a b]\n[$(touch /tmp/ohc-never)]\n[]\n");
  assert.equal(await exists("/tmp/ohc-never"), false);
});

Deno.test("bad ship names and repos: exit 2, one line, nothing created", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const before = await listDir(localRoot(home));
  const cases = [
    ["x;touch /tmp/ohc-pwned"],
    ["../../etc"],
    [""],
    ["a".repeat(200)],
    ["Alpha"],
    ["-rf"],
    ["ok", "--name", "Bad_Name"],
    ["owner/repo/extra"],
  ];
  for (const args of cases) {
    const r = await ohc(home, ["ship", "create", ...args]);
    assert.equal(r.code, 2, `${JSON.stringify(args)}: ${r.stderr}`);
    assert.equal(r.stdout, "");
    assert.equal(
      r.stderr.trim().split("\n").length,
      1,
      `${JSON.stringify(args)} printed: ${r.stderr}`,
    );
    assert.match(r.stderr, /^error: /);
  }
  assert.equal(await exists("/tmp/ohc-pwned"), false);
  assert.deepEqual(await listDir(localRoot(home)), before);
  assert.deepEqual(await shipNames(home), []);
});

Deno.test("owner/repo needs GH_TOKEN, which reaches the ship only in a 0600 file", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const noToken = await ohc(home, ["ship", "create", "acme/widget"]);
  assert.equal(noToken.code, 2);
  assert.match(noToken.stderr, /GH_TOKEN/);
  assert.deepEqual(await shipNames(home), []);

  // A stand-in for github.com: its API (the access check) and its repositories.
  const gh = await startFakeGitHub({ dir: await Deno.makeTempDir() });
  try {
    await gh.addRepo("acme", "widget", { "w.txt": "widget\n" }, {
      private: true,
    });
    const token = "ghp_secret_token_for_test_0123456789";
    gh.addToken(token, { repos: { "acme/widget": "pull" } });
    gh.addToken("ghp_other", { repos: {} });
    const env = {
      GH_TOKEN: token,
      OHCOMMODORE_GITHUB_API: gh.url,
      OHCOMMODORE_GITHUB_URL: gh.fileBase,
    };
    // A token that cannot read the repo is refused before any VM exists.
    const denied = await ohc(home, ["ship", "create", "acme/widget"], {
      env: { ...env, GH_TOKEN: "ghp_other" },
    });
    assert.equal(denied.code, 1);
    assert.match(denied.stderr, /acme\/widget/);
    assert.deepEqual(await listDir(localRoot(home)), ["flagship"]);
    await ohcOk(home, ["ship", "create", "acme/widget"], { env });
    await checkWidget(home, token);
  } finally {
    await gh.stop();
  }
});

async function checkWidget(home: string, token: string) {
  const ship = `${localRoot(home)}/widget`;
  assert.equal(await Deno.readTextFile(`${ship}/widget/w.txt`), "widget\n");
  const tokenFile = `${ship}/.ohcommodore/secrets/gh_token`;
  assert.equal(await Deno.readTextFile(tokenFile), token);
  assert.equal((await Deno.stat(tokenFile)).mode! & 0o777, 0o600);
  // Nowhere else on disk.
  const grep = await new Deno.Command("grep", {
    args: ["-rl", token, home],
  }).output();
  const files = new TextDecoder().decode(grep.stdout).trim().split("\n");
  assert.deepEqual(files, [tokenFile]);
  const [rec] = JSON.parse(
    (await ohcOk(home, ["ship", "list", "--json"])).stdout,
  );
  assert.equal(rec.repo, "acme/widget");
}

Deno.test("ship create <path> clones the repo and names the ship after it", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const repo = await makeGitRepo(`${await Deno.makeTempDir()}/My_Service`);
  const r = await ohcOk(home, ["ship", "create", repo, "--json"]);
  const rec = JSON.parse(r.stdout);
  assert.equal(rec.name, "my-service");
  assert.equal(rec.repo, repo);
  assert.equal(
    await Deno.readTextFile(
      `${localRoot(home)}/my-service/My_Service/README.md`,
    ),
    "hello\n",
  );
  const named = await ohcOk(home, ["ship", "create", repo, "--name", "svc2"]);
  assert.match(named.stdout, /svc2/);
});

Deno.test("name taken, unknown and ambiguous names are clear errors", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  await ohcOk(home, ["ship", "create", "web-a"]);
  await ohcOk(home, ["ship", "create", "web-b"]);
  const taken = await ohc(home, ["ship", "create", "web-a"]);
  assert.equal(taken.code, 2);
  assert.match(taken.stderr, /already exists/);

  const amb = await ohc(home, ["ship", "exec", "web", "--", "true"]);
  assert.equal(amb.code, 2);
  assert.match(amb.stderr, /web-a, web-b/);
  // A prefix reads (exec, ssh) but never destroys: even a unique one.
  const guess = await ohc(home, ["ship", "destroy", "web-"]);
  assert.equal(guess.code, 2);
  assert.equal(
    guess.stderr,
    'error: no ship named "web-" (this command takes a whole name: web-a, web-b)\n',
  );
  assert.equal(
    (await ohc(home, ["ship", "exec", "web-a", "--", "true"])).code,
    0,
  );

  const none = await ohc(home, ["ship", "exec", "nope", "--", "true"]);
  assert.equal(none.code, 2);
  assert.match(none.stderr, /no ship named "nope"/);

  await ohcOk(home, ["ship", "destroy", "web-b"]);
  assert.deepEqual(await shipNames(home), ["web-a"]);
});

Deno.test("commands in the wrong place say where to run them (exit 2)", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  await ohcOk(home, ["ship", "create", "delta"]);
  const onShip = await ohc(home, [
    "ship",
    "exec",
    "delta",
    "--",
    "ohcommodore",
    "ship",
    "create",
    "other",
  ]);
  assert.equal(onShip.code, 2);
  assert.match(onShip.stderr, /not on ship "delta"/);

  const initOnShip = await ohc(home, [
    "ship",
    "exec",
    "delta",
    "--",
    "ohcommodore",
    "init",
  ]);
  assert.equal(initOnShip.code, 2);
  assert.match(initOnShip.stderr, /your own machine/);

  const again = await ohc(home, ["init"]);
  assert.equal(again.code, 2);
  assert.match(again.stderr, /already initialized/);

  const fresh = await scratchHome();
  const noInit = await ohc(fresh, ["fleet", "status"]);
  assert.equal(noInit.code, 2);
  assert.match(noInit.stderr, /ohcommodore init/);
});

Deno.test("sink asks for confirmation and refuses without a terminal", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  await ohcOk(home, ["ship", "create", "eps"]);
  const r = await ohc(home, ["fleet", "sink"], { stdin: "sink\n" });
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--force/);
  assert.deepEqual(await shipNames(home), ["eps"]);
});

Deno.test("a corrupt state file names itself and the way out", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  await Deno.writeTextFile(`${home}/.ohcommodore/config.json`, "{not json");
  const r = await ohc(home, ["fleet", "status"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /config\.json is corrupt/);
  assert.match(r.stderr, /^hint: /m);
  assert.doesNotMatch(r.stderr, /at .*\.ts:\d+/); // no stack trace

  await using fleet2 = await localFleet();
  const home2 = fleet2.home;
  await Deno.writeTextFile(fleetFile(home2), '{"ships": {"x": 1}}');
  const r2 = await ohc(home2, ["ship", "list"]);
  assert.equal(r2.code, 1);
  assert.match(r2.stderr, /fleet\.json is corrupt/);
  assert.match(r2.stderr, /fleet recover/);
});

Deno.test("10 parallel ship creates all land; fleet recover rebuilds them, repos included", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const repo = await makeGitRepo(`${await Deno.makeTempDir()}/proj`);
  const names = Array.from({ length: 10 }, (_, i) => `s${i}`);
  const results = await Promise.all(
    names.map((n, i) =>
      ohc(home, ["ship", "create", ...(i % 2 ? [repo, "--name", n] : [n])])
    ),
  );
  for (const r of results) assert.equal(r.code, 0, r.stderr);
  assert.deepEqual(await shipNames(home), names);
  assert.deepEqual(
    (await listDir(localRoot(home))).filter((n) => n !== "flagship"),
    names,
  );

  const before = JSON.parse(
    (await ohcOk(home, ["ship", "list", "--json"])).stdout,
  );
  await Deno.remove(fleetFile(home));
  assert.deepEqual(await shipNames(home), []);
  await ohcOk(home, ["fleet", "recover"]);
  const after = JSON.parse(
    (await ohcOk(home, ["ship", "list", "--json"])).stdout,
  );
  const key = (s: Record<string, unknown>) => [s.name, s.repo, s.ssh_dest];
  assert.deepEqual(after.map(key), before.map(key));
  assert.equal(
    after.filter((s: { repo: string }) => s.repo === repo).length,
    5,
  );
});

Deno.test("--help on every command, --version, unknown commands", async () => {
  const home = await scratchHome();
  for (
    const cmd of [
      [],
      ["init"],
      ["fleet"],
      ["fleet", "status"],
      ["fleet", "sink"],
      ["fleet", "recover"],
      ["ship"],
      ["ship", "create"],
      ["ship", "destroy"],
      ["ship", "list"],
      ["ship", "exec"],
      ["ship", "ssh"],
      ["inbox"],
      ...["send", "list", "identity", "show", "read", "done", "error", "delete"]
        .map((c) => ["inbox", c]),
      ["daemon"],
      ...["status", "start", "stop", "restart"].map((c) => ["daemon", c]),
      ["voyage"],
      ...[
        "check",
        "sail",
        "status",
        "list",
        "tasks",
        "logs",
        "clone",
        "shell",
        "sink",
        "retry",
        "add",
      ]
        .map((c) => ["voyage", c]),
      // ocaptain's names, at the top level.
      ...["sail", "status", "tasks", "logs", "clone", "shell", "sink"].map((
        c,
      ) => [c]),
      ["doctor"],
    ]
  ) {
    const r = await ohc(home, [...cmd, "--help"]);
    assert.equal(r.code, 0, cmd.join(" "));
    assert.match(r.stdout, /^Usage: ohcommodore/);
  }
  // --help shows ocaptain's names and flags.
  const top = (await ohc(home, ["--help"])).stdout;
  for (
    const c of ["sail", "status", "tasks", "logs", "clone", "shell", "sink"]
  ) {
    assert.match(top, new RegExp(`^  ${c} .*same as 'voyage ${c}'`, "m"));
  }
  const logsHelp = (await ohc(home, ["voyage", "logs", "--help"])).stdout;
  assert.match(logsHelp, /also 'ohcommodore logs'/);
  for (const f of ["-s, --ship", "-f, --follow", "-g, --grep", "-n, --tail"]) {
    assert.ok(logsHelp.includes(f), f);
  }
  const v = await ohc(home, ["--version"]);
  assert.match(v.stdout, /^ohcommodore \d+\.\d+\.\d+\n$/);
  const bad = await ohc(home, ["flete"]);
  assert.equal(bad.code, 2);
  const badOpt = await ohc(home, ["fleet", "status", "--jsn"]);
  assert.equal(badOpt.code, 2);
  const badProvider = await ohc(home, ["init", "--provider", "aws"]);
  assert.equal(badProvider.code, 2);
  assert.equal(await exists(`${home}/.ohcommodore`), false);
});

Deno.test("cloudinit: INIT_PATH and DOTFILES_PATH from the laptop reach every new VM", async () => {
  const home = await scratchHome();
  await using _ = { [Symbol.asyncDispose]: () => teardown(home) };
  const dot = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dot}/.myrc`, "alias ll='ls -l'\n");
  const hook = `${dot}-init.sh`;
  await Deno.writeTextFile(hook, 'echo "hook ran as $ROLE" > ~/hook.txt\n');
  const env = { INIT_PATH: hook, DOTFILES_PATH: dot };
  const bad = await ohc(home, ["init"], {
    env: { INIT_PATH: `${dot}/missing` },
  });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /INIT_PATH/);
  assert.equal(await exists(`${home}/.ohcommodore/config.json`), false);

  await ohcOk(home, ["init"], { env });
  await ohcOk(home, ["ship", "create", "alpha"]); // the flagship passes them on
  for (const [vm, role] of [["flagship", "commodore"], ["alpha", "captain"]]) {
    const h = `${localRoot(home)}/${vm}`;
    assert.equal(
      await Deno.readTextFile(`${h}/hook.txt`),
      `hook ran as ${role}\n`,
    );
    assert.equal(await Deno.readTextFile(`${h}/.myrc`), "alias ll='ls -l'\n");
    assert.match(
      await Deno.readTextFile(`${h}/.ohcommodore/init.log`),
      /init\.sh finished/,
    );
  }
});

Deno.test(".env files: ~/.ohcommodore/.env < ./.env < the real environment; a bad line is exit 2", async () => {
  const home = await scratchHome();
  await using _ = { [Symbol.asyncDispose]: () => teardown(home) };
  await Deno.mkdir(`${home}/.ohcommodore`, { recursive: true });
  await Deno.writeTextFile(
    `${home}/.ohcommodore/.env`,
    `OHCOMMODORE_LOCAL_ROOT=${home}/from-home-file\n`,
  );
  const project = `${home}/project`;
  await Deno.mkdir(project);
  await Deno.writeTextFile(
    `${project}/.env`,
    `export OHCOMMODORE_LOCAL_ROOT="${home}/from-cwd-file"\n`,
  );
  await ohcOk(home, ["init"], { cwd: project });
  assert.ok(await exists(`${home}/from-cwd-file/flagship`));
  await ohcOk(home, ["fleet", "sink", "--scuttle", "--force"]);

  await ohcOk(home, ["init"], {
    cwd: project,
    env: { OHCOMMODORE_LOCAL_ROOT: `${home}/from-env` },
  });
  assert.ok(await exists(`${home}/from-env/flagship`));
  await ohcOk(home, ["fleet", "sink", "--scuttle", "--force"]);

  await Deno.writeTextFile(
    `${project}/.env`,
    "GOOD=1\nthis is not an assignment\n",
  );
  const bad = await ohc(home, ["fleet", "status"], { cwd: project });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /\.env:2/);
});

Deno.test("ship create of several: one failure does not stop the others, and leaves no VM", async () => {
  await using fleet = await localFleet("taken");
  const home = fleet.home;
  const r = await ohc(home, ["ship", "create", "first", "taken", "second"]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: taken: .*already exists/m);
  assert.match(r.stdout, /^Ship ready: first$/m);
  assert.match(r.stdout, /^Ship ready: second$/m);
  assert.deepEqual(await shipNames(home), ["first", "second", "taken"]);
  assert.deepEqual(await listDir(localRoot(home)), [
    "first",
    "flagship",
    "second",
    "taken",
  ]);
});

Deno.test("the flagship's daemon stopped: fleet status says so, and errors name the flagship", async () => {
  await using fleet = await localFleet("alpha");
  const home = fleet.home;
  const flag = `${localRoot(home)}/flagship`;
  await ohcOk(flag, ["daemon", "stop"]);
  const st = JSON.parse(
    (await ohcOk(home, ["fleet", "status", "--json"])).stdout,
  );
  assert.equal(st.flagship.status, "up");
  assert.equal(st.flagship.daemon, "down");
  assert.match(
    (await ohcOk(home, ["fleet", "status"])).stdout,
    /^FLAGSHIP: .* \(up, daemon down\)$/m,
  );
  const send = await ohc(home, ["inbox", "send", "captain@alpha", "true"]);
  assert.equal(send.code, 1);
  assert.match(
    send.stderr,
    /^error: the daemon on the flagship "flagship" was stopped/,
  );
  assert.match(send.stderr, /HOME=\S+\/flagship ohcommodore daemon start/);
  await ohcOk(flag, ["daemon", "start"]);
  assert.equal(
    JSON.parse((await ohcOk(home, ["fleet", "status", "--json"])).stdout)
      .flagship.daemon,
    "up",
  );
});
