/**
 * Real fleets on exe.dev, end to end: the real CLI (dev artifact) on a
 * laptop HOME, real OpenSSH, and the exe.dev emulator (a lobby sshd and one
 * sshd per VM, each in its own namespaces; tests/e2e/emulators/exedev.ts).
 * Every test ends with the emulator listing no VM that `fleet status` does
 * not know of, and none at all after `fleet sink --scuttle`.
 */
import assert from "node:assert/strict";
import { exeDevSkipReason } from "./emulators/exedev.ts";
import { startFakeGitHub } from "./emulators/github.ts";
import {
  closeMasters,
  cmdlineOf,
  exeDevFleet,
  processesMatching,
  tcpClientsOf,
} from "../helpers/exedev_fleet.ts";
import { exists } from "../helpers/cli.ts";
import { filesContaining, watchArgv } from "../helpers/secrets.ts";
import { makeClientKey } from "../helpers/sshd.ts";

const ignore = exeDevSkipReason() !== null;
/** cloudinit/init.sh: no internet steps (the emulated VMs are this host). */
const OFFLINE = { OHC_OFFLINE: "1" };
const SHIPS = ["alpha", "bravo", "cargo"];

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** One line of stderr, no stack trace. */
function assertOneLineError(stderr: string, what: string): void {
  const lines = stderr.trim().split("\n").filter((l) => !l.startsWith("==>"));
  assert.equal(lines.length, 1, `${what}: one line expected:\n${stderr}`);
  assert.doesNotMatch(stderr, /^\s+at |Uncaught|\.ts:\d+/m, what);
}

Deno.test({
  name:
    "exedev: init, ship create of 3 in one command, status, exec, ssh, recover, destroy, sink --scuttle",
  ignore,
  async fn() {
    await using f = await exeDevFleet({ env: OFFLINE });
    const config = JSON.parse(
      await Deno.readTextFile(`${f.home}/.ohcommodore/config.json`),
    );
    assert.equal(config.flagship.provider.kind, "exedev");
    assert.equal(config.flagship.provider.ssh_config, f.userSsh.config);
    // exe.dev names are global: the fleet's VMs carry its id.
    const fid = config.fleet_id;
    assert.match(fid, /^[a-z][a-z0-9]{5}$/);
    const vm = (n: string) => `${fid}-${n}`;
    assert.deepEqual((await f.emu.listVms()).map((v) => v.name), [
      vm("flagship"),
    ]);

    // Three ships, one command, in parallel.
    const created = await f.ok(["ship", "create", ...SHIPS]);
    for (const s of SHIPS) {
      assert.match(created.stdout, new RegExp(`ready: ${s}`));
    }
    assert.deepEqual(
      (await f.emu.listVms()).map((v) => v.name).sort(),
      [...SHIPS, "flagship"].map(vm),
    );
    await f.assertNoStrays();

    // fleet status: every ship, running, its link up with a heartbeat.
    const st = await f.waitLinksUp(SHIPS);
    assert.equal(st.flagship.status, "up");
    assert.equal(st.flagship.provider, "exedev");
    assert.deepEqual(st.ships.map((s) => s.name), SHIPS);
    for (const s of st.ships) {
      assert.equal(s.status, "running");
      assert.equal(s.ssh_dest, `${vm(s.name)}.exe.xyz`);
      assert.equal(s.link.state, "up");
      assert.ok(s.link.last_heartbeat, `${s.name} has a heartbeat`);
    }
    const text = (await f.ok(["fleet", "status"])).stdout;
    assert.match(text, /LINK/);
    assert.match(text, /alpha .* up \(heartbeat /);

    // ship exec: each ship is its own VM, home /home/exedev, user exedev.
    for (const s of SHIPS) {
      const r = await f.ok([
        "ship",
        "exec",
        s,
        "--",
        "sh",
        "-c",
        "echo $HOME; hostname; whoami",
      ]);
      assert.equal(r.stdout, `/home/exedev\n${vm(s)}\nexedev\n`);
    }
    const bad = await f.run([
      "ship",
      "exec",
      "alpha",
      "--",
      "sh",
      "-c",
      "exit 3",
    ]);
    assert.equal(bad.code, 3);

    // ship ssh, non-interactive: the command's output and exit code.
    const ssh = await f.ok(["ship", "ssh", "bravo", "--", "hostname"]);
    assert.equal(ssh.stdout.trim(), vm("bravo"));
    const sshCode = await f.run([
      "ship",
      "ssh",
      "bravo",
      "--",
      "sh",
      "-c",
      "echo out; exit 7",
    ]);
    assert.equal(sshCode.code, 7);
    assert.equal(sshCode.stdout.trim(), "out");

    // fleet recover: the registry is rebuilt from exe.dev's list and each
    // ship's own identity file.
    await Deno.remove(`${await f.vmHome("flagship")}/.ohcommodore/fleet.json`);
    assert.deepEqual((await f.status()).ships, []);
    const rec = await f.ok(["fleet", "recover", "--json"]);
    assert.deepEqual(
      JSON.parse(rec.stdout).map((s: { name: string }) => s.name),
      SHIPS,
    );
    assert.deepEqual((await f.status()).ships.map((s) => s.name), SHIPS);
    await f.waitLinksUp(SHIPS);
    await f.assertNoStrays();

    // ship destroy: gone from exe.dev and from the fleet.
    const d = await f.ok(["ship", "destroy", "cargo"]);
    assert.match(d.stdout, /Destroyed cargo/);
    assert.deepEqual(
      (await f.emu.listVms()).map((v) => v.name).sort(),
      ["alpha", "bravo", "flagship"].map(vm),
    );
    assert.deepEqual((await f.status()).ships.map((s) => s.name), [
      "alpha",
      "bravo",
    ]);
    await f.assertNoStrays();

    // fleet sink --scuttle --force: nothing left on the account.
    assert.deepEqual(await f.scuttle(), []);
    assert.equal(await exists(`${f.home}/.ohcommodore/config.json`), false);
  },
});

Deno.test({
  name:
    "exedev on real terms: common words belong to other accounts, only the user's own key is registered, and the fleet touches only its own VMs",
  ignore,
  async fn() {
    await using f = await exeDevFleet({ env: OFFLINE, noInit: true });
    // Somebody else's VM on the same account: no sweep may touch it.
    const other = "someone-elses-vm";
    const made = await new Deno.Command("ssh", {
      args: [
        "-F",
        f.userSsh.config,
        "exe.dev",
        "new",
        "--json",
        `--name=${other}`,
      ],
      stdin: "null",
      stdout: "piped",
    }).output();
    assert.ok(made.success, new TextDecoder().decode(made.stdout));
    // Common words are other accounts' (as on the real service): asked for
    // as they are, "flagship" and "alpha" would fail.
    for (const word of ["flagship", "alpha"]) {
      const held = await new Deno.Command("ssh", {
        args: ["-F", f.userSsh.config, "exe.dev", "new", `--name=${word}`],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
      assert.equal(held.success, false, word);
      assert.match(
        new TextDecoder().decode(held.stdout) +
          new TextDecoder().decode(held.stderr),
        new RegExp(`VM name "${word}" is not available`),
      );
    }

    // `ssh exe.dev` works for this user (their config and key); that is all.
    const init = await f.ok([
      "init",
      "--provider",
      "exedev",
      "--ssh-config",
      f.userSsh.config,
    ]);
    assert.match(init.stdout, /Flagship ready: /);
    // The laptop made and offered no key of its own.
    assert.equal(await exists(`${f.home}/.ohcommodore/ssh/id_ed25519`), false);
    // VM settings in the laptop's environment travel to the exe.dev VMs.
    await f.ok(["ship", "create", "alpha", "beta", "gamma"], {
      env: { OHCOMMODORE_INBOX_TIMEOUT: "77" },
    });
    assert.deepEqual(
      JSON.parse(
        await Deno.readTextFile(
          `${await f.vmHome("gamma")}/.ohcommodore/settings.json`,
        ),
      ),
      { OHCOMMODORE_INBOX_TIMEOUT: "77" },
    );
    const alpha = await f.vmName("alpha");
    assert.notEqual(alpha, "alpha");
    const host = await f.ok(["ship", "exec", "alpha", "--", "hostname"]);
    assert.equal(host.stdout.trim(), alpha);
    await f.ok(["ship", "destroy", "beta"]);
    const st = await f.status();
    assert.deepEqual(st.ships.map((x) => x.name), ["alpha", "gamma"]);
    assert.equal(st.flagship.name, "flagship");
    // Each VM carries the fleet's tag, and recover finds only the fleet's.
    const fid = alpha.slice(0, alpha.indexOf("-"));
    for (const v of await f.emu.listVms()) {
      if (v.name === other) continue;
      assert.deepEqual(v.tags, [`ohcommodore-${fid}`], v.name);
    }
    const rec = await f.ok(["fleet", "recover", "--json"]);
    assert.deepEqual(
      JSON.parse(rec.stdout).map((x: { name: string }) => x.name),
      ["alpha", "gamma"],
    );
    await f.ok(["fleet", "sink", "--scuttle", "--force"]);
    assert.deepEqual((await f.emu.listVms()).map((v) => v.name), [other]);
  },
});

Deno.test({
  name:
    "exedev: init draws another fleet id when a name is taken; --name takes the exact name; a ship name too long for a VM name is exit 2",
  ignore,
  async fn() {
    await using f = await exeDevFleet({ env: OFFLINE, noInit: true });
    const init = (...more: string[]) =>
      f.run([
        "init",
        "--provider",
        "exedev",
        "--ssh-config",
        f.userSsh.config,
        ...more,
      ]);
    // The first two names init asks for are somebody else's.
    await f.emu.holdNextNames(2);
    const ok = await init();
    assert.equal(ok.code, 0, ok.stderr);
    assert.equal(
      (ok.stderr.match(/is taken; trying fleet id [a-z][a-z0-9]{5}/g) ?? [])
        .length,
      2,
      ok.stderr,
    );
    const vms = (await f.emu.listVms()).map((v) => v.name);
    assert.equal(vms.length, 1);
    assert.equal(vms[0], await f.vmName("flagship"));
    // A ship name whose VM name would pass 52 characters: exit 2, nothing made.
    const long = "s".repeat(46);
    const r = await f.run(["ship", "create", long]);
    assert.equal(r.code, 2, r.stderr);
    assert.match(r.stderr, /too long for exedev.*the limit is 52/);
    // One exe.dev reserves (a port-like ending): exit 2 too, nothing asked.
    const reserved = await f.run(["ship", "create", "p80"]);
    assert.equal(reserved.code, 2, reserved.stderr);
    assert.match(
      reserved.stderr,
      /cannot name an exe\.dev VM: exe\.dev reserves/,
    );
    assert.equal((await f.emu.listVms()).length, 1);
    await f.ok(["fleet", "sink", "--scuttle", "--force"]);

    // A user whose `ssh exe.dev` is not registered is told what to run.
    // (The registered user's master connections would carry it otherwise.)
    await closeMasters(f.home);
    const stranger = await makeClientKey(`${f.tmp}/user-ssh`, "stranger");
    const strangerConfig = `${f.tmp}/user-ssh/stranger.config`;
    await Deno.writeTextFile(
      strangerConfig,
      `Include ${f.emu.sshConfig}\nHost exe.dev *.exe.xyz\n  IdentityFile ${stranger.privatePath}\n`,
    );
    const refused = await f.run([
      "init",
      "--provider",
      "exedev",
      "--ssh-config",
      strangerConfig,
    ]);
    assert.equal(refused.code, 1);
    assertOneLineError(
      refused.stderr.split("\n").filter((l) => !l.startsWith("hint")).join(
        "\n",
      ),
      "unregistered init",
    );
    assert.match(
      refused.stderr,
      /does not know the SSH key your `ssh exe\.dev` offers/,
    );
    assert.match(refused.stderr, /run `ssh exe\.dev` in a terminal/);
    assert.deepEqual(await f.emu.listVms(), []);
    await closeMasters(f.home);
    // --identity: that key only, whatever the config offers.
    const withKey = await f.run([
      "init",
      "--provider",
      "exedev",
      "--ssh-config",
      f.emu.sshConfig,
      "--identity",
      f.userSsh.key,
    ]);
    assert.equal(withKey.code, 0, withKey.stderr);
    assert.equal(
      JSON.parse(
        await Deno.readTextFile(`${f.home}/.ohcommodore/config.json`),
      ).identity_file,
      f.userSsh.key,
    );
    await f.ok(["fleet", "sink", "--scuttle", "--force"]);

    // --name: exactly that name, so exe.dev's rule is for it alone (exit 2).
    const short = await init("--name", "fox");
    assert.equal(short.code, 2, short.stderr);
    assert.match(short.stderr, /flagship name "fox": invalid VM name/);
    assert.deepEqual(await f.emu.listVms(), []);
    // No second try when the exact name is taken.
    const taken = await init("--name", "flagship");
    assert.equal(taken.code, 1);
    assert.match(taken.stderr, /VM name "flagship" is not available/);
    assert.equal(await exists(`${f.home}/.ohcommodore/config.json`), false);
    assert.deepEqual(await f.emu.listVms(), []);
    const mine = await init("--name", "my-own-flagship");
    assert.equal(mine.code, 0, mine.stderr);
    assert.deepEqual((await f.emu.listVms()).map((v) => v.name), [
      "my-own-flagship",
    ]);
    assert.equal((await f.status()).flagship.name, "my-own-flagship");
  },
});

Deno.test({
  name:
    "exedev: a ship holds nothing that reaches the exe.dev account, the flagship or another ship",
  ignore,
  async fn() {
    await using f = await exeDevFleet({ env: OFFLINE });
    await f.ok(["ship", "create", "alpha", "bravo"]);

    // The flagship holds the fleet key (0600); ships hold no key at all.
    const flagKey = `${await f.vmHome("flagship")}/.ohcommodore/ssh/id_ed25519`;
    assert.equal((await Deno.stat(flagKey)).mode! & 0o777, 0o600);
    for (const s of ["alpha", "bravo"]) {
      const home = await f.vmHome(s);
      assert.deepEqual(await privateKeysUnder(home), [], `${s} holds a key`);
    }

    // What a compromised agent on alpha would try, with whatever alpha has
    // (~/.ssh, any agent): all refused by authentication.
    const hosts = [
      "exe.dev",
      `${await f.vmName("flagship")}.exe.xyz`,
      `${await f.vmName("bravo")}.exe.xyz`,
    ];
    const probe = [
      "echo agent=${SSH_AUTH_SOCK:-none}",
      `for h in ${hosts.join(" ")}; do`,
      "  ssh -o BatchMode=yes -o StrictHostKeyChecking=no \\",
      "    -o UserKnownHostsFile=/dev/null -o ConnectTimeout=10 $h whoami",
      '  echo "$h exit=$?"',
      "done",
    ].join("\n");
    const r = await f.run(["ship", "exec", "alpha", "--", "sh", "-c", probe]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^agent=none$/m);
    for (const h of hosts) {
      assert.match(r.stdout, new RegExp(`^${h} exit=255$`, "m"), r.stdout);
    }
    assert.doesNotMatch(r.stdout, /exedev\n|"email"/);
    assert.equal(
      (r.stderr.match(/Permission denied \(publickey\)/g) ?? []).length,
      3,
      r.stderr,
    );

    // The two commands named in the issue, as given.
    for (
      const cmd of [
        "ssh -o BatchMode=yes exe.dev whoami",
        `ssh -o BatchMode=yes ${hosts[1]} true`,
      ]
    ) {
      const x = await f.run(["ship", "exec", "alpha", "--", "sh", "-c", cmd]);
      assert.notEqual(x.code, 0, `${cmd} was not refused: ${x.stdout}`);
      assert.doesNotMatch(x.stdout, /"email"/);
    }
    await f.assertNoStrays();
    assert.deepEqual(await f.scuttle(), []);
  },
});

Deno.test({
  name:
    "exedev: GH_TOKEN is in no process's argv while ship create owner/repo runs, and only in 0600 files",
  ignore,
  async fn() {
    const ghDir = await Deno.makeTempDir({ prefix: "ohc-gh-" });
    await Deno.chmod(ghDir, 0o755);
    const gh = await startFakeGitHub({ dir: ghDir });
    try {
      const token = `ghp_${crypto.randomUUID().replaceAll("-", "")}`;
      await gh.addRepo("acme", "widgets", { "README.md": "widgets\n" }, {
        private: true,
      });
      gh.addToken(token, { login: "alice", repos: { "acme/widgets": "push" } });
      await using f = await exeDevFleet({
        env: {
          ...OFFLINE,
          OHCOMMODORE_GITHUB_API: gh.url,
          OHCOMMODORE_GITHUB_URL: gh.url,
        },
        // The flagship resolves owner/repo with its own environment (see the
        // report: the laptop's OHCOMMODORE_GITHUB_URL does not travel).
        vmEnv: { OHCOMMODORE_GITHUB_URL: gh.url },
      });

      // Sample every process's argv (laptop, flagship and ship processes
      // all show in this host's ps) while the ship is created.
      const watch = watchArgv(token);
      let samples = 0;
      let leaks: string[] = [];
      let r;
      try {
        r = await f.run(["ship", "create", "acme/widgets"], {
          env: { GH_TOKEN: token },
        });
      } finally {
        ({ samples, leaks } = await watch.stop());
      }
      assert.equal(r.code, 0, r.stdout + r.stderr);
      assert.match(r.stdout, /Ship ready: widgets \(acme\/widgets\)/);
      assert.ok(samples >= 20, `only ${samples} ps samples`);
      assert.deepEqual(leaks, [], "the token showed in a command line");
      assert.doesNotMatch(r.stdout + r.stderr, new RegExp(token));

      // The private repo was cloned with it (so the token did travel).
      const shipHome = await f.vmHome("widgets");
      assert.equal(
        await Deno.readTextFile(`${shipHome}/widgets/README.md`),
        "widgets\n",
      );
      const ex = await f.ok([
        "ship",
        "exec",
        "widgets",
        "--",
        "sh",
        "-c",
        "cd widgets && git log --oneline | wc -l",
      ]);
      assert.equal(ex.stdout.trim(), "1");

      // Every file holding it, on the laptop and on every VM, is 0600.
      const holders = [
        ...await filesContaining(f.home, token),
        ...await filesContaining(f.emu.dir, token),
      ];
      assert.ok(
        holders.some((h) =>
          h.path === `${shipHome}/.ohcommodore/secrets/gh_token`
        ),
        `the ship's secret file holds the token: ${JSON.stringify(holders)}`,
      );
      for (const h of holders) {
        assert.equal(h.mode, 0o600, `${h.path} is ${h.mode.toString(8)}`);
        assert.doesNotMatch(h.path, /\.log$/, `${h.path}: a log holds it`);
      }
      await f.assertNoStrays();
      assert.deepEqual(await f.scuttle(), []);
    } finally {
      await gh.stop();
      await Deno.remove(ghDir, { recursive: true }).catch(() => {});
    }
  },
});

Deno.test({
  name:
    "exedev: killing the flagship's connection to a ship mid-command gives one clear line; the link comes back",
  ignore,
  async fn() {
    await using f = await exeDevFleet({ env: OFFLINE });
    await f.ok(["ship", "create", "alpha"]);
    await f.waitLinksUp(["alpha"]);
    const alphaVm = await f.vmName("alpha");
    const vm = (await f.emu.listVms()).find((v) => v.name === alphaVm)!;

    const marker = `ohc-cut-${crypto.randomUUID().slice(0, 8)}`;
    const started = Date.now();
    const exec = f.run([
      "ship",
      "exec",
      "alpha",
      "--",
      "sh",
      "-c",
      "echo started; sleep 30",
      marker,
    ]);
    // Wait until the command runs on alpha (its sh shows in the host's ps).
    for (;;) {
      const running = processesMatching(marker).some((p) =>
        cmdlineOf(p).startsWith("sh -c echo started")
      );
      if (running) break;
      assert.ok(Date.now() - started < 20_000, "the command never started");
      await sleep(50);
    }
    // The flagship's master connection to alpha: the one process holding
    // a TCP connection to alpha's sshd (only the flagship connects to it).
    const masters = tcpClientsOf(vm.address, vm.port);
    assert.ok(masters.length >= 1, "no connection to alpha found");
    for (const pid of masters) {
      assert.match(cmdlineOf(pid), /^ssh: .*\[mux\]/, cmdlineOf(pid));
    }
    const cut = Date.now();
    for (const pid of masters) Deno.kill(pid, "SIGKILL");

    const r = await exec;
    const took = Date.now() - cut;
    assert.ok(took < 10_000, `the CLI took ${took} ms after the cut`);
    assert.notEqual(r.code, 0);
    assert.equal(r.stdout, "started\n");
    assertOneLineError(r.stderr, "ship exec after the cut");
    assert.match(r.stderr, /connection lost|connection to .* lost/i);

    // The daemon's link reconnects by itself, within seconds.
    for (;;) {
      const s = (await f.status()).ships.find((x) => x.name === "alpha")!;
      if (
        s.link.state === "up" && s.link.last_heartbeat !== null &&
        Date.parse(s.link.last_heartbeat) > cut
      ) break;
      assert.ok(
        Date.now() - cut < 15_000,
        `link not back 15 s after the cut: ${JSON.stringify(s.link)}`,
      );
      await sleep(250);
    }
    // And commands work again.
    const again = await f.ok(["ship", "exec", "alpha", "--", "hostname"]);
    assert.equal(again.stdout.trim(), alphaVm);
    await f.assertNoStrays();
    assert.deepEqual(await f.scuttle(), []);
  },
});

/** Files under `dir` (not following symlinks) that hold a private key. */
async function privateKeysUnder(dir: string): Promise<string[]> {
  return (await filesContaining(dir, "PRIVATE KEY")).map((h) => h.path);
}
