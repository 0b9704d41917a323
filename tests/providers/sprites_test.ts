/**
 * The sprites provider, its HTTP API client and exec transport, the token
 * lookup and the in-sprite runtime (services, holds), driven against the
 * fake sprites.dev (tests/e2e/emulators/sprite.ts): real processes and a
 * real HTTP server, nothing mocked in ohcommodore. Needs no root.
 */
import assert from "node:assert/strict";
import {
  parseSpriteStatus,
  spriteNameError,
  SpritesProvider,
} from "../../lib/providers/sprites.ts";
import { providerFor } from "../../lib/providers/mod.ts";
import {
  findSpriteToken,
  orgOfToken,
} from "../../lib/providers/sprites_token.ts";
import { OhcError, UsageError } from "../../lib/errors.ts";
import {
  lostConnection,
  run,
  upload,
  writeAll,
} from "../../lib/transport/run.ts";
import { LOST, SpriteTransport } from "../../lib/transport/sprite.ts";
import {
  type FakeSprites,
  type FakeSpritesOptions,
  startFakeSprites,
} from "../e2e/emulators/sprite.ts";
import { until } from "../helpers/wait.ts";
import { processesOf } from "../e2e/emulators/sprite/procs.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

// ------------------------------------------------------------------ pure

Deno.test("sprites: statuses (cold, warm, suspended and running all take work)", () => {
  for (const s of ["cold", "warm", "suspended", "running", "COLD"]) {
    assert.equal(parseSpriteStatus(s), "running", s);
  }
  assert.equal(parseSpriteStatus("creating"), "pending");
  assert.equal(parseSpriteStatus("failed"), "failed");
  assert.equal(parseSpriteStatus("weird"), "unknown");
  assert.equal(parseSpriteStatus(undefined), "unknown");
});

Deno.test("sprites: names, token orgs, lost connections, providerFor", () => {
  assert.equal(spriteNameError("ship-a"), null);
  for (const bad of ["", "-o", "Ship", "a b", "a_b", "ship-"]) {
    assert.notEqual(spriteNameError(bad), null, bad);
  }
  assert.equal(orgOfToken("acme/org-1/tok-1/secret"), "acme");
  assert.equal(orgOfToken("plain-token"), undefined);
  assert.equal(lostConnection(255, `${LOST} x was lost`), true);
  assert.equal(
    lostConnection(255, "ssh: connect: Connection reset by peer"),
    true,
  );
  assert.equal(lostConnection(1, `${LOST} x was lost`), false);
  assert.equal(lostConnection(255, "my command failed"), false);
  const p = providerFor({ kind: "sprites", org: "acme" }, {
    home: "/nonexistent",
  });
  assert.ok(p instanceof SpritesProvider);
  assert.equal((p as SpritesProvider).org, "acme");
  assert.equal((p as SpritesProvider).api.url, "https://api.sprites.dev");
});

// ------------------------------------------------------------------ token

async function tokenHome(files: Record<string, unknown>): Promise<string> {
  const home = await Deno.makeTempDir({ prefix: "ohc-sprites-token-" });
  for (const [path, v] of Object.entries(files)) {
    const full = `${home}/${path}`;
    await Deno.mkdir(full.slice(0, full.lastIndexOf("/")), { recursive: true });
    await Deno.writeTextFile(
      full,
      typeof v === "string" ? v : JSON.stringify(v),
    );
  }
  return home;
}

Deno.test("sprites token: $SPRITE_TOKEN, else the CLI's login file, its keyrings, else none", async () => {
  const url = "https://api.sprites.dev";
  // 1. The environment wins; its org comes from the token.
  const env1 = await findSpriteToken({
    env: { SPRITE_TOKEN: "acme/o/t/secret-1", HOME: "/nonexistent" },
  });
  assert.deepEqual(env1, {
    token: "acme/o/t/secret-1",
    org: "acme",
    url,
    source: "$SPRITE_TOKEN",
  });
  // 2. The login file with the keyring disabled: the token in it.
  const file = await tokenHome({
    ".sprites/sprites.json": {
      version: "1",
      current_selection: { url: "http://127.0.0.1:9/", org: "acme" },
      urls: {
        "http://127.0.0.1:9": {
          orgs: {
            acme: { name: "acme", api_token: "acme/o/t/secret-2" },
            other: { name: "other", api_token: "other/o/t/secret-3" },
          },
        },
      },
    },
  });
  const f = await findSpriteToken({ env: { HOME: file } });
  assert.deepEqual(f, {
    token: "acme/o/t/secret-2",
    org: "acme",
    url: "http://127.0.0.1:9",
    source: "~/.sprites/sprites.json",
  });
  assert.equal(
    (await findSpriteToken({ env: { HOME: file, SPRITE_ORG: "other" } }))
      ?.token,
    "other/o/t/secret-3",
  );
  assert.equal(
    await findSpriteToken({ env: { HOME: file }, org: "nobody" }),
    null,
  );
  // 3. The newer layout: a per-user file, a keyring_key, the file keyring
  // (go-keyring's base64 marker unwrapped); then the OS keyring.
  const key = "sprites:org:https://api.sprites.dev:acme";
  const tree = {
    ".sprites/sprites.json": {
      current_selection: { url, org: "acme" },
      current_user: "u1",
      users: [{ id: "u1", config_path: "USERFILE" }],
    },
    ".sprites/users/u1-custom.json": {
      urls: { [url]: { orgs: { acme: { keyring_key: key } } } },
    },
  };
  const kr = await tokenHome(tree);
  const sprites = `${kr}/.sprites/sprites.json`;
  await Deno.writeTextFile(
    sprites,
    (await Deno.readTextFile(sprites)).replace(
      "USERFILE",
      `${kr}/.sprites/users/u1-custom.json`,
    ),
  );
  const asked: string[] = [];
  const viaOs = await findSpriteToken({
    env: { HOME: kr },
    keyring: (service, account) => {
      asked.push(`${service} ${account}`);
      return Promise.resolve(
        service === "sprites-cli:u1" && account === key
          ? "acme/o/t/secret-4\n"
          : null,
      );
    },
  });
  assert.equal(viaOs?.token, "acme/o/t/secret-4");
  assert.equal(viaOs?.source, "the sprite CLI's keyring");
  assert.equal(asked[0], `sprites-cli:u1 ${key}`);
  const item = `${kr}/.sprites/keyring/sprites-cli-u1/${
    key.replaceAll(":", "-")
  }`;
  await Deno.mkdir(item.slice(0, item.lastIndexOf("/")), { recursive: true });
  await Deno.writeTextFile(
    item,
    `go-keyring-base64:${btoa("acme/o/t/secret-5")}`,
  );
  const viaFile = await findSpriteToken({
    env: { HOME: kr },
    keyring: () => Promise.reject(new Error("not asked")),
  });
  assert.equal(viaFile?.token, "acme/o/t/secret-5");
  // 4. Nothing anywhere.
  assert.equal(await findSpriteToken({ env: { HOME: "/nonexistent" } }), null);
  for (const h of [file, kr]) await Deno.remove(h, { recursive: true });
});

// ------------------------------------------------------------------ fake

async function withSprites(
  fn: (s: FakeSprites, p: SpritesProvider) => Promise<void>,
  opts: Omit<FakeSpritesOptions, "dir"> = {},
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "ohc-sprites-" });
  const sprites = await startFakeSprites({ dir: `${tmp}/sprites`, ...opts });
  const provider = new SpritesProvider(
    { kind: "sprites", org: sprites.org, api_url: sprites.url },
    { token: sprites.token(), readyTimeoutMs: 20_000, retryForMs: 20_000 },
  );
  try {
    await fn(sprites, provider);
  } finally {
    await sprites.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

async function sh(t: SpriteTransport, argv: string[]): Promise<string> {
  const r = await run(t, argv, { signal: AbortSignal.timeout(30_000) });
  assert.equal(r.code, 0, `${argv.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

Deno.test("sprites provider over the HTTP API: create, exec, upload, list, destroy", async (t) => {
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
        const tr = provider.transport(vm);
        assert.equal(tr.dest, vm.name);
        const home = await sh(tr, ["sh", "-c", 'echo "$HOME"']);
        assert.equal(home, sprites.home(vm.name));
        homes.add(home);
      }
      assert.equal(homes.size, 3);
      assert.ok(progress.some((m) => /ready/.test(m)));
    });

    await t.step("list (all pages) and the plan's limits", async () => {
      const vms = await provider.list();
      assert.deepEqual(vms.map((v) => v.name), names);
      for (const vm of vms) {
        assert.equal(vm.status, "running");
        assert.equal(vm.data?.org_slug, "test-org");
      }
      assert.deepEqual(await provider.limits(), {
        running: undefined,
        warm: undefined,
      });
      await sprites.knobs({ runningLimit: 10, warmLimit: 20 });
      assert.deepEqual(await provider.limits(), { running: 10, warm: 20 });
      assert.equal(await provider.runningLimit(), 10);
    });

    await t.step(
      "exec: argv words stay words, stdin, exit codes, a long-lived child",
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
        const child = tr.spawn(["sh", "-c", "read x; echo got:$x"], {
          stdin: "piped",
        });
        await writeAll(child.stdin, "ping\n");
        assert.equal(await new Response(child.stdout).text(), "got:ping\n");
        assert.equal((await child.status).code, 0);
        // 5 MiB through stdin and back (frames, and no more in flight than
        // the socket takes).
        const big = new Uint8Array(5 << 20).map((_, i) => i % 251);
        const echoed = tr.spawn(["cat"], { stdin: "piped" });
        void writeAll(echoed.stdin, big);
        const back = await new Response(echoed.stdout).bytes();
        assert.equal(back.length, big.length);
        assert.deepEqual(back.subarray(-100), big.subarray(-100));
        // A command that listens on a port: the service notices (the CLI
        // would forward the port to us); the exec API forwards nothing, and
        // the notice is no part of the output.
        const server = tr.spawn([
          "deno",
          "eval",
          "const l = Deno.listen({ hostname: '127.0.0.1', port: 0 }); console.log('listening'); await new Response(Deno.stdin.readable).text(); l.close();",
        ], { stdin: "piped" });
        const out = new Response(server.stdout).text();
        await until(
          "the port notice",
          async () => /ship-alpha: port_opened \d+/.test(await sprites.log()),
        );
        await server.stdin.close();
        assert.equal((await server.status).code, 0);
        assert.equal(await out, "listening\n");
        // Killed: the far side's process group goes with the session.
        const sleeper = tr.spawn(["sh", "-c", "echo up; exec sleep 60"]);
        const reader = sleeper.stdout.getReader();
        await reader.read();
        sleeper.kill("SIGTERM");
        assert.equal((await sleeper.status).signal, "SIGTERM");
        const sleeping = () =>
          processesOf(`${sprites.dir}/sprites/ship-alpha`).filter((p) => {
            try {
              return Deno.readTextFileSync(`/proc/${p}/cmdline`) ===
                "sleep\x0060\x00";
            } catch {
              return false; // gone
            }
          });
        await until("the sleeper gone", () => sleeping().length === 0);
      },
    );

    await t.step("upload() over exec", async () => {
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
      await assert.rejects(
        provider.create("ship-alpha"),
        (e) =>
          e instanceof OhcError && e.code === "name_taken" &&
          e.message === 'VM name "ship-alpha" is not available',
      );
      await assert.rejects(provider.create("Bad_Name"), UsageError);
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

Deno.test("sprites: rate-limited creations are retried; failed handshakes too; cut uploads are made again", async () => {
  await withSprites(async (sprites, provider) => {
    // Two creations per 2 s: the third waits for the window, then works.
    await Promise.all(["r1", "r2", "r3"].map((n) => provider.create(n)));
    assert.deepEqual(await sprites.list(), ["r1", "r2", "r3"]);
    assert.match(await sprites.log(), /create r\d: rate limited/);
    // Each sprite's first handshake failed (502) and its first session was
    // cut: create's readiness probe and the transport rode over both.
    assert.match(await sprites.log(), /exec handshake failed on purpose/);
    await sprites.knobs({ dropExecs: 2 });
    await provider.create("r5"); // sessions 1 and 2 cut, 3 answered
    const tr = provider.transport({ name: "r5", ssh_dest: "r5" });
    await sprites.knobs({ dropExecs: 5 }); // sessions 4 and 5 cut
    const cut = await run(tr, ["sleep", "5"]);
    assert.equal(cut.code, 255);
    assert.ok(cut.stderr.startsWith(`${LOST} r5 was lost`), cut.stderr);
    await upload(tr, "twice\n", "up.txt", "644"); // one cut, then made
    assert.equal(
      await Deno.readTextFile(`${sprites.home("r5")}/up.txt`),
      "twice\n",
    );
  }, { createRate: { n: 2, windowS: 2 }, failConnects: 1, dropExecs: 1 });
});

Deno.test("sprites: over the plan's running limit, one line naming it (not retried)", async () => {
  await withSprites(async (sprites, provider) => {
    await provider.create("l1");
    await provider.create("l2");
    await fetch(`${sprites.url}/v1/sprites`, {
      method: "POST",
      headers: { Authorization: `Bearer ${sprites.token()}` },
      body: JSON.stringify({ name: "l3" }),
    }).then((r) => r.body?.cancel());
    const started = Date.now();
    const r = await run(provider.transport({ name: "l3", ssh_dest: "l3" }), [
      "true",
    ]);
    assert.equal(r.code, 255);
    assert.match(
      r.stderr,
      /sprites\.dev runs at most 2 sprites at once on this plan \(concurrent_sprite_limit_exceeded, 2 running\)/,
    );
    assert.equal(r.stderr.trim().split("\n").length, 1);
    assert.ok(Date.now() - started < 10_000, "not retried for long");
    // A create that cannot wake its sprite gives up and removes it.
    await assert.rejects(
      provider.create("l4"),
      /did not answer.*runs at most 2 sprites.*it was destroyed/,
    );
    assert.deepEqual(await sprites.list(), ["l1", "l2", "l3"]);
  }, { runningLimit: 2 });
});

Deno.test("sprites: no token anywhere is one clear error", async () => {
  const home = await Deno.makeTempDir();
  try {
    // A machine with no login and none of the token variables.
    const p = providerFor({ kind: "sprites" }, { home, env: { HOME: home } });
    await assert.rejects(
      p.list(),
      (e) =>
        e instanceof OhcError && e.code === "sprites_no_token" &&
        /sprite login/.test(e.hint ?? ""),
    );
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("sprites runtime: ohcommodore's hold through sprite-env holds a sprite; released, it pauses", async () => {
  await withSprites(async (sprites, provider) => {
    await provider.create("rt");
    const tr = provider.transport({ name: "rt", ssh_dest: "rt" });
    const state = async () =>
      (await sprites.state()).find((x) => x.name === "rt")!;
    // ohcommodore's own SpriteHold, run inside the sprite: held until its
    // stdin closes.
    const mod = `${root}/lib/providers/sprites_runtime.ts`;
    const holder = tr.spawn([
      "deno",
      "eval",
      `import { SpriteHold } from "file://${mod}";
       const h = new SpriteHold("t1");
       await h.set(true);
       console.log("held");
       await new Response(Deno.stdin.readable).text();
       await h.set(false);`,
    ], { stdin: "piped" });
    const lines = holder.stdout.getReader();
    assert.equal(
      new TextDecoder().decode((await lines.read()).value),
      "held\n",
    );
    assert.deepEqual((await state()).tasks, ["t1"]);
    await holder.stdin.close();
    assert.equal((await holder.status).code, 0);
    assert.deepEqual((await state()).tasks, []);
    await until("a pause", async () => (await state()).status === "cold", {
      timeoutMs: 20_000,
    });
  }, { idleS: 1, coldS: 2 });
});
