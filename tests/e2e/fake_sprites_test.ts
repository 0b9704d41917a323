/**
 * The fake sprites.dev (emulators/sprite.ts) answers as the real service
 * does (reference §2.3, §6 "sprites.dev lifecycle"): its HTTP API and exec
 * frames, spoken here with plain fetch and WebSocket (not ohcommodore's
 * client), and its terms: idle pause (warm: processes stopped), cold
 * (processes gone, services back on the next wake), task holds, the running
 * limit and the creation rate limit, with the vendor's error codes.
 */
import assert from "node:assert/strict";
import { type FakeSprites, startFakeSprites } from "./emulators/sprite.ts";
import { until } from "../helpers/wait.ts";
import { processesOf } from "./emulators/sprite/procs.ts";
import { bareRootSkipReason } from "../helpers/bare_root.ts";

async function withFake(
  opts: Omit<Parameters<typeof startFakeSprites>[0], "dir">,
  fn: (s: FakeSprites) => Promise<void>,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "fake-sprites-" });
  const s = await startFakeSprites({ dir: `${tmp}/state`, ...opts });
  try {
    await fn(s);
  } finally {
    await s.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

function api(s: FakeSprites, token: string | null = s.token()) {
  return async (method: string, path: string, body?: unknown) => {
    const r = await fetch(`${s.url}${path}`, {
      method,
      headers: token ? { Authorization: `Bearer ${token}` } : {},
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, json: text ? JSON.parse(text) : null };
  };
}

interface Exec {
  code: number | null;
  stdout: string;
  stderr: string;
  /** Closed without an exit frame. */
  lost: boolean;
}

/** One command over the exec WebSocket, as the SDKs speak it. */
function exec(
  s: FakeSprites,
  name: string,
  argv: string[],
  o: { stdin?: string; env?: Record<string, string>; dir?: string } = {},
): Promise<Exec> {
  const u = new URL(`${s.url.replace("http", "ws")}/v1/sprites/${name}/exec`);
  for (const a of argv) u.searchParams.append("cmd", a);
  if (o.stdin !== undefined) u.searchParams.set("stdin", "true");
  if (o.dir) u.searchParams.set("dir", o.dir);
  for (const [k, v] of Object.entries(o.env ?? {})) {
    u.searchParams.append("env", `${k}=${v}`);
  }
  const ws = new WebSocket(u, {
    headers: { Authorization: `Bearer ${s.token()}` },
  });
  ws.binaryType = "arraybuffer";
  const r: Exec = { code: null, stdout: "", stderr: "", lost: false };
  const dec = new TextDecoder();
  return new Promise((resolve, reject) => {
    ws.onerror = (e) => reject(new Error((e as ErrorEvent).message));
    ws.onopen = () => {
      if (o.stdin !== undefined) {
        const data = new TextEncoder().encode(o.stdin);
        const f = new Uint8Array(data.length + 1);
        f.set(data, 1);
        ws.send(f);
        ws.send(new Uint8Array([4]));
      }
    };
    ws.onmessage = (e) => {
      if (typeof e.data === "string") return;
      const b = new Uint8Array(e.data);
      if (b[0] === 1) r.stdout += dec.decode(b.subarray(1));
      if (b[0] === 2) r.stderr += dec.decode(b.subarray(1));
      if (b[0] === 3) r.code = b[1];
    };
    ws.onclose = () => {
      r.lost = r.code === null;
      resolve(r);
    };
  });
}

const statusOf = async (s: FakeSprites, name: string) =>
  (await s.state()).find((x) => x.name === name)?.status;

Deno.test("fake sprites: API answers (auth, create, list with limits, get, delete)", async () => {
  await withFake({ runningLimit: 3, warmLimit: 5 }, async (s) => {
    const call = api(s);
    assert.equal((await api(s, null)("GET", "/v1/sprites")).status, 401);
    assert.equal((await api(s, "x/y/z/bad")("GET", "/v1/sprites")).status, 401);
    const c = await call("POST", "/v1/sprites", {
      name: "ship-a",
      labels: ["fleet-x"],
    });
    assert.equal(c.status, 201);
    assert.equal(c.json.status, "cold");
    assert.equal(c.json.organization, "test-org");
    assert.deepEqual(c.json.labels, ["fleet-x"]);
    assert.equal(
      (await call("POST", "/v1/sprites", { name: "ship-a" })).status,
      400,
    );
    assert.equal(
      (await call("POST", "/v1/sprites", { name: "Bad_Name" })).status,
      400,
    );
    for (const n of ["ship-b", "ship-c"]) {
      await call("POST", "/v1/sprites", { name: n });
    }
    const page = await call("GET", "/v1/sprites?max_results=2");
    assert.deepEqual(page.json.sprites.map((x: { name: string }) => x.name), [
      "ship-a",
      "ship-b",
    ]);
    assert.equal(page.json.has_more, true);
    assert.deepEqual(page.json.org, {
      name: "test-org",
      running: 0,
      warm: 0,
      cold: 3,
      running_limit: 3,
      warm_limit: 5,
    });
    const rest = await call(
      "GET",
      `/v1/sprites?max_results=2&continuation_token=${page.json.next_continuation_token}`,
    );
    assert.deepEqual(rest.json.sprites.map((x: { name: string }) => x.name), [
      "ship-c",
    ]);
    // Another org sees none of them.
    const other = await api(s, s.token("other-org"))("GET", "/v1/sprites");
    assert.deepEqual(other.json.sprites, []);
    assert.equal((await call("GET", "/v1/sprites/ship-b")).json.name, "ship-b");
    assert.deepEqual(
      (await call("PUT", "/v1/sprites/ship-b", { labels: ["x"] })).json.labels,
      ["x"],
    );
    assert.deepEqual(
      (await call("GET", "/v1/sprites?prefix=ship-")).json.sprites.map(
        (x: { name: string; labels: string[] }) => [x.name, x.labels],
      ),
      [["ship-a", ["fleet-x"]], ["ship-b", ["x"]], ["ship-c", []]],
    );
    assert.equal((await call("DELETE", "/v1/sprites/ship-b")).status, 204);
    assert.equal((await call("GET", "/v1/sprites/ship-b")).status, 404);
    assert.equal((await call("DELETE", "/v1/sprites/ship-b")).status, 404);
    assert.deepEqual(await s.list(), ["ship-a", "ship-c"]);
  });
});

Deno.test("fake sprites: exec frames, and only the base image inside", async () => {
  await withFake({}, async (s) => {
    await api(s)("POST", "/v1/sprites", { name: "box" });
    const r = await exec(s, "box", [
      "sh",
      "-c",
      'echo "$HOME"; echo "$PATH"; command -v sprite || echo no-sprite; command -v sprite-env >/dev/null && echo has-sprite-env; echo "${FAKE_SPRITE_PASS_ENV:-none}"; cat; echo err >&2; exit 7',
    ], { stdin: "through stdin\n" });
    assert.deepEqual(r, {
      code: 7,
      stdout: `${
        s.home("box")
      }\n${s.dir}/base/bin\nno-sprite\nhas-sprite-env\nnone\nthrough stdin\n`,
      stderr: "err\n",
      lost: false,
    });
    assert.equal((await exec(s, "box", ["no-such-program"])).code, 127);
    await Deno.mkdir(`${s.home("box")}/sub`);
    const d = await exec(s, "box", ["sh", "-c", "pwd; echo $X"], {
      dir: "/home/sprite/sub",
      env: { X: "y" },
    });
    assert.equal(d.stdout, `${s.home("box")}/sub\ny\n`);
    // The HTTP form: the same frames as chunks.
    const res = await fetch(
      `${s.url}/v1/sprites/box/exec?cmd=sh&cmd=-c&cmd=echo%20hi%3B%20exit%203`,
      { method: "POST", headers: { Authorization: `Bearer ${s.token()}` } },
    );
    const bytes = new Uint8Array(await res.arrayBuffer());
    assert.deepEqual([...bytes], [
      1,
      ...new TextEncoder().encode("hi\n"),
      3,
      3,
    ]);
  });
});

Deno.test("fake sprites: idle pause stops processes, a wake resumes them, cold kills them and restarts services", async () => {
  await withFake({ idleS: 1, coldS: 3 }, async (s) => {
    await api(s)("POST", "/v1/sprites", { name: "box" });
    const counter = `${s.home("box")}/n`;
    // A background process outside any session, and a service.
    assert.equal(
      (await exec(s, "box", [
        "sh",
        "-c",
        "setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > n; sleep 0.05; done' >/dev/null 2>&1 &",
      ])).code,
      0,
    );
    assert.equal(
      (await exec(s, "box", [
        "sprite-env",
        "services",
        "create",
        "tick",
        "--cmd",
        "sh",
        "--args",
        "-c,echo started >> svc.log; exec sleep 600",
        "--no-stream",
      ])).code,
      0,
    );
    await until(
      "the service",
      async () =>
        (await Deno.readTextFile(`${s.home("box")}/svc.log`).catch(() =>
          ""
        )) ===
          "started\n",
    );
    await until("warm", async () => (await statusOf(s, "box")) === "warm");
    const frozen = await Deno.readTextFile(counter);
    await until("cold", async () => (await statusOf(s, "box")) === "cold", {
      timeoutMs: 10_000,
    });
    // Stopped while warm: the counter did not move.
    assert.equal(await Deno.readTextFile(counter), frozen);
    // Cold: the loop is gone for good; the service starts again on wake.
    const r = await exec(s, "box", ["cat", "n"]);
    assert.equal(r.stdout, frozen);
    assert.equal(await statusOf(s, "box"), "running");
    await until(
      "the service started again",
      async () =>
        (await Deno.readTextFile(`${s.home("box")}/svc.log`)) ===
          "started\nstarted\n",
    );
    // Only the service and nothing else runs in it now.
    const svc = (await s.state())[0].services[0].state.pid;
    assert.deepEqual(processesOf(`${s.dir}/sprites/box`), [svc]);
  });
});

Deno.test("fake sprites: a warm wake resumes processes; a task hold keeps the sprite running", async () => {
  await withFake({ idleS: 1, coldS: 60 }, async (s) => {
    await api(s)("POST", "/v1/sprites", { name: "box" });
    await exec(s, "box", [
      "sh",
      "-c",
      "setsid sh -c 'i=0; while :; do i=$((i+1)); echo $i > n; sleep 0.05; done' >/dev/null 2>&1 &",
    ]);
    await until("warm", async () => (await statusOf(s, "box")) === "warm");
    const count = async () =>
      Number(await Deno.readTextFile(`${s.home("box")}/n`));
    const frozen = await count();
    assert.equal((await exec(s, "box", ["true"])).code, 0);
    await until(
      "the loop going on after the wake",
      async () => (await count()) > frozen,
    );
    // A hold: no pause while it lives (a sprite touched at the same time,
    // unheld, paused meanwhile), a pause soon after it goes.
    await api(s)("POST", "/v1/sprites", { name: "clock" });
    const held = await exec(s, "box", [
      "sprite-env",
      "curl",
      "-s",
      "-f",
      "-X",
      "PUT",
      "-d",
      '{"expire":"5m"}',
      "/v1/tasks/work",
    ]);
    assert.equal(held.code, 0, held.stderr);
    assert.equal(JSON.parse(held.stdout).name, "work");
    assert.equal((await exec(s, "clock", ["true"])).code, 0);
    await until(
      "the clock pausing",
      async () => (await statusOf(s, "clock")) === "warm",
    );
    assert.equal(await statusOf(s, "box"), "running");
    assert.deepEqual(
      (await s.state()).find((x) => x.name === "box")!.tasks,
      ["work"],
    );
    const gone = await exec(s, "box", [
      "sprite-env",
      "curl",
      "-X",
      "DELETE",
      "/v1/tasks/work",
    ]);
    assert.equal(gone.code, 0);
    await until(
      "warm again",
      async () => (await statusOf(s, "box")) === "warm",
    );
  });
});

Deno.test("fake sprites: the running limit and the creation rate limit answer with the vendor's codes", async () => {
  await withFake(
    { runningLimit: 2, createRate: { n: 2, windowS: 60 } },
    async (s) => {
      const call = api(s);
      for (const n of ["a1", "a2"]) {
        assert.equal(
          (await call("POST", "/v1/sprites", { name: n })).status,
          201,
        );
      }
      const limited = await call("POST", "/v1/sprites", { name: "a3" });
      assert.equal(limited.status, 429);
      assert.equal(limited.json.error, "sprite_creation_rate_limited");
      assert.ok(limited.json.retry_after_seconds > 0);
      await s.knobs({ createRate: { n: 0, windowS: 0 } });
      assert.equal(
        (await call("POST", "/v1/sprites", { name: "a3" })).status,
        201,
      );
      for (const n of ["a1", "a2"]) {
        assert.equal((await exec(s, n, ["true"])).code, 0);
      }
      // Two run; waking a third is refused (HTTP form: the body says why).
      const res = await fetch(`${s.url}/v1/sprites/a3/exec?cmd=true`, {
        method: "POST",
        headers: { Authorization: `Bearer ${s.token()}` },
      });
      assert.equal(res.status, 429);
      const body = await res.json();
      assert.equal(body.error, "concurrent_sprite_limit_exceeded");
      assert.equal(body.limit, 2);
      await assert.rejects(exec(s, "a3", ["true"]), /429/);
    },
  );
});

Deno.test("fake sprites: failing handshakes and cut sessions, on request", async () => {
  await withFake({ failConnects: 1, dropExecs: 1 }, async (s) => {
    await api(s)("POST", "/v1/sprites", { name: "box" });
    await assert.rejects(exec(s, "box", ["true"]), /502/);
    const cut = await exec(s, "box", ["sleep", "5"]);
    assert.equal(cut.lost, true);
    assert.equal((await exec(s, "box", ["true"])).code, 0);
  });
});

Deno.test({
  name:
    "fake sprites, bare: only the OS inside (no host deno, node or checkout), sprite-env on /.sprite/api.sock, services back after a cold pause",
  ignore: bareRootSkipReason() !== null,
  async fn() {
    await withFake({ bare: true, idleS: 1, coldS: 2 }, async (s) => {
      await api(s)("POST", "/v1/sprites", { name: "box" });
      const look = await exec(s, "box", [
        "sh",
        "-c",
        'hostname; echo "$HOME"; pwd; ls -A /usr/local; command -v deno node npm sprite; test -e /work || echo no-checkout; test -S /.sprite/api.sock && echo socket; systemctl --user show-environment >/dev/null 2>&1 || echo no-systemd',
      ]);
      assert.equal(look.code, 0, look.stderr);
      assert.equal(
        look.stdout,
        "box\n/home/sprite\n/home/sprite\nno-checkout\nsocket\nno-systemd\n",
      );
      // Its home is the sprite's directory on the host.
      await exec(s, "box", ["sh", "-c", "echo hi > /home/sprite/f"]);
      assert.equal(await Deno.readTextFile(`${s.home("box")}/f`), "hi\n");
      const svc = await exec(s, "box", [
        "sprite-env",
        "services",
        "create",
        "tick",
        "--cmd",
        "sh",
        "--args",
        "-c,echo started >> svc.log; exec sleep 600",
        "--no-stream",
      ]);
      assert.equal(svc.code, 0, svc.stderr);
      await until(
        "the service",
        async () =>
          (await Deno.readTextFile(`${s.home("box")}/svc.log`).catch(() =>
            ""
          )) ===
            "started\n",
      );
      await until("cold", async () => (await statusOf(s, "box")) === "cold", {
        timeoutMs: 10_000,
      });
      assert.equal((await exec(s, "box", ["true"])).code, 0);
      await until(
        "the service started again",
        async () =>
          (await Deno.readTextFile(`${s.home("box")}/svc.log`)) ===
            "started\nstarted\n",
      );
    });
  },
});
