/**
 * The sprites provider and the `sprite exec` transport, driven through the
 * fake `sprite` CLI (tests/e2e/emulators/sprite.ts): real processes, a real
 * CLI binary on disk, nothing mocked in ohcommodore. Needs no root.
 */
import assert from "node:assert/strict";
import {
  parseSpriteList,
  parseSpriteStatus,
  spriteNameError,
  SpritesProvider,
} from "../../lib/providers/sprites.ts";
import { providerFor } from "../../lib/providers/mod.ts";
import { OhcError, UsageError } from "../../lib/errors.ts";
import { run, upload, writeAll } from "../../lib/transport/run.ts";
import { SpriteTransport } from "../../lib/transport/sprite.ts";
import { type FakeSprites, startFakeSprites } from "../e2e/emulators/sprite.ts";

// ------------------------------------------------------------------ pure

Deno.test("sprites: status mapping (cold/warm/running are running)", () => {
  for (const s of ["cold", "warm", "running", "COLD"]) {
    assert.equal(parseSpriteStatus(s), "running", s);
  }
  assert.equal(parseSpriteStatus("creating"), "pending");
  assert.equal(parseSpriteStatus("failed"), "failed");
  assert.equal(parseSpriteStatus("weird"), "unknown");
  assert.equal(parseSpriteStatus(undefined), "unknown");
});

Deno.test("sprites: both `sprite list` text formats parse", () => {
  // One name per line (what ocaptain parses).
  assert.deepEqual(parseSpriteList("ship-a\nship-b\n\n"), [
    { name: "ship-a" },
    { name: "ship-b" },
  ]);
  // A header line, then whitespace columns `name status id`.
  assert.deepEqual(
    parseSpriteList(
      "NAME      STATUS   ID\nship-a    warm     sprite-1\nship-b    cold     sprite-2\n",
    ),
    [{ name: "ship-a", status: "warm" }, { name: "ship-b", status: "cold" }],
  );
  assert.deepEqual(parseSpriteList(""), []);
  assert.deepEqual(parseSpriteList("NAME STATUS\n"), []);
});

Deno.test("sprites: names, argv of exec, providerFor", () => {
  assert.equal(spriteNameError("ship-a"), null);
  for (const bad of ["", "-o", "Ship", "a b", "a_b", "ship-"]) {
    assert.notEqual(spriteNameError(bad), null, bad);
  }
  const t = new SpriteTransport({ name: "ship-a", org: "acme" });
  assert.deepEqual(t.commandArgs(["echo", "a b", "--x"]), [
    "exec",
    "-o",
    "acme",
    "-s",
    "ship-a",
    "--",
    "echo",
    "a b",
    "--x",
  ]);
  assert.deepEqual(
    new SpriteTransport({ name: "s1" }).commandArgs(["a"], true),
    [
      "exec",
      "-s",
      "s1",
      "--tty",
      "--",
      "a",
    ],
  );
  assert.throws(() => new SpriteTransport({ name: "-x" }), /invalid sprite/);
  assert.throws(
    () => new SpriteTransport({ name: "a", org: "--evil" }),
    /invalid sprite org/,
  );
  const p = providerFor({ kind: "sprites", org: "acme" });
  assert.ok(p instanceof SpritesProvider);
  assert.equal((p as SpritesProvider).org, "acme");
});

// ------------------------------------------------------------------ fake CLI

async function withSprites(
  fn: (s: FakeSprites, p: SpritesProvider, tmp: string) => Promise<void>,
  org = "test-org",
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "ohc-sprites-" });
  const sprites = await startFakeSprites({ dir: `${tmp}/sprites`, org });
  const provider = new SpritesProvider(
    { kind: "sprites", org, sprite_bin: `${sprites.binDir}/sprite` },
    { env: sprites.env, readyTimeoutMs: 20_000 },
  );
  try {
    await fn(sprites, provider, tmp);
  } finally {
    for (const name of await sprites.list().catch(() => [])) {
      await provider.destroy(name).catch(() => {});
    }
    await sprites.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

async function sh(t: SpriteTransport, argv: string[]): Promise<string> {
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

Deno.test("sprites provider over the fake sprite CLI: create, exec, list, destroy", async (t) => {
  await withSprites(async (sprites, provider) => {
    const names = ["ship-alpha", "ship-bravo", "ship-charlie"];

    await t.step("3 sprites created in parallel, each reachable", async () => {
      const progress: string[] = [];
      const vms = await Promise.all(
        names.map((n) =>
          provider.create(n, { onProgress: (m) => progress.push(m) })
        ),
      );
      const homes = new Set<string>();
      for (const [i, vm] of vms.entries()) {
        assert.deepEqual(
          { name: vm.name, dest: vm.ssh_dest, status: vm.status },
          { name: names[i], dest: names[i], status: "running" },
        );
        assert.equal(vm.provider, "sprites");
        const tr = provider.transport(vm);
        assert.equal(tr.dest, vm.name);
        assert.equal(await sh(tr, ["printenv", "SPRITE_NAME"]), vm.name);
        const home = await sh(tr, ["sh", "-c", 'echo "$HOME"']);
        assert.equal(home, sprites.home(vm.name));
        homes.add(home);
      }
      assert.equal(homes.size, 3);
      assert.ok(progress.some((m) => /ready/.test(m)));
    });

    await t.step("list shows them as running (API JSON)", async () => {
      const vms = await provider.list();
      assert.deepEqual(vms.map((v) => v.name), names);
      for (const vm of vms) {
        assert.equal(vm.status, "running");
        assert.equal(vm.ssh_dest, vm.name);
        assert.equal(vm.data?.org_slug, "test-org");
      }
    });

    await t.step(
      "exec: argv words stay words, stdin passes, exit codes",
      async () => {
        const tr = provider.transport({
          name: "ship-alpha",
          ssh_dest: "ship-alpha",
        });
        const r = await run(tr, [
          "printf",
          "[%s]",
          "a b",
          "$HOME",
          "--tty",
          "'",
        ]);
        assert.equal(r.stdout, "[a b][$HOME][--tty][']");
        const cat = await run(tr, ["sh", "-c", "cat; exit 7"], {
          stdin: "through stdin\n",
        });
        assert.deepEqual([cat.code, cat.stdout], [7, "through stdin\n"]);
        const missing = await run(tr, ["no-such-program-xyz"]);
        assert.equal(missing.code, 127);
        // A long-lived child with stdin open: written, read back, closed.
        const child = tr.spawn(["sh", "-c", "read x; echo got:$x"], {
          stdin: "piped",
        });
        await writeAll(child.stdin, "ping\n");
        assert.equal(await new Response(child.stdout).text(), "got:ping\n");
        assert.equal((await child.status).code, 0);
        // Interactive (stdio inherited; without a terminal, no --tty).
        assert.equal(
          await tr.interactive(["sh", "-c", "exit 3"], { tty: true }),
          3,
        );
      },
    );

    await t.step("upload() over sprite exec", async () => {
      const tr = provider.transport({
        name: "ship-bravo",
        ssh_dest: "ship-bravo",
      });
      await upload(tr, "secret-ish\n", ".ohcommodore/secrets/x", "600");
      const path = `${sprites.home("ship-bravo")}/.ohcommodore/secrets/x`;
      assert.equal(await Deno.readTextFile(path), "secret-ish\n");
      assert.equal((await Deno.stat(path)).mode! & 0o777, 0o600);
    });

    await t.step("a taken name, a bad name", async () => {
      await rejectsWith(
        provider.create("ship-alpha"),
        (e) =>
          e instanceof OhcError && e.code === "name_taken" &&
          e.message === 'VM name "ship-alpha" is not available',
      );
      await rejectsWith(
        provider.create("Bad_Name"),
        (e) => e instanceof UsageError,
      );
      assert.equal((await sprites.list()).length, 3);
    });

    await t.step("destroy removes them and is idempotent", async () => {
      await Promise.all(names.map((n) => provider.destroy(n)));
      assert.deepEqual(await provider.list(), []);
      await provider.destroy("ship-alpha");
      assert.deepEqual(await sprites.list(), []);
    });
  });
});

Deno.test("sprites: list falls back to `sprite list` text when the API is not there", async () => {
  await withSprites(async (sprites, _p, tmp) => {
    // A wrapper CLI whose `api` fails like an old CLI without that command.
    const bin = `${tmp}/bin`;
    await Deno.mkdir(bin);
    await Deno.writeTextFile(
      `${bin}/sprite`,
      `#!/bin/sh\nif [ "$1" = api ]; then echo 'Error: unknown command "api" for "sprite"' >&2; exit 2; fi\nexec ${sprites.binDir}/sprite "$@"\n`,
    );
    await Deno.chmod(`${bin}/sprite`, 0o755);
    const p = new SpritesProvider(
      { kind: "sprites", org: "test-org", sprite_bin: `${bin}/sprite` },
      { env: sprites.env },
    );
    await p.create("ship-kilo");
    const vms = await p.list();
    assert.deepEqual(vms.map((v) => [v.name, v.status, v.ssh_dest]), [
      ["ship-kilo", "running", "ship-kilo"],
    ]);
    await p.destroy("ship-kilo");
    assert.deepEqual(await p.list(), []);
  });
});

Deno.test("sprites: the org comes from settings, else SPRITE_ORG / SPRITES_ORG", async () => {
  await withSprites(async (sprites) => {
    const fromEnv = new SpritesProvider(
      { kind: "sprites", sprite_bin: `${sprites.binDir}/sprite` },
      { env: { ...sprites.env, SPRITES_ORG: "other-org" } },
    );
    assert.equal(fromEnv.org, "other-org");
    await fromEnv.create("ship-lima");
    // Created in other-org: the test-org provider cannot exec there.
    const tr = new SpriteTransport({
      name: "ship-lima",
      org: "test-org",
      spriteBin: `${sprites.binDir}/sprite`,
      env: sprites.env,
    });
    const r = await run(tr, ["true"]);
    assert.notEqual(r.code, 0);
    assert.match(r.stderr, /not found/);
    assert.equal(
      await sh(
        fromEnv.transport({ name: "ship-lima", ssh_dest: "ship-lima" }),
        [
          "printenv",
          "SPRITE_NAME",
        ],
      ),
      "ship-lima",
    );
    await fromEnv.destroy("ship-lima");
    assert.deepEqual(await sprites.list(), []);
  });
});

Deno.test("sprites: a missing CLI is one clear error", async () => {
  const p = new SpritesProvider({
    kind: "sprites",
    sprite_bin: "/nonexistent/sprite",
  });
  await rejectsWith(
    p.list(),
    (e) =>
      e instanceof OhcError && e.code === "sprite_cli_missing" &&
      /sprites\.dev\/install\.sh/.test(e.hint ?? ""),
  );
});

Deno.test("sprites: 8 parallel creates vs 1 (fake CLI, no delay knob)", async () => {
  await withSprites(async (_s, provider) => {
    const t1 = performance.now();
    await provider.create("bench-one");
    const one = performance.now() - t1;
    await provider.destroy("bench-one");
    const names = Array.from({ length: 8 }, (_, i) => `bench-${i + 1}`);
    const t8 = performance.now();
    await Promise.all(names.map((n) => provider.create(n)));
    const eight = performance.now() - t8;
    await Promise.all(names.map((n) => provider.destroy(n)));
    console.log(
      `sprites create: 1 ${(one / 1000).toFixed(2)} s, 8 in parallel ${
        (eight / 1000).toFixed(2)
      } s, ratio ${(eight / one).toFixed(2)}`,
    );
  });
});
