/**
 * Real fleets on sprites.dev, end to end: the real CLI (dev artifact) on a
 * laptop HOME and the fake `sprite` CLI (tests/e2e/emulators/sprite.ts) on
 * PATH. The flagship is itself a sprite and creates the ships by running
 * `sprite` inside its own `sprite exec` sessions.
 *
 * On sprites.dev that needs the `sprite` CLI installed and logged in on the
 * flagship sprite. ohcommodore does not set that up (nothing in `init`
 * installs or authenticates the CLI there), so this test provides it the
 * way the fake allows: the fake's PATH reaches exec sessions, and
 * FAKE_SPRITE_PASS_ENV passes its state directory and org into them (what
 * `~/.sprites/sprites.json` would be on a real sprite). Without it the
 * flagship's `sprite create` fails with "FAKE_SPRITE_DIR is not set".
 */
import assert from "node:assert/strict";
import { type FakeSprites, startFakeSprites } from "./emulators/sprite.ts";
import type { FleetStatus } from "../../lib/fleet/api.ts";
import { exists, ohc, ohcOk } from "../helpers/cli.ts";
import {
  DEMO_SAIL,
  sailOk,
  voyageTasks,
  waitVoyage,
} from "../helpers/voyage.ts";

const SHIPS = ["alpha", "bravo", "cargo"];
const ORG = "test-org";
const MARKER = "FAKE_SPRITE_SANDBOX";
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Processes started inside any sprite under `dir` (by their environment). */
function sandboxed(dir: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const env = Deno.readTextFileSync(`/proc/${e.name}/environ`);
      if (env.split("\0").some((kv) => kv.startsWith(`${MARKER}=${dir}/`))) {
        out.push(Number(e.name));
      }
    } catch { /* gone */ }
  }
  return out;
}

Deno.test("sprites: init, ship create of 3 in one command, status, exec, ssh, recover, destroy, sink --scuttle", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "ohc-spr-" });
  const home = `${tmp}/laptop`;
  await Deno.mkdir(home);
  const s: FakeSprites = await startFakeSprites({
    dir: `${tmp}/sprites`,
    org: ORG,
  });
  const env = {
    ...s.env,
    OHC_OFFLINE: "1",
    FAKE_SPRITE_PASS_ENV:
      "FAKE_SPRITE_DIR,FAKE_SPRITE_DENO,FAKE_SPRITE_ORG,FAKE_SPRITE_PASS_ENV",
  };
  const run = (args: string[]) => ohc(home, args, { env });
  const ok = (args: string[]) => ohcOk(home, args, { env });
  const status = async () =>
    JSON.parse((await ok(["fleet", "status", "--json"])).stdout) as FleetStatus;
  const assertNoStrays = async () => {
    const st = await status();
    const known = new Set([st.flagship.name, ...st.ships.map((x) => x.name)]);
    const strays = (await s.list()).filter((n) => !known.has(n));
    assert.deepEqual(strays, [], "sprites ohcommodore does not know of");
  };
  const waitLinksUp = async (ships: string[]) => {
    const deadline = Date.now() + 30_000;
    for (;;) {
      const st = await status();
      if (
        ships.every((n) =>
          st.ships.find((x) => x.name === n)?.link.state === "up"
        )
      ) return st;
      assert.ok(
        Date.now() < deadline,
        `links not up: ${JSON.stringify(st.ships.map((x) => x.link))}`,
      );
      await sleep(250);
    }
  };
  try {
    const init = await ok(["init", "--provider", "sprites", "--org", ORG]);
    assert.match(init.stdout, /Flagship ready: flagship/);
    const config = JSON.parse(
      await Deno.readTextFile(`${home}/.ohcommodore/config.json`),
    );
    assert.deepEqual(config.flagship.provider, { kind: "sprites", org: ORG });
    assert.deepEqual(await s.list(), ["flagship"]);

    // Three ships in one command, created by the flagship with `sprite`.
    const created = await ok(["ship", "create", ...SHIPS]);
    for (const n of SHIPS) {
      assert.match(created.stdout, new RegExp(`ready: ${n}`));
    }
    assert.deepEqual(await s.list(), [...SHIPS, "flagship"]);
    await assertNoStrays();

    const st = await waitLinksUp(SHIPS);
    assert.equal(st.flagship.provider, "sprites");
    assert.deepEqual(st.ships.map((x) => x.name), SHIPS);
    for (const x of st.ships) {
      assert.equal(x.status, "running");
      assert.equal(x.ssh_dest, x.name);
      assert.ok(x.link.last_heartbeat);
    }
    assert.match((await ok(["fleet", "status"])).stdout, /LINK/);

    // ship exec: each ship is its own sprite with its own home.
    for (const n of SHIPS) {
      const r = await ok([
        "ship",
        "exec",
        n,
        "--",
        "sh",
        "-c",
        "echo $HOME; echo $SPRITE_NAME",
      ]);
      assert.equal(r.stdout, `${s.home(n)}\n${n}\n`);
    }
    const three = await run([
      "ship",
      "exec",
      "alpha",
      "--",
      "sh",
      "-c",
      "exit 3",
    ]);
    assert.equal(three.code, 3);

    // ship ssh, non-interactive.
    const ssh = await ok([
      "ship",
      "ssh",
      "bravo",
      "--",
      "sh",
      "-c",
      "echo $SPRITE_NAME",
    ]);
    assert.equal(ssh.stdout.trim(), "bravo");
    const seven = await run([
      "ship",
      "ssh",
      "bravo",
      "--",
      "sh",
      "-c",
      "exit 7",
    ]);
    assert.equal(seven.code, 7);

    // fleet recover after losing the registry.
    await Deno.remove(`${s.home("flagship")}/.ohcommodore/fleet.json`);
    assert.deepEqual((await status()).ships, []);
    const rec = await ok(["fleet", "recover", "--json"]);
    assert.deepEqual(
      JSON.parse(rec.stdout).map((x: { name: string }) => x.name),
      SHIPS,
    );
    await waitLinksUp(SHIPS);
    await assertNoStrays();

    // ship destroy (a unique prefix).
    assert.match(
      (await ok(["ship", "destroy", "car"])).stdout,
      /Destroyed cargo/,
    );
    assert.deepEqual(await s.list(), ["alpha", "bravo", "flagship"]);
    assert.deepEqual((await status()).ships.map((x) => x.name), [
      "alpha",
      "bravo",
    ]);
    await assertNoStrays();

    // sink --scuttle: no sprite and no process of one is left.
    const sunk = await ok(["fleet", "sink", "--scuttle", "--force"]);
    assert.match(sunk.stdout, /Sunk 2 ship\(s\)\. Flagship scuttled\./);
    assert.deepEqual(await s.list(), []);
    assert.equal(await exists(`${home}/.ohcommodore/config.json`), false);
    for (let i = 0; sandboxed(s.dir).length > 0; i++) {
      assert.ok(i < 40, `processes left in sprites: ${sandboxed(s.dir)}`);
      await sleep(50);
    }
  } finally {
    if (await exists(`${home}/.ohcommodore/config.json`)) {
      await run(["fleet", "sink", "--scuttle", "--force"]);
    }
    await s.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});

Deno.test("sprites: the demo voyage sails on 2 ships over sprite exec, verifies, and clones to the laptop", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "ohc-spr-" });
  const home = `${tmp}/laptop`;
  await Deno.mkdir(home);
  const s = await startFakeSprites({ dir: `${tmp}/sprites`, org: ORG });
  const env = {
    ...s.env,
    OHC_OFFLINE: "1",
    FAKE_SPRITE_PASS_ENV:
      "FAKE_SPRITE_DIR,FAKE_SPRITE_DENO,FAKE_SPRITE_ORG,FAKE_SPRITE_PASS_ENV",
  };
  const ok = (args: string[]) => ohcOk(home, args, { env });
  const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
  try {
    await ok(["init", "--provider", "sprites", "--org", ORG]);
    const id = await sailOk(ok, DEMO_SAIL(root, 2));
    assert.equal((await waitVoyage(ok, id, 180_000)).voyage.state, "verified");
    const tasks = await voyageTasks(ok, id);
    assert.equal(tasks.filter((t) => t.status === "done").length, 6);
    const sprites = await s.list();
    for (const t of tasks) assert.ok(sprites.includes(t.ship!), t.ship!);
    await ok(["voyage", "clone", id, "-d", `${tmp}/result`]);
    assert.match(
      await Deno.readTextFile(`${tmp}/result/REPORT.md`),
      /^# Fleet report/,
    );
  } finally {
    if (await exists(`${home}/.ohcommodore/config.json`)) {
      await ohc(home, ["fleet", "sink", "--scuttle", "--force"], { env });
    }
    await s.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
