/**
 * The exedev provider against the exe.dev emulator, through real OpenSSH:
 * the lobby is a real sshd answering `new/ls/rm/ssh-key/whoami`, every VM is
 * a real sshd in its own namespaces (tests/e2e/emulators/exedev.ts). Only
 * the pure helpers are tested without it.
 */
import assert from "node:assert/strict";
import { ExeDevProvider } from "../../lib/providers/exedev.ts";
import {
  envFlags,
  exeDevNameError,
  parseExeDevStatus,
  parseJsonLines,
  parseSshDest,
} from "../../lib/providers/exedev_lobby.ts";
import { ensureKey, sshKeyPaths } from "../../lib/providers/ssh_keys.ts";
import { providerFor } from "../../lib/providers/mod.ts";
import { OhcError, UsageError } from "../../lib/errors.ts";
import { run, upload } from "../../lib/transport/run.ts";
import { SshTransport } from "../../lib/transport/ssh.ts";
import {
  type ExeDev,
  exeDevSkipReason,
  startExeDev,
} from "../e2e/emulators/exedev.ts";

const ignore = exeDevSkipReason() !== null;

// ------------------------------------------------------------------ pure

Deno.test("exedev: ssh_dest forms parse (host, user@host, vm+name@vm.exe.xyz)", () => {
  assert.deepEqual(parseSshDest("bloggy.exe.xyz"), { host: "bloggy.exe.xyz" });
  assert.deepEqual(parseSshDest("exedev@bloggy.exe.xyz"), {
    user: "exedev",
    host: "bloggy.exe.xyz",
  });
  assert.deepEqual(parseSshDest("vm+bloggy@vm.exe.xyz"), {
    user: "vm+bloggy",
    host: "vm.exe.xyz",
  });
  for (const bad of ["", "-oProxyCommand=x", "a b", "@host", "user@", "a\nb"]) {
    assert.throws(() => parseSshDest(bad), /invalid ssh_dest/, bad);
  }
});

Deno.test("exedev: statuses, names, JSON lines, --env", () => {
  for (const s of ["pending", "running", "stopped", "failed", "building"]) {
    assert.equal(parseExeDevStatus(s), s);
  }
  assert.equal(parseExeDevStatus("unknown"), "unknown");
  assert.equal(parseExeDevStatus("creating"), "unknown");
  assert.equal(parseExeDevStatus(undefined), "unknown");

  assert.equal(exeDevNameError("ship-1"), null);
  assert.equal(exeDevNameError("a-vm-name"), null);
  for (const bad of ["abc", "Ship-a", "ship--a", "-ship", "ship-", "1ship"]) {
    assert.match(exeDevNameError(bad) ?? "", /must be 5-52 characters/, bad);
  }
  assert.notEqual(exeDevNameError("a".repeat(53)), null);

  assert.deepEqual(
    parseJsonLines(
      '{"error":"VM \\"foo\\" not found"}\n{"deleted":[],"failed":["foo"]}\n',
    ),
    [{ error: 'VM "foo" not found' }, { deleted: [], failed: ["foo"] }],
  );
  assert.deepEqual(parseJsonLines('Creating x...\n{"a":1}\nnot {json\n'), [
    { a: 1 },
  ]);

  assert.deepEqual(envFlags({ TARGET_REPO: "acme/w", ROLE: "captain" }), [
    "--env",
    "TARGET_REPO=acme/w",
    "--env",
    "ROLE=captain",
  ]);
  for (const secret of ["GH_TOKEN", "ANTHROPIC_API_KEY", "DB_PASSWORD"]) {
    assert.throws(
      () => envFlags({ [secret]: "x" }),
      (e) => e instanceof UsageError && /looks like a secret/.test(e.message),
    );
  }
  assert.throws(() => envFlags({ "A-B": "x" }), UsageError);
  assert.throws(() => envFlags({ A: "x\ny" }), UsageError);
});

Deno.test("providerFor returns the exedev provider", () => {
  const p = providerFor({ kind: "exedev", lobby: "exe.dev" }, {
    home: "/nonexistent",
  });
  assert.ok(p instanceof ExeDevProvider);
  assert.equal(p.kind, "exedev");
});

// ------------------------------------------------------------------ emulator

interface Ctx {
  tmp: string;
  home: string;
  emu: ExeDev;
  provider: ExeDevProvider;
  extra: ExeDevProvider[];
  /** A provider for another home (its own key), closed at the end. */
  other(home: string, identityFile?: string): ExeDevProvider;
}

async function withEmulator(
  knobs: { delayMs?: number },
  fn: (c: Ctx) => Promise<void>,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "ohc-exedev-" });
  const home = `${tmp}/laptop`;
  const key = await ensureKey(home, { name: "laptop" });
  const emu = await startExeDev({
    dir: `${tmp}/emu`,
    keys: [key.publicKey],
    ...knobs,
  });
  const settings = { kind: "exedev" as const, ssh_config: emu.sshConfig };
  const provider = new ExeDevProvider(settings, {
    home,
    readyTimeoutMs: 30_000,
    connectTimeoutS: 5,
  });
  const extra: ExeDevProvider[] = [];
  const ctx: Ctx = {
    tmp,
    home,
    emu,
    provider,
    extra,
    other(h, identityFile) {
      const p = new ExeDevProvider(settings, {
        home: h,
        identityFile,
        readyTimeoutMs: 30_000,
        connectTimeoutS: 5,
      });
      extra.push(p);
      return p;
    },
  };
  try {
    await fn(ctx);
  } finally {
    for (const p of [provider, ...extra]) await p.close();
    // Whatever a failed test left behind: gone before the emulator stops.
    for (const vm of await emu.listVms().catch(() => [])) {
      await provider.destroy(vm.name).catch(() => {});
    }
    await provider.close();
    await emu.stop();
    for (const h of [home, ...extra.map((_, i) => `${tmp}/other${i}`)]) {
      await Deno.remove(sshKeyPaths(h).controlDir, { recursive: true })
        .catch(() => {});
    }
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

async function sh(t: SshTransport, argv: string[]): Promise<string> {
  const r = await run(t, argv, { signal: AbortSignal.timeout(30_000) });
  assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

async function rejectsWith(
  p: Promise<unknown>,
  check: (e: unknown) => boolean,
): Promise<void> {
  await assert.rejects(p, (e) => {
    assert.ok(check(e), `unexpected error: ${(e as Error)?.stack ?? e}`);
    return true;
  });
}

Deno.test({
  name: "exedev provider over real OpenSSH: create, reach, list, keys, destroy",
  ignore,
  async fn(t) {
    await withEmulator({}, async ({ emu, provider, other, tmp }) => {
      await t.step("whoami --json names this key as current", async () => {
        const me = await provider.whoami();
        assert.equal(me.email, "tester@example.com");
        assert.equal(me.ssh_keys.length, 1);
        assert.equal(me.ssh_keys[0].current, true);
        assert.match(me.ssh_keys[0].public_key, /^ssh-ed25519 /);
        assert.match(me.ssh_keys[0].fingerprint, /^SHA256:/);
      });

      const names = ["ship-alpha", "ship-bravo", "ship-charlie"];
      await t.step("3 VMs created in parallel, each reachable", async () => {
        const progress: Record<string, string[]> = {};
        const vms = await Promise.all(names.map((n) =>
          provider.create(n, {
            onProgress: (m) => (progress[n] ??= []).push(m),
            env: { TARGET_REPO: `acme/${n}` },
          })
        ));
        const hosts = new Set<string>();
        for (const [i, vm] of vms.entries()) {
          assert.equal(vm.name, names[i]);
          assert.equal(vm.ssh_dest, `${names[i]}.exe.xyz`);
          assert.equal(vm.status, "running");
          assert.equal(vm.provider, "exedev");
          assert.equal(vm.data?.https_url, `https://${names[i]}.exe.xyz`);
          const tr = provider.transport(vm);
          const host = await sh(tr, ["hostname"]);
          assert.equal(host, vm.name);
          hosts.add(host);
          assert.equal(
            await sh(tr, ["sh", "-c", "echo $HOME"]),
            "/home/exedev",
          );
          assert.equal(await sh(tr, ["whoami"]), "exedev");
          // A plain setting given with `new --env` reaches the VM.
          assert.equal(
            await sh(tr, ["printenv", "TARGET_REPO"]),
            `acme/${names[i]}`,
          );
          assert.ok(progress[vm.name].some((m) => /creating/.test(m)));
          assert.ok(progress[vm.name].some((m) => /ready/.test(m)));
        }
        assert.equal(hosts.size, 3);
        // The transport multiplexes: a master connection is up.
        assert.notEqual(await provider.transport(vms[0]).masterPid(), null);
      });

      await t.step("list shows them, running", async () => {
        const vms = await provider.list();
        assert.deepEqual(vms.map((v) => v.name), names);
        for (const vm of vms) {
          assert.equal(vm.status, "running");
          assert.equal(vm.ssh_dest, `${vm.name}.exe.xyz`);
          assert.equal(vm.data?.region, "lon");
        }
      });

      await t.step("upload() over the VM's SshTransport", async () => {
        const tr = provider.transport({
          name: "ship-alpha",
          ssh_dest: "ship-alpha.exe.xyz",
        });
        const data = new TextEncoder().encode("line one\n'quoted' $HOME\n");
        await upload(tr, data, ".ohcommodore/secrets/probe.txt", "600");
        assert.equal(
          await sh(tr, ["cat", ".ohcommodore/secrets/probe.txt"]),
          "line one\n'quoted' $HOME",
        );
        assert.equal(
          await sh(tr, [
            "stat",
            "-c",
            "%a %U",
            ".ohcommodore/secrets/probe.txt",
          ]),
          "600 exedev",
        );
        // Each VM has its own /home/exedev.
        const r = await run(
          provider.transport({
            name: "ship-bravo",
            ssh_dest: "ship-bravo.exe.xyz",
          }),
          ["test", "-e", ".ohcommodore/secrets/probe.txt"],
        );
        assert.equal(r.code, 1);
      });

      await t.step("a taken name, a bad name, a secret --env", async () => {
        await rejectsWith(
          provider.create("ship-alpha"),
          (e) =>
            e instanceof OhcError && e.code === "name_taken" &&
            e.message === 'VM name "ship-alpha" is not available',
        );
        // A reserved word is somebody else's too: another name may do.
        await rejectsWith(
          provider.create("daemon"),
          (e) =>
            e instanceof OhcError && e.code === "name_taken" &&
            e.message === 'VM name "daemon" is not available',
        );
        await rejectsWith(
          provider.create("no"),
          (e) => e instanceof UsageError && /5-52 characters/.test(e.message),
        );
        await rejectsWith(
          provider.create("ship-delta", { env: { GH_TOKEN: "ghp_x" } }),
          (e) => e instanceof UsageError && /GH_TOKEN/.test(e.message),
        );
        assert.equal((await emu.listVms()).length, 3);
      });

      await t.step(
        "an unregistered key gets the registration error",
        async () => {
          const stranger = other(`${tmp}/other0`);
          for (
            const attempt of [
              () => stranger.whoami(),
              () => stranger.create("ship-stranger"),
              () => stranger.list(),
            ]
          ) {
            await rejectsWith(
              attempt(),
              (e) =>
                e instanceof OhcError && e.code === "exedev_not_registered" &&
                e.message ===
                  "this key is not registered on your exe.dev account: run ssh exe.dev" &&
                /ssh-key add/.test(e.hint ?? ""),
            );
          }
          assert.equal((await emu.listVms()).length, 3);
        },
      );

      await t.step(
        "ssh-key add via stdin registers a key that then reaches VMs",
        async () => {
          const flagHome = `${tmp}/other1`;
          const flagship = other(flagHome);
          const key = await ensureKey(flagHome, { name: "flagship" });
          assert.match(key.publicKey, / ohcommodore-flagship$/);
          await rejectsWith(
            flagship.whoami(),
            (e) => e instanceof OhcError && e.code === "exedev_not_registered",
          );
          assert.deepEqual(await provider.registerKey(key.publicKey), {
            status: "added",
          });
          assert.deepEqual(await provider.registerKey(key.publicKey), {
            status: "already",
          });
          const me = await flagship.whoami();
          assert.equal(me.ssh_keys.length, 2);
          const cur = me.ssh_keys.find((k) => k.current);
          assert.equal(cur?.name, "ohcommodore-flagship");
          const tr = flagship.transport({
            name: "ship-charlie",
            ssh_dest: "ship-charlie.exe.xyz",
          });
          assert.equal(await sh(tr, ["hostname"]), "ship-charlie");
          await rejectsWith(
            provider.registerKey("ssh-ed25519 not-base64!"),
            (e) =>
              e instanceof OhcError && e.code === "exedev_key_add_failed" &&
              /invalid SSH public key/.test(e.message),
          );
        },
      );

      await t.step(
        "ssh_dest as vm+<name>@vm.exe.xyz: list, create, reach",
        async () => {
          await emu.setKnobs({ vmPlusDest: true });
          try {
            const vms = await provider.list();
            const alpha = vms.find((v) => v.name === "ship-alpha")!;
            assert.equal(alpha.ssh_dest, "vm+ship-alpha@vm.exe.xyz");
            assert.deepEqual(parseSshDest(alpha.ssh_dest), {
              user: "vm+ship-alpha",
              host: "vm.exe.xyz",
            });
            assert.equal(
              await sh(provider.transport(alpha), ["hostname"]),
              "ship-alpha",
            );
            const echo = await provider.create("ship-echo");
            assert.equal(echo.ssh_dest, "vm+ship-echo@vm.exe.xyz");
            assert.equal(
              await sh(provider.transport(echo), ["hostname"]),
              "ship-echo",
            );
            await provider.destroy("ship-echo");
          } finally {
            await emu.setKnobs({ vmPlusDest: false });
          }
        },
      );

      await t.step(
        "pending while sshd starts; create waits for it",
        async () => {
          // Held pending until the knob goes back to 0 (below), however
          // slow the machine.
          await emu.setKnobs({ pendingMs: 300_000 });
          try {
            const progress: string[] = [];
            const creating = provider.create("ship-foxtrot", {
              onProgress: (m) => progress.push(m),
            });
            let sawPending = false;
            const deadline = Date.now() + 120_000;
            while (Date.now() < deadline) {
              const vm = (await provider.list()).find((v) =>
                v.name === "ship-foxtrot"
              );
              if (vm?.status === "pending") sawPending = true;
              if (sawPending && progress.some((m) => /\(try 2/.test(m))) break;
              await new Promise((r) => setTimeout(r, 100));
            }
            await emu.setKnobs({ pendingMs: 0 });
            const vm = await creating;
            assert.ok(sawPending, "ls --json never showed pending");
            assert.ok(
              progress.some((m) =>
                /waiting for ssh to ship-foxtrot \(try 2/.test(m)
              ),
              progress.join("\n"),
            );
            assert.equal(
              await sh(provider.transport(vm), ["hostname"]),
              "ship-foxtrot",
            );
            const listed = (await provider.list()).find((v) =>
              v.name === vm.name
            );
            assert.equal(listed?.status, "running");
            await provider.destroy(vm.name);
          } finally {
            await emu.setKnobs({ pendingMs: 0 });
          }
        },
      );

      await t.step(
        "a VM that fails is reported and destroyed, not orphaned",
        async () => {
          await emu.setKnobs({ failedVms: ["ship-golf"] });
          try {
            const t0 = Date.now();
            await rejectsWith(
              provider.create("ship-golf"),
              (e) =>
                e instanceof OhcError && e.code === "exedev_vm_failed" &&
                /ship-golf.*failed; it was destroyed/.test(e.message),
            );
            assert.ok(
              Date.now() - t0 < 20_000,
              "should stop before the timeout",
            );
            assert.equal(
              (await emu.listVms()).some((v) => v.name === "ship-golf"),
              false,
            );
          } finally {
            await emu.setKnobs({ failedVms: [] });
          }
        },
      );

      await t.step("a failing `new` gives the lobby's message", async () => {
        await emu.setKnobs({ failCreate: ["ship-hotel"] });
        try {
          await rejectsWith(
            provider.create("ship-hotel"),
            (e) =>
              e instanceof OhcError && e.code === "exedev_create_failed" &&
              e.message ===
                "exe.dev new ship-hotel: The server is temporarily unreachable, please try again.",
          );
        } finally {
          await emu.setKnobs({ failCreate: false });
        }
      });

      await t.step("destroy removes them and is idempotent", async () => {
        await Promise.all(names.map((n) => provider.destroy(n)));
        assert.deepEqual(await provider.list(), []);
        await provider.destroy("ship-alpha"); // missing: rm exits 0, two lines
        await Promise.all(names.map((n) => provider.destroy(n)));
        await rejectsWith(
          provider.destroy("--json"),
          (e) => e instanceof UsageError,
        );
      });

      await t.step("the emulator lists no leftover VM", async () => {
        assert.deepEqual(await emu.listVms(), []);
      });
    });
  },
});

Deno.test({
  name: "exedev: an unreachable lobby is one clear error",
  ignore,
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "ohc-exedev-" });
    try {
      const cfg = `${tmp}/ssh_config`;
      // A port nobody listens on.
      const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
      const port = (l.addr as Deno.NetAddr).port;
      l.close();
      await Deno.writeTextFile(
        cfg,
        `Host exe.dev\n  HostName 127.0.0.1\n  Port ${port}\n`,
      );
      const p = new ExeDevProvider({ kind: "exedev", ssh_config: cfg }, {
        home: `${tmp}/home`,
        connectTimeoutS: 2,
      });
      try {
        await rejectsWith(
          p.list(),
          (e) =>
            e instanceof OhcError && e.code === "exedev_unreachable" &&
            /cannot reach the exe.dev lobby: connection to exe.dev failed: .*Connection refused/
              .test(e.message),
        );
      } finally {
        await p.close();
        await Deno.remove(sshKeyPaths(`${tmp}/home`).controlDir, {
          recursive: true,
        }).catch(() => {});
      }
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});

Deno.test({
  name: "exedev: 8 parallel creates with a 2 s provisioning delay vs 1",
  ignore,
  async fn() {
    await withEmulator({ delayMs: 2000 }, async ({ emu, provider }) => {
      // Warm the lobby master first, as a running CLI would have it.
      await provider.whoami();
      const t1 = performance.now();
      await provider.create("bench-one");
      const one = performance.now() - t1;
      await provider.destroy("bench-one");

      const names = Array.from({ length: 8 }, (_, i) => `bench-ship-${i + 1}`);
      const t8 = performance.now();
      const vms = await Promise.all(names.map((n) => provider.create(n)));
      const eight = performance.now() - t8;
      assert.equal(vms.length, 8);
      await Promise.all(names.map((n) => provider.destroy(n)));
      assert.deepEqual(await emu.listVms(), []);
      const ratio = eight / one;
      console.log(
        `exedev create: 1 VM ${(one / 1000).toFixed(2)} s, 8 in parallel ${
          (eight / 1000).toFixed(2)
        } s, ratio ${ratio.toFixed(2)} (delay knob 2 s)`,
      );
      // Serial creation would be ~8x; the goal for bench/fleet.ts is 1.3.
      assert.ok(ratio < 3, `8 parallel creates took ${ratio.toFixed(2)}x one`);
    });
  },
});

Deno.test("ensureKey: generated once, 0600 in a 0700 dir, idempotent and concurrent", async () => {
  const home = await Deno.makeTempDir({ prefix: "ohc-key-" });
  try {
    const [a, b] = await Promise.all([
      ensureKey(home, { name: "box one" }),
      ensureKey(home, { name: "box one" }),
    ]);
    assert.deepEqual(a, b);
    const p = sshKeyPaths(home);
    assert.equal(a.privatePath, p.privatePath);
    assert.match(a.publicKey, /^ssh-ed25519 \S+ ohcommodore-box-one$/);
    assert.equal((await Deno.stat(p.privatePath)).mode! & 0o777, 0o600);
    assert.equal((await Deno.stat(p.dir)).mode! & 0o777, 0o700);
    assert.equal(p.knownHostsFile, `${home}/.ohcommodore/ssh/known_hosts`);
    // The control dir fits the 49-byte limit SshTransport enforces.
    assert.ok(new TextEncoder().encode(p.controlDir).length <= 49);
    assert.match(p.controlDir, /^\/tmp\/ohc-\d+-[0-9a-f]{8}$/);
    assert.notEqual(sshKeyPaths(`${home}/x`).controlDir, p.controlDir);
    // A second process sees the same key; a lost .pub is rebuilt.
    await Deno.remove(p.publicPath);
    await Deno.chmod(p.privatePath, 0o644);
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "eval",
        `import { ensureKey } from ${
          JSON.stringify(
            new URL("../../lib/providers/ssh_keys.ts", import.meta.url).href,
          )
        }; console.log((await ensureKey(${JSON.stringify(home)})).publicKey)`,
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
    const again = new TextDecoder().decode(out.stdout).trim();
    assert.equal(
      again.split(" ").slice(0, 2).join(" "),
      a.publicKey.split(" ").slice(0, 2).join(" "),
    );
    assert.equal((await Deno.stat(p.privatePath)).mode! & 0o777, 0o600);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("SshTransport accepts the provider's ssh_dest forms", () => {
  for (const dest of ["a.exe.xyz", "exedev@a.exe.xyz", "vm+a@vm.exe.xyz"]) {
    const t = new SshTransport({
      dest,
      knownHostsFile: "/tmp/kh",
      controlDir: "/tmp/ohc-test-cm",
    });
    assert.equal(t.commandArgs(["true"]).at(-3), dest);
  }
});
