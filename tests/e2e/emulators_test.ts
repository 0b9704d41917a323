/**
 * Tests of the test emulators themselves: the exe.dev lobby's parsing and
 * answers (pure, in memory), the exe.dev emulator through real OpenSSH
 * (root + sshd) and the fake GitHub. The fake sprites.dev has its own
 * file (fake_sprites_test.ts).
 */

import assert from "node:assert/strict";
import {
  type ExeDev,
  exeDevSkipReason,
  startExeDev,
} from "./emulators/exedev.ts";
import {
  type Machines,
  REGISTRATION_MESSAGE,
  runLobby,
  type Store,
} from "./emulators/exedev/lobby.ts";
import {
  DEFAULT_KNOBS,
  emptyState,
  type Knobs,
  type State,
} from "./emulators/exedev/model.ts";
import {
  INVALID_NAME_MESSAGE,
  parseGoFlags,
  reorderArgs,
  RESERVED_NAME_MESSAGE,
  shlexSplit,
  vmNameError,
} from "./emulators/exedev/parse.ts";
import { fingerprint, parseAuthorizedKey } from "./emulators/exedev/keys.ts";
import { startFakeGitHub } from "./emulators/github.ts";
import { makeClientKey } from "../helpers/sshd.ts";

const dec = new TextDecoder();

// ------------------------------------------------------------------ pure

Deno.test("lobby parsing: shell-like splitting of the exec payload", () => {
  assert.deepEqual(shlexSplit(`ls --json`), ["ls", "--json"]);
  assert.deepEqual(
    shlexSplit(`ssh-key add 'ssh-ed25519 AAAA x y'`),
    ["ssh-key", "add", "ssh-ed25519 AAAA x y"],
  );
  assert.deepEqual(
    shlexSplit(`new --env "A=b c" --name=x\\ y`),
    ["new", "--env", "A=b c", "--name=x y"],
  );
  assert.deepEqual(shlexSplit(`  a  ''  "" `), ["a", "", ""]);
  assert.throws(() => shlexSplit(`new --name 'x`), /closing quote/);
});

Deno.test("lobby parsing: Go flag rules (-x == --x, --k=v == --k v, flags anywhere, --)", () => {
  const specs = {
    json: { kind: "bool" as const, usage: "" },
    name: { kind: "string" as const, usage: "" },
    env: { kind: "repeated" as const, usage: "" },
  };
  const p = (args: string[]) => parseGoFlags(specs, reorderArgs(args));
  for (
    const form of [
      ["-json", "-name", "vm1"],
      ["--json", "--name=vm1"],
      ["--name", "vm1", "--json"],
      ["-json=true", "-name=vm1"],
    ]
  ) {
    const r = p(form);
    assert.equal(r.bools.json, true, form.join(" "));
    assert.equal(r.strings.name, "vm1", form.join(" "));
    assert.deepEqual(r.args, []);
  }
  // Flags after positionals are moved to the front; exe.dev's quirk: a flag
  // without `=` drags the next token along, even for booleans, so the
  // positionals change order.
  assert.deepEqual(p(["a", "--json", "b"]).args, ["b", "a"]);
  assert.equal(p(["a", "--json", "b"]).bools.json, true);
  assert.deepEqual(p(["a", "--json=true", "b"]).args, ["a", "b"]);
  // `--` ends flags.
  const t = p(["--json", "--", "--name", "x"]);
  assert.equal(t.strings.name, "");
  assert.deepEqual(t.args, ["--name", "x"]);
  assert.deepEqual(p(["--env", "A=1", "--env=B=2"]).repeated.env, [
    "A=1",
    "B=2",
  ]);
  assert.throws(
    () => p(["--nope"]),
    /^Error: flag provided but not defined: -nope$/,
  );
  assert.throws(() => p(["--name"]), /flag needs an argument: -name/);
  assert.throws(
    () => p(["--json=maybe"]),
    /invalid boolean value "maybe" for -json: parse error/,
  );
});

Deno.test("lobby parsing: VM names (regex, 5-52 chars, reserved)", () => {
  for (
    const ok of [
      "my-bloggy",
      "ship-1",
      "voyage-abc-ship0",
      "a1234",
      "x".repeat(52),
    ]
  ) {
    assert.equal(vmNameError(ok), null, ok);
  }
  for (
    const bad of [
      "abcd",
      "x".repeat(53),
      "1abcd",
      "Abcde",
      "ab--cd",
      "abcd-",
      "ab_cd",
    ]
  ) {
    assert.equal(vmNameError(bad), INVALID_NAME_MESSAGE, bad);
  }
  for (
    const reserved of [
      "admin",
      "claude",
      "work-er",
      "myexelet",
      "ship-p123",
      "port42",
      "na1234",
    ]
  ) {
    assert.equal(vmNameError(reserved), RESERVED_NAME_MESSAGE, reserved);
  }
});

Deno.test("ssh keys: canonical form and SHA256 fingerprint like ssh-keygen", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const k = await makeClientKey(dir);
    const parsed = parseAuthorizedKey(k.publicKey);
    assert.equal(
      parsed.canonical,
      k.publicKey.split(" ").slice(0, 2).join(" "),
    );
    assert.equal(parsed.comment, "ohc-test-id_ed25519");
    const keygen = await new Deno.Command("ssh-keygen", {
      args: ["-l", "-E", "sha256", "-f", `${k.privatePath}.pub`],
    }).output();
    assert.equal(
      await fingerprint(parsed),
      dec.decode(keygen.stdout).split(" ")[1],
    );
    assert.throws(
      () => parseAuthorizedKey("ssh-ed25519 notbase64!"),
      /no key found/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

class MemStore implements Store {
  state: State = emptyState();
  knobsValue: Knobs = { ...DEFAULT_KNOBS };
  private chain: Promise<unknown> = Promise.resolve();
  read() {
    return Promise.resolve(structuredClone(this.state));
  }
  knobs() {
    return Promise.resolve({ ...this.knobsValue });
  }
  transact<T>(fn: (s: State) => T | Promise<T>): Promise<T> {
    const run = this.chain.then(async () => {
      const s = structuredClone(this.state);
      const r = await fn(s);
      this.state = s;
      return r;
    });
    this.chain = run.catch(() => {});
    return run;
  }
}

const memMachines: Machines = {
  start: () => Promise.resolve({ port: 2222 }),
  destroy: () => Promise.resolve(),
  halt: () => Promise.resolve(),
  isUp: () => Promise.resolve(true),
  log: () => {},
};

async function lobby(
  store: MemStore,
  line: string,
  opts: { key?: string; stdin?: string } = {},
): Promise<{ code: number; out: string }> {
  let out = "";
  const code = await runLobby(line, {
    store,
    machines: memMachines,
    session: {
      publicKey: opts.key ?? null,
      readStdin: () => Promise.resolve(opts.stdin ?? ""),
      write: (s) => out += s,
    },
  });
  return { code, out };
}

const KEY_A =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIF8juxzhh5n+H7kNIw0z5LMRVHRAUWAucNkEbNUkcnCH laptop";
const KEY_B =
  "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDZBhTBFzUGll6h9HwJztsVke3GQPk2/Ky6WB++a14Yz";

Deno.test("lobby (in memory): names are global, so common words belong to other accounts", async () => {
  const s = new MemStore();
  for (const name of ["flagship", "alpha", "bravo", "ship-1", "webapp2"]) {
    assert.deepEqual(await lobby(s, `new --json --name=${name}`), {
      code: 1,
      out: `{"error":"VM name \\"${name}\\" is not available"}\n`,
    });
  }
  assert.equal((await lobby(s, "new --json --name=k3x9q2-alpha")).code, 0);
  assert.equal((await lobby(s, "new --json --name=k3x9q2-flagship")).code, 0);
  // A knob frees them (or holds just a list).
  s.knobsValue = { ...s.knobsValue, heldByOthers: ["bravo"] };
  assert.equal((await lobby(s, "new --json --name=alpha")).code, 0);
  assert.equal((await lobby(s, "new --json --name=bravo")).code, 1);
});

Deno.test("lobby (in memory): new/ls/rm JSON shapes and quirks", async () => {
  const s = new MemStore();
  const created = await lobby(
    s,
    "new --json --name=my-bloggy --tag b,a --tag a",
  );
  assert.equal(created.code, 0);
  assert.equal(created.out.split("\n").length, 2, "one JSON line");
  assert.equal(
    created.out,
    '{"vm_name":"my-bloggy","tags":["a","b"],"ssh_command":"ssh my-bloggy.exe.xyz","ssh_dest":"my-bloggy.exe.xyz","ssh_port":22,"https_url":"https://my-bloggy.exe.xyz","proxy_port":80,"shelley_url":"https://my-bloggy.shelley.exe.xyz","vscode_url":"vscode://vscode-remote/ssh-remote+my-bloggy.exe.xyz/home/exedev?windowId=_blank","xterm_url":"https://my-bloggy.xterm.exe.xyz"}\n',
  );
  // Flags after the positional, single dash, case-insensitive command.
  const ls = await lobby(s, "LS my-bloggy -json");
  assert.equal(ls.code, 0);
  const vm = JSON.parse(ls.out).vms[0];
  assert.deepEqual(Object.keys(vm), [...Object.keys(vm)].sort());
  assert.equal(vm.ssh_dest, "my-bloggy.exe.xyz");
  assert.equal(vm.status, "running");
  assert.deepEqual(vm.tags, ["a", "b"]);

  const taken = await lobby(s, "new --json --name my-bloggy");
  assert.deepEqual(taken, {
    code: 1,
    out: '{"error":"VM name \\"my-bloggy\\" is not available"}\n',
  });
  const badName = await lobby(s, "new --name=Bad_Name");
  assert.deepEqual(badName, { code: 1, out: INVALID_NAME_MESSAGE + "\n" });

  const rm = await lobby(s, "rm --json my-bloggy.exe.xyz nope");
  assert.equal(rm.code, 0);
  assert.deepEqual(rm.out.trim().split("\n").map((l) => JSON.parse(l)), [
    { error: 'VM "nope" not found' },
    { deleted: ["my-bloggy"], failed: ["nope"] },
  ]);
  assert.equal((await lobby(s, "ls --json")).out, '{"vms":[]}\n');
  assert.equal(
    (await lobby(s, "ls")).out,
    "No VMs found. Create one with 'new'.\n",
  );
});

Deno.test("lobby (in memory): errors, help, knobs", async () => {
  const s = new MemStore();
  assert.deepEqual(await lobby(s, "frobnicate --json"), {
    code: 1,
    out: 'exe.dev repl: command not found: "frobnicate --json"\n',
  });
  assert.deepEqual(await lobby(s, "whoami --json extra"), {
    code: 1,
    out:
      '{"error":"\\"whoami\\" command has no subcommands and does not take positional arguments"}\n',
  });
  assert.deepEqual(await lobby(s, "ls --bogus"), {
    code: 1,
    out: "flag parsing error: flag provided but not defined: -bogus\n",
  });
  const sub = await lobby(s, "ssh-key frob");
  assert.equal(sub.code, 1);
  assert.match(
    sub.out,
    /^"ssh-key" subcommand "frob" not found, valid "ssh-key" subcommands are: list, add, remove, rename\n$/,
  );
  const help = await lobby(s, "help new --json");
  assert.equal(help.code, 0);
  assert.equal(JSON.parse(help.out).command, "new");
  assert.equal((await lobby(s, "ls --help")).code, 0);
  assert.deepEqual(await lobby(s, "new --env NOEQUALS"), {
    code: 1,
    out: 'invalid environment variable format "NOEQUALS": must be KEY=VALUE\n',
  });

  s.knobsValue.failCreate = ["doomed-vm"];
  const failed = await lobby(s, "new --json --name doomed-vm");
  assert.deepEqual(failed, {
    code: 1,
    out:
      '{"error":"The server is temporarily unreachable, please try again."}\n',
  });
  assert.equal(s.state.vms.length, 0, "a failed new leaves no VM");
  s.knobsValue.vmPlusDest = true;
  const plus = JSON.parse((await lobby(s, "new --json --name plus-vm")).out);
  assert.equal(plus.ssh_dest, "vm+plus-vm@vm.exe.xyz");
  assert.equal(plus.ssh_command, "ssh vm+plus-vm@vm.exe.xyz");
  // Auto-generated names are valid.
  const auto = JSON.parse((await lobby(s, "new --json")).out);
  assert.equal(vmNameError(auto.vm_name), null);
});

Deno.test("lobby (in memory): ssh-key add/list/remove and whoami", async () => {
  const s = new MemStore();
  assert.deepEqual(await lobby(s, `ssh-key add --json '${KEY_A}'`), {
    code: 0,
    out: `{"name":"laptop","public_key":"${
      KEY_A.split(" ").slice(0, 2).join(" ")
    }","status":"added"}\n`,
  });
  // From stdin; no comment: named key-N.
  const viaStdin = await lobby(s, "ssh-key add --json", {
    stdin: KEY_B + "\n",
  });
  assert.equal(viaStdin.code, 0);
  assert.equal(JSON.parse(viaStdin.out).name, "key-2");
  assert.deepEqual(
    await lobby(s, `ssh-key add '${KEY_B}'`, { stdin: KEY_B }),
    {
      code: 1,
      out:
        "please provide the SSH public key either as an argument or via stdin, not both\n",
    },
  );
  assert.deepEqual(await lobby(s, `ssh-key add ${KEY_B}`), {
    code: 1,
    out: "this SSH key is already associated with your account\n",
  });
  assert.deepEqual(await lobby(s, "ssh-key add --json garbage"), {
    code: 1,
    out: '{"error":"invalid SSH public key: ssh: no key found"}\n',
  });
  const current = KEY_B;
  const who = JSON.parse(
    (await lobby(s, "whoami --json", { key: current })).out,
  );
  assert.deepEqual(Object.keys(who), [
    "email",
    "region",
    "region_display",
    "ssh_keys",
  ]);
  assert.equal(who.ssh_keys[0].public_key, KEY_B, "current key first");
  assert.equal(who.ssh_keys[0].current, true);
  assert.deepEqual(Object.keys(who.ssh_keys[1]), [
    "public_key",
    "fingerprint",
    "name",
    "current",
  ]);
  const list = JSON.parse((await lobby(s, "ssh-key list --json")).out);
  assert.deepEqual(Object.keys(list.ssh_keys[0]), [
    "public_key",
    "fingerprint",
    "name",
    "added_at",
    "current",
  ]);
  const removed = await lobby(s, "ssh-key remove --json laptop");
  assert.equal(removed.code, 0);
  assert.equal(JSON.parse(removed.out).status, "deleted");
  assert.deepEqual(await lobby(s, "ssh-key remove laptop"), {
    code: 1,
    out: 'no matching SSH key found for "laptop"\n',
  });
  s.state.keys = [];
  assert.equal(
    (await lobby(s, "ssh-key list --json")).out,
    '{"ssh_keys":[]}\n',
  );
});

Deno.test("lobby (in memory): concurrent new never loses an update", async () => {
  const s = new MemStore();
  const names = Array.from({ length: 12 }, (_, i) => `para-vm-${i}`);
  const results = await Promise.all(
    names.map((n) => lobby(s, `new --json --name ${n}`)),
  );
  assert.ok(results.every((r) => r.code === 0));
  assert.deepEqual(s.state.vms.map((v) => v.name).sort(), [...names].sort());
  assert.equal(new Set(s.state.vms.map((v) => v.address)).size, 12);
});

// ------------------------------------------------------------ real sshd

interface Ran {
  code: number;
  stdout: string;
  stderr: string;
}

async function ssh(
  emu: ExeDev,
  key: string,
  args: string[],
  stdin?: string,
): Promise<Ran> {
  const child = new Deno.Command("ssh", {
    args: [
      "-F",
      emu.sshConfig,
      "-i",
      key,
      "-o",
      "BatchMode=yes",
      "-o",
      "IdentitiesOnly=yes",
      ...args,
    ],
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const out = await child.output();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

function emulatorProcesses(dir: string): string[] {
  const found: string[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name) || Number(e.name) === Deno.pid) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`).replaceAll(
        "\0",
        " ",
      );
      if (cmd.includes(dir)) found.push(`${e.name} ${cmd}`);
    } catch { /* gone */ }
  }
  return found;
}

Deno.test({
  name: "exe.dev emulator over real OpenSSH",
  ignore: exeDevSkipReason() !== null,
  async fn(t) {
    const tmp = await Deno.makeTempDir({ prefix: "exedev-emu-" });
    const key = await makeClientKey(tmp);
    const stranger = await makeClientKey(tmp, "stranger");
    const extra = await makeClientKey(tmp, "extra");
    const emu = await startExeDev({ dir: `${tmp}/emu`, keys: [key.publicKey] });
    const lobby = (args: string[], stdin?: string) =>
      ssh(emu, key.privatePath, ["exe.dev", ...args], stdin);
    try {
      await t.step(
        "whoami --json, unregistered key gets the registration message",
        async () => {
          const who = await lobby(["whoami", "--json"]);
          assert.equal(who.code, 0, who.stderr);
          const parsed = JSON.parse(who.stdout);
          assert.deepEqual(Object.keys(parsed), [
            "email",
            "region",
            "region_display",
            "ssh_keys",
          ]);
          assert.equal(parsed.ssh_keys.length, 1);
          assert.equal(parsed.ssh_keys[0].current, true);
          assert.equal(who.stderr, "");

          const r = await ssh(emu, stranger.privatePath, ["exe.dev", "whoami"]);
          assert.equal(r.code, 1);
          assert.equal(r.stdout, REGISTRATION_MESSAGE);
          // An unregistered key does not reach any VM either (tested below).
        },
      );

      await t.step("ssh-key add from stdin, list, remove", async () => {
        const both = await lobby(
          ["ssh-key", "add", `'${extra.publicKey}'`],
          extra.publicKey,
        );
        assert.equal(both.code, 1);
        assert.equal(
          both.stdout,
          "please provide the SSH public key either as an argument or via stdin, not both\n",
        );
        const add = await lobby(
          ["ssh-key", "add", "--json"],
          extra.publicKey + "\n",
        );
        assert.equal(add.code, 0, add.stdout);
        assert.deepEqual(Object.keys(JSON.parse(add.stdout)), [
          "name",
          "public_key",
          "status",
        ]);
        const again = await ssh(emu, extra.privatePath, [
          "exe.dev",
          "ssh-key",
          "list",
          "--json",
        ]);
        assert.equal(again.code, 0);
        const keys = JSON.parse(again.stdout).ssh_keys;
        assert.equal(keys.length, 2);
        assert.ok(!again.stdout.includes("null"));
        assert.deepEqual(keys.map((k: { current: boolean }) => k.current), [
          false,
          true,
        ]);
        const rm = await lobby(["ssh-key", "remove", "ohc-test-extra"]);
        assert.deepEqual([rm.code, rm.stdout], [0, "Deleted SSH key.\n"]);
        const gone = await ssh(emu, extra.privatePath, ["exe.dev", "whoami"]);
        assert.equal(gone.stdout, REGISTRATION_MESSAGE);
      });

      let vmA = "";
      await t.step(
        "new --json is one compact line; ls --json has sorted keys",
        async () => {
          const r = await lobby(["new", "--json", "--name=alpha-vm"]);
          assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.equal(r.stdout.split("\n").length, 2);
          const d = JSON.parse(r.stdout);
          assert.deepEqual(Object.keys(d), [
            "vm_name",
            "tags",
            "ssh_command",
            "ssh_dest",
            "ssh_port",
            "https_url",
            "proxy_port",
            "shelley_url",
            "vscode_url",
            "xterm_url",
          ]);
          assert.equal(d.ssh_dest, "alpha-vm.exe.xyz");
          vmA = d.ssh_dest;
          const ls = await lobby(["ls", "-json"]);
          const vms = JSON.parse(ls.stdout).vms;
          assert.equal(vms.length, 1);
          assert.deepEqual(
            Object.keys(vms[0]),
            [...Object.keys(vms[0])].sort(),
          );
          assert.equal(vms[0].status, "running");
          const taken = await lobby(["new", "--name", "alpha-vm", "--json"]);
          assert.deepEqual([taken.code, taken.stdout], [
            1,
            '{"error":"VM name \\"alpha-vm\\" is not available"}\n',
          ]);
          const bad = await lobby(["new", "--name=no"]);
          assert.deepEqual([bad.code, bad.stdout], [
            1,
            INVALID_NAME_MESSAGE + "\n",
          ]);
        },
      );

      await t.step(
        "a VM runs commands as exedev with stdin and exit codes; only registered keys",
        async () => {
          const r = await ssh(emu, key.privatePath, [
            vmA,
            "read x; echo got:$x; whoami; hostname; echo $HOME; echo oops >&2; exit 3",
          ], "hello\n");
          assert.equal(r.code, 3);
          assert.equal(r.stdout, "got:hello\nexedev\nalpha-vm\n/home/exedev\n");
          assert.equal(r.stderr, "oops\n");
          // The user name given is ignored… as long as it is the VM user.
          const named = await ssh(emu, key.privatePath, [
            `exedev@${vmA}`,
            "whoami",
          ]);
          assert.equal(named.stdout, "exedev\n");
          const refused = await ssh(emu, stranger.privatePath, [vmA, "true"]);
          assert.equal(refused.code, 255);
          assert.match(refused.stderr, /Permission denied/);
        },
      );

      await t.step(
        "two VMs have their own /home/exedev and hostname",
        async () => {
          const r = await lobby(["new", "--json", "--name", "bravo-vm"]);
          assert.equal(r.code, 0, r.stdout);
          await ssh(emu, key.privatePath, [vmA, "echo from-a > ~/mark"]);
          const a = await ssh(emu, key.privatePath, [
            vmA,
            "hostname; cat ~/mark",
          ]);
          const b = await ssh(emu, key.privatePath, [
            "bravo-vm.exe.xyz",
            "hostname; cat ~/mark 2>/dev/null || echo none",
          ]);
          assert.equal(a.stdout, "alpha-vm\nfrom-a\n");
          assert.equal(b.stdout, "bravo-vm\nnone\n");
          const vms = await emu.listVms();
          const home = vms.find((v) => v.name === "alpha-vm")!.home;
          assert.equal(await Deno.readTextFile(`${home}/mark`), "from-a\n");
        },
      );

      await t.step("restart keeps the VM's home", async () => {
        const r = await lobby(["restart", "alpha-vm", "--json"]);
        assert.deepEqual([r.code, r.stdout], [
          0,
          '{"status":"restarted","vm_name":"alpha-vm"}\n',
        ]);
        const after = await ssh(emu, key.privatePath, [vmA, "cat ~/mark"]);
        assert.equal(after.stdout, "from-a\n");
        const missing = await lobby(["restart", "nope-vm"]);
        assert.deepEqual([missing.code, missing.stdout], [
          1,
          'VM "nope-vm" not found\n',
        ]);
      });

      await t.step(
        "a daemon outlives its session and dies with rm; rm of a missing VM",
        async () => {
          const start = await ssh(emu, key.privatePath, [
            "bravo-vm.exe.xyz",
            "setsid nohup sleep 1234 >/dev/null 2>&1 < /dev/null & echo started",
          ]);
          assert.equal(start.stdout, "started\n");
          const still = await ssh(emu, key.privatePath, [
            "bravo-vm.exe.xyz",
            "pgrep -x sleep",
          ]);
          assert.equal(
            still.code,
            0,
            "daemon still running after the session ended",
          );
          const sleepers = () =>
            new Deno.Command("pgrep", { args: ["-f", "sleep 1234"] })
              .outputSync();
          assert.equal(sleepers().code, 0);
          const rm = await lobby(["rm", "--json", "bravo-vm", "ghost-vm"]);
          assert.equal(rm.code, 0);
          assert.deepEqual(
            rm.stdout.trim().split("\n").map((l) => JSON.parse(l)),
            [
              { error: 'VM "ghost-vm" not found' },
              { deleted: ["bravo-vm"], failed: ["ghost-vm"] },
            ],
          );
          assert.equal(sleepers().code, 1, "rm killed the VM's processes");
          const ls = JSON.parse((await lobby(["ls", "--json"])).stdout).vms;
          assert.deepEqual(ls.map((v: { vm_name: string }) => v.vm_name), [
            "alpha-vm",
          ]);
        },
      );

      await t.step(
        "from inside a VM, ssh exe.dev and ssh <other>.exe.xyz work with a registered key",
        async () => {
          await ssh(
            emu,
            key.privatePath,
            [
              vmA,
              "mkdir -p ~/.ssh && cat > ~/.ssh/id_ed25519 && chmod 600 ~/.ssh/id_ed25519",
            ],
            await Deno.readTextFile(key.privatePath),
          );
          const r = await ssh(emu, key.privatePath, [
            vmA,
            "ssh -o BatchMode=yes exe.dev whoami --json && ssh -o BatchMode=yes alpha-vm.exe.xyz hostname",
          ]);
          assert.equal(r.code, 0, r.stderr);
          const [who, host] = r.stdout.trim().split("\n");
          assert.equal(JSON.parse(who).ssh_keys[0].current, true);
          assert.equal(host, "alpha-vm");
        },
      );

      await t.step(
        "six concurrent news, with a provisioning delay, all listed",
        async () => {
          await emu.setKnobs({ delayMs: 3000 });
          const names = Array.from({ length: 6 }, (_, i) => `para-vm-${i}`);
          const t0 = Date.now();
          const results = await Promise.all(
            names.map((n) => lobby(["new", "--json", `--name=${n}`])),
          );
          const elapsed = Date.now() - t0;
          for (const r of results) assert.equal(r.code, 0, r.stdout + r.stderr);
          assert.ok(elapsed < 6 * 3000, `creations overlapped (${elapsed}ms)`);
          await emu.setKnobs({ delayMs: 0 });
          const listed = JSON.parse((await lobby(["ls", "--json"])).stdout).vms
            .map((v: { vm_name: string }) => v.vm_name);
          for (const n of names) assert.ok(listed.includes(n), `${n} listed`);
          const hosts = await Promise.all(
            names.map((n) =>
              ssh(emu, key.privatePath, [`${n}.exe.xyz`, "hostname"])
            ),
          );
          assert.deepEqual(hosts.map((h) => h.stdout.trim()), names);
          const rm = await lobby(["rm", "--json", ...names]);
          assert.deepEqual(JSON.parse(rm.stdout), {
            deleted: names,
            failed: [],
          });
        },
      );

      await t.step(
        "knobs: pending first, failed creation, failed status, vm+ ssh_dest",
        async () => {
          // Held pending until the knob goes back to 0, however slow the
          // machine.
          await emu.setKnobs({ pendingMs: 300_000 });
          const r = await lobby(["new", "--json", "--name=slow-vm"]);
          assert.equal(r.code, 0);
          const first = JSON.parse(
            (await lobby(["ls", "--json", "slow-vm"])).stdout,
          );
          assert.equal(first.vms[0].status, "pending");
          await emu.setKnobs({ pendingMs: 0 });
          let status = "pending";
          for (let i = 0; i < 40 && status === "pending"; i++) {
            await new Promise((res) => setTimeout(res, 250));
            status =
              JSON.parse((await lobby(["ls", "--json", "slow-vm"])).stdout)
                .vms[0]
                .status;
          }
          assert.equal(status, "running");
          assert.equal(
            (await ssh(emu, key.privatePath, ["slow-vm.exe.xyz", "hostname"]))
              .stdout,
            "slow-vm\n",
          );

          await emu.setKnobs({
            failCreate: ["doomed-vm"],
            failedVms: ["broken-vm"],
          });
          const fail = await lobby(["new", "--json", "--name=doomed-vm"]);
          assert.deepEqual([fail.code, fail.stdout], [
            1,
            '{"error":"The server is temporarily unreachable, please try again."}\n',
          ]);
          await lobby(["new", "--json", "--name=broken-vm"]);
          const st = JSON.parse((await lobby(["ls", "--json"])).stdout).vms;
          assert.equal(
            st.find((v: { vm_name: string }) => v.vm_name === "broken-vm")
              .status,
            "failed",
          );
          assert.ok(
            !st.some((v: { vm_name: string }) => v.vm_name === "doomed-vm"),
          );

          await emu.setKnobs({
            vmPlusDest: true,
            failCreate: false,
            failedVms: [],
            vmEnv: { FROM_KNOB: "k1" },
          });
          const plus = JSON.parse(
            (await lobby(["new", "--json", "--name=plus-vm", "--env='A=b c'"]))
              .stdout,
          );
          assert.equal(plus.ssh_dest, "vm+plus-vm@vm.exe.xyz");
          const viaPlus = await ssh(emu, key.privatePath, [
            plus.ssh_dest,
            'whoami; hostname; echo "$FROM_KNOB/$A"',
          ]);
          assert.equal(
            viaPlus.stdout,
            "exedev\nplus-vm\nk1/b c\n",
            viaPlus.stderr,
          );
          await emu.setKnobs({ vmPlusDest: false, vmEnv: {} });
        },
      );
    } finally {
      await emu.stop();
      const left = emulatorProcesses(`${tmp}/emu`);
      await Deno.remove(tmp, { recursive: true }).catch(() => {});
      assert.deepEqual(left, [], "no emulator process left after stop()");
    }
  },
});

// ------------------------------------------------------------------ github

Deno.test("fake GitHub: 200/404/401 and git clone over HTTP and file://", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "fake-gh-" });
  const gh = await startFakeGitHub({ dir: `${tmp}/gh` });
  try {
    await gh.addRepo("acme", "widgets", {
      "README.md": "hello\n",
      "src/a.txt": "a\n",
    }, {
      private: true,
    });
    await gh.addRepo("acme", "open", { "x.txt": "x\n" });
    gh.addToken("tok-write", {
      login: "alice",
      repos: { "acme/widgets": "push" },
    });
    gh.addToken("tok-none", { login: "bob" });
    const get = (path: string, auth?: string) =>
      fetch(`${gh.url}${path}`, {
        headers: auth ? { Authorization: auth } : {},
      });

    const ok = await get("/repos/acme/widgets", "Bearer tok-write");
    assert.equal(ok.status, 200);
    const body = await ok.json();
    assert.equal(body.full_name, "acme/widgets");
    assert.equal(body.private, true);
    assert.deepEqual(body.permissions, {
      admin: false,
      maintain: false,
      push: true,
      triage: true,
      pull: true,
    });
    assert.equal(body.clone_url, `${gh.url}/acme/widgets.git`);
    const tokenForm = await get("/repos/acme/widgets", "token tok-write");
    assert.equal(tokenForm.status, 200);
    await tokenForm.body?.cancel();

    for (const auth of ["Bearer tok-none", undefined]) {
      const hidden = await get("/repos/acme/widgets", auth);
      assert.equal(hidden.status, 404);
      assert.equal((await hidden.json()).message, "Not Found");
    }
    const none = await get("/repos/acme/nothing", "Bearer tok-write");
    assert.equal(none.status, 404);
    await none.body?.cancel();
    const bad = await get("/repos/acme/widgets", "Bearer wrong");
    assert.equal(bad.status, 401);
    assert.equal((await bad.json()).message, "Bad credentials");
    const pub = await get("/repos/acme/open", "Bearer tok-none");
    assert.equal(pub.status, 200);
    assert.equal((await pub.json()).permissions.push, false);

    const clone = async (url: string, dest: string) =>
      await new Deno.Command("git", {
        args: ["clone", "-q", url, dest],
        env: { GIT_TERMINAL_PROMPT: "0" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output();
    const authed = gh.url.replace(
      "http://",
      "http://x-access-token:tok-write@",
    );
    const c1 = await clone(`${authed}/acme/widgets.git`, `${tmp}/c1`);
    assert.equal(c1.code, 0, dec.decode(c1.stderr));
    assert.equal(await Deno.readTextFile(`${tmp}/c1/src/a.txt`), "a\n");
    const c2 = await clone(`${gh.url}/acme/widgets.git`, `${tmp}/c2`);
    assert.notEqual(c2.code, 0, "a private repo needs a token");
    const c3 = await clone(`${gh.fileBase}/acme/open.git`, `${tmp}/c3`);
    assert.equal(c3.code, 0, dec.decode(c3.stderr));
    assert.equal(await Deno.readTextFile(`${tmp}/c3/x.txt`), "x\n");
  } finally {
    await gh.stop();
    await Deno.remove(tmp, { recursive: true });
  }
});
