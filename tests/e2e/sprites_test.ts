/**
 * Real fleets on sprites.dev, end to end: the real CLI (dev artifact) on a
 * laptop HOME logged in as `sprite login` leaves it, and the fake
 * sprites.dev (tests/e2e/emulators/sprite.ts) on loopback. Nobody has a
 * `sprite` CLI: the laptop and the flagship speak the HTTP API, and inside
 * a sprite there are only the base image's tools (and the binary we
 * upload). The flagship gets its token from `init`, in a 0600 file.
 *
 * The first test holds the fake to the service's terms: sprites pause
 * after 5 s without activity and lose every process after 10 s, and hold
 * only the OS (bare: tests/helpers/bare_root.ts, needs root), so the
 * standalone artifact is what runs there, as a release binary would.
 */
import assert from "node:assert/strict";
import { type FakeSprites, startFakeSprites } from "./emulators/sprite.ts";
import { processesOf } from "./emulators/sprite/procs.ts";
import type { FleetStatus } from "../../lib/fleet/api.ts";
import { exists, ohc, ohcOk } from "../helpers/cli.ts";
import { writePlan } from "../helpers/plans.ts";
import { until } from "../helpers/wait.ts";
import { bareRootSkipReason } from "../helpers/bare_root.ts";
import { standaloneArtifact } from "../helpers/standalone.ts";
import { voyageTasks } from "../helpers/voyage.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

async function fleetOn(
  opts: Omit<Parameters<typeof startFakeSprites>[0], "dir"> & {
    /** The orgs of the laptop's login (the first selected). */
    orgs?: string[];
    env?: Record<string, string>;
  },
  fn: (f: {
    s: FakeSprites;
    home: string;
    tmp: string;
    run: (args: string[]) => ReturnType<typeof ohc>;
    ok: (args: string[]) => ReturnType<typeof ohc>;
  }) => Promise<void>,
): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "ohc-spr-" });
  const home = `${tmp}/laptop`;
  await Deno.mkdir(home);
  const s = await startFakeSprites({ dir: `${tmp}/sprites`, ...opts });
  await s.login(home, opts.orgs);
  // Only cloudinit's "no network here"; the rest comes from the login.
  const env = { OHC_OFFLINE: "1", ...opts.env };
  const run = (args: string[]) => ohc(home, args, { env });
  const ok = (args: string[]) => ohcOk(home, args, { env });
  try {
    await fn({ s, home, tmp, run, ok });
  } catch (e) {
    console.error(await s.log());
    throw e;
  } finally {
    if (await exists(`${home}/.ohcommodore/config.json`)) {
      await run(["fleet", "sink", "--scuttle", "--force"]);
    }
    await s.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

const spriteState = async (s: FakeSprites, name: string) =>
  (await s.state()).find((x) => x.name === name);

Deno.test({
  name:
    "sprites on real terms (bare sprites, pause after 5 s, cold after 10 s): init, 2 ships, a voyage of 20 s tasks, inbox to a cold ship, links back, holds released, the running limit",
  ignore: bareRootSkipReason() !== null,
  async fn() {
    // Sprites hold only the OS (no deno, node, checkout or `sprite` CLI):
    // the standalone artifact, which carries everything, runs there.
    const bin = await standaloneArtifact();
    await fleetOn({
      bare: true,
      idleS: 5,
      coldS: 10,
      env: { OHCOMMODORE_BINARY: bin },
    }, async ({ s, home, run, ok, tmp }) => {
      const init = await ok(["init", "--provider", "sprites"]);
      assert.match(init.stdout, /Flagship ready: flagship/);
      assert.match(
        init.stderr,
        /sprites token from ~\/\.sprites\/sprites\.json/,
      );
      const config = JSON.parse(
        await Deno.readTextFile(`${home}/.ohcommodore/config.json`),
      );
      assert.deepEqual(config.flagship.provider, {
        kind: "sprites",
        org: s.org,
        api_url: s.url,
      });
      // The flagship's token: a 0600 file; its daemon: a sprite service.
      const tokenFile = `${
        s.home("flagship")
      }/.ohcommodore/secrets/sprite_token`;
      assert.equal(await Deno.readTextFile(tokenFile), s.token());
      assert.equal((await Deno.stat(tokenFile)).mode! & 0o777, 0o600);
      const flagship = (await spriteState(s, "flagship"))!;
      assert.deepEqual(flagship.services.map((x) => x.name), ["ohcommodore"]);

      const created = await ok(["ship", "create", "alpha", "bravo"]);
      assert.match(created.stdout, /Ship ready: alpha/);
      assert.match(created.stdout, /Ship ready: bravo/);
      assert.deepEqual(await s.list(), ["alpha", "bravo", "flagship"]);
      // Inside a ship: the OS, the base image's tools and our binary; no
      // `sprite`, deno, node or checkout.
      const inside = await ok([
        "ship",
        "exec",
        "alpha",
        "--",
        "sh",
        "-c",
        `ls -A /usr/local; command -v sprite deno node npm; test -e '${root}' || echo no-checkout; ls ~/.ohcommodore/bin; echo "$PATH"`,
      ]);
      assert.equal(
        inside.stdout,
        "no-checkout\nohcommodore\n/home/sprite/.ohcommodore/bin:/opt/sprite/bin:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin\n",
      );

      // A voyage of 3 tasks of 20 s on 3 new ships. Nothing from the
      // laptop touches the fleet meanwhile: the flagship holds itself
      // awake while the voyage sails, and pauses once it is over.
      const plan = await writePlan(
        `${tmp}/plan`,
        ["1", "2", "3"].map((id) => ({
          id,
          command: `sleep 20 && echo ${id} > out-${id}.txt`,
        })),
        {
          ships: 3,
          verify:
            '#!/bin/bash\nset -e\nfor i in 1 2 3; do test "$(cat out-$i.txt)" = $i; done\n',
        },
      );
      const id = JSON.parse(
        (await ok(["voyage", "sail", plan, "--agent", "shell", "--json"]))
          .stdout,
      ).id;
      let held = false;
      await until("the voyage over and the flagship paused", async () => {
        const f = await spriteState(s, "flagship");
        if (f?.tasks.includes("ohcommodore-daemon")) held = true;
        return f?.status !== "running";
      }, { timeoutMs: 240_000, everyMs: 250 });
      assert.ok(held, "the flagship held itself awake during the voyage");
      const st = JSON.parse(
        (await ok(["voyage", "status", id, "--json"])).stdout,
      );
      assert.equal(st.voyage.state, "verified", JSON.stringify(st));
      const tasks = await voyageTasks(ok, id);
      assert.deepEqual(tasks.map((t) => [t.id, t.status, t.attempts]), [
        ["1", "done", 1],
        ["2", "done", 1],
        ["3", "done", 1],
      ]);

      // Idle, the whole fleet lets go of its holds and goes cold: it
      // costs nothing, and nothing it started survives.
      await until("every sprite cold, none held", async () => {
        const st = await s.state();
        return st.length === 6 &&
          st.every((x) => x.status === "cold" && x.tasks.length === 0);
      }, { timeoutMs: 90_000, everyMs: 250 });
      assert.deepEqual(await s.processes("alpha"), []);
      // A message to a cold ship wakes the flagship and the ship (their
      // daemons are services) and runs, its result coming back to the
      // waiting laptop.
      const sent = await ok([
        "inbox",
        "send",
        "--wait",
        "captain@alpha",
        'echo "hi from $PWD"',
      ]);
      assert.equal(sent.stdout, "hi from /home/sprite\n");
      // After the cold wake, the flagship's links come back, to the cold
      // bravo too.
      await until("links up after the wake", async () => {
        const st = JSON.parse(
          (await ok(["fleet", "status", "--json"])).stdout,
        ) as FleetStatus;
        return ["alpha", "bravo"].every((n) =>
          st.ships.find((x) => x.name === n)?.link.state === "up"
        );
      }, { timeoutMs: 60_000, everyMs: 500 });

      // The plan runs 3 sprites at once: the flagship and 2 ships take
      // them all, so a third ship is refused before anything is made.
      await ok(["voyage", "sink", id, "--force"]);
      assert.deepEqual(await s.list(), ["alpha", "bravo", "flagship"]);
      await s.knobs({ runningLimit: 3 });
      const third = await run(["ship", "create", "charlie"]);
      assert.equal(third.code, 2, third.stderr);
      assert.equal(
        third.stderr,
        "error: cannot create another ship: the sprites plan runs at most 3 sprites at once (running_limit 3), and the flagship and 2 ships already make 3\n",
      );
      assert.deepEqual(await s.list(), ["alpha", "bravo", "flagship"]);
      const ships = JSON.parse((await ok(["fleet", "status", "--json"])).stdout)
        .ships.map((x: { name: string }) => x.name);
      assert.deepEqual(ships, ["alpha", "bravo"]);
    });
  },
});

Deno.test("sprites: init in $SPRITE_ORG, ship create of 3 in one command, status, exec, ssh, recover (waking no other sprite), destroy, sink --scuttle, with cut connections on the way", async () => {
  // Each sprite's first upload, version check and setup call is cut as it
  // opens (a reset connection): deploy, upload and setup make them again.
  await fleetOn({
    dropExecs: 3,
    dropMatch: "held sh -c set -e; umask 077|--version$|_rpc$",
    failConnects: 1,
    orgs: ["test-org", "fleet-org"],
    env: { SPRITE_ORG: "fleet-org" },
  }, async ({ s, home, run, ok }) => {
    const SHIPS = ["alpha", "bravo", "cargo"];
    const status = async () =>
      JSON.parse(
        (await ok(["fleet", "status", "--json"])).stdout,
      ) as FleetStatus;
    // A VM setting in the laptop's environment at init is the fleet's.
    await ohcOk(home, ["init", "--provider", "sprites"], {
      env: {
        OHC_OFFLINE: "1",
        SPRITE_ORG: "fleet-org",
        OHCOMMODORE_INBOX_TIMEOUT: "77",
      },
    });
    // $SPRITE_ORG chose the login's other org, and the fleet keeps it.
    const config = JSON.parse(
      await Deno.readTextFile(`${home}/.ohcommodore/config.json`),
    );
    assert.equal(config.flagship.provider.org, "fleet-org");
    const created = await ok(["ship", "create", ...SHIPS]);
    for (const n of SHIPS) {
      assert.match(created.stdout, new RegExp(`ready: ${n}`));
    }
    // Settings travel to sprites: at create, and by `fleet config set`.
    await ok(["fleet", "config", "set", "OHCOMMODORE_TASK_ATTEMPTS=5"]);
    for (const n of ["flagship", ...SHIPS]) {
      assert.deepEqual(
        JSON.parse(
          await Deno.readTextFile(`${s.home(n)}/.ohcommodore/settings.json`),
        ),
        { OHCOMMODORE_INBOX_TIMEOUT: "77", OHCOMMODORE_TASK_ATTEMPTS: "5" },
        n,
      );
    }
    assert.deepEqual(await s.list(), [...SHIPS, "flagship"]);
    const cuts = (await s.log()).match(/exec cut on purpose/g) ?? [];
    assert.equal(cuts.length, 12, "3 cuts on each of 4 sprites");

    const st = await until("links up", async () => {
      const st = await status();
      return SHIPS.every((n) =>
        st.ships.find((x) => x.name === n)?.link.state === "up"
      ) && st;
    });
    assert.equal(st.flagship.provider, "sprites");
    for (const x of st.ships) {
      assert.equal(x.status, "running");
      assert.equal(x.ssh_dest, x.name);
    }
    for (const n of SHIPS) {
      const r = await ok(["ship", "exec", n, "--", "sh", "-c", "echo $HOME"]);
      assert.equal(r.stdout, `${s.home(n)}\n`);
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
    assert.equal(three.code, 3, three.stderr);
    const ssh = await ok(["ship", "ssh", "bravo", "--", "sh", "-c", "echo ok"]);
    assert.equal(ssh.stdout.trim(), "ok");
    const seven = await run([
      "ship",
      "ssh",
      "bravo",
      "--",
      "sh",
      "-c",
      "exit 7",
    ]);
    assert.equal(seven.code, 7, seven.stderr);
    for (const x of await s.state()) assert.equal(x.organization, "fleet-org");

    // fleet recover after losing the registry asks only this fleet's
    // sprites (by their labels): another sprite of the org stays asleep.
    const other = await fetch(`${s.url}/v1/sprites`, {
      method: "POST",
      headers: { Authorization: `Bearer ${s.token("fleet-org")}` },
      body: JSON.stringify({ name: "bystander" }),
    });
    assert.equal(other.status, 201);
    await other.body?.cancel();
    await Deno.remove(`${s.home("flagship")}/.ohcommodore/fleet.json`);
    assert.deepEqual((await status()).ships, []);
    const rec = await ok(["fleet", "recover", "--json"]);
    assert.deepEqual(
      JSON.parse(rec.stdout).map((x: { name: string }) => x.name),
      SHIPS,
    );
    assert.equal((await spriteState(s, "bystander"))?.status, "cold");
    assert.equal((await spriteState(s, "bystander"))?.sessions, 0);
    await until("links up again", async () => {
      const st = await status();
      return SHIPS.every((n) =>
        st.ships.find((x) => x.name === n)?.link.state === "up"
      );
    });
    await fetch(`${s.url}/v1/sprites/bystander`, {
      method: "DELETE",
      headers: { Authorization: `Bearer ${s.token("fleet-org")}` },
    }).then((r) => r.body?.cancel());

    assert.match(
      (await ok(["ship", "destroy", "cargo"])).stdout,
      /Destroyed cargo/,
    );
    assert.deepEqual(await s.list(), ["alpha", "bravo", "flagship"]);
    const sunk = await ok(["fleet", "sink", "--scuttle", "--force"]);
    assert.match(sunk.stdout, /Sunk 2 ship\(s\)\. Flagship scuttled\./);
    assert.deepEqual(await s.list(), []);
    assert.equal(await exists(`${home}/.ohcommodore/config.json`), false);
  });
});

Deno.test("sprites: the flagship's host fails mid-task; the ship holds itself while its agent runs, and the flagship, back from cold, lands the work without running it again", async () => {
  await fleetOn({ idleS: 5, coldS: 8 }, async ({ s, ok, tmp }) => {
    await ok(["init", "--provider", "sprites"]);
    const plan = await writePlan(`${tmp}/plan`, [{
      id: "1",
      command: "sleep 12 && echo done > out.txt",
    }], {
      ships: 1,
      verify: '#!/bin/bash\ntest "$(cat out.txt)" = done\n',
    });
    const sailed = JSON.parse(
      (await ok(["voyage", "sail", plan, "--agent", "shell", "--json"])).stdout,
    );
    const id: string = sailed.id;
    const [ship]: string[] = sailed.ships;
    // The agent's command runs on the ship; then the flagship's host fails.
    const agentRuns = () =>
      processesOf(`${s.dir}/sprites/${ship}`).some((p) => {
        try {
          return Deno.readTextFileSync(`/proc/${p}/cmdline`) ===
            "sleep\x0012\x00";
        } catch {
          return false; // gone
        }
      });
    await until("the agent running", agentRuns, {
      timeoutMs: 60_000,
      everyMs: 100,
    });
    await s.freeze("flagship");
    // Alone, the ship stays up (its daemon holds it) until its agent is
    // done, then pauses; the work is there.
    await until("the ship paused after its run", async () => {
      const st = await spriteState(s, ship);
      return st?.status !== "running";
    }, { timeoutMs: 60_000, everyMs: 100 });
    assert.equal(agentRuns(), false);
    assert.equal(
      await Deno.readTextFile(`${s.home(ship)}/voyage-${id}/out.txt`),
      "done\n",
    );
    // Asked, the flagship boots, finds the run finished and lands it.
    const st = await until("the voyage verified", async () => {
      const st = JSON.parse(
        (await ok(["voyage", "status", id, "--json"])).stdout,
      );
      return st.voyage.state === "verified" && st;
    }, { timeoutMs: 90_000, everyMs: 500 });
    assert.equal(st.voyage.state, "verified");
    const tasks = await voyageTasks(ok, id);
    assert.deepEqual(tasks.map((t) => [t.id, t.status, t.attempts]), [
      ["1", "done", 1],
    ]);
  });
});

Deno.test("sprites: a ship's host fails mid-task (cold, its agent killed); woken, its daemon back as a service, the task runs again there and the voyage verifies", async () => {
  await fleetOn({ idleS: 5, coldS: 8 }, async ({ s, ok, tmp }) => {
    await ok(["init", "--provider", "sprites"]);
    // The first run is the one the host failure kills; the retry finds the
    // marker and finishes quickly.
    const plan = await writePlan(`${tmp}/plan`, [{
      id: "1",
      command:
        "if [ -e ~/tried ]; then echo done > out.txt; else touch ~/tried; sleep 600; fi",
    }], {
      ships: 1,
      verify: '#!/bin/bash\ntest "$(cat out.txt)" = done\n',
    });
    const sailed = JSON.parse(
      (await ok(["voyage", "sail", plan, "--agent", "shell", "--json"])).stdout,
    );
    const id: string = sailed.id;
    const [ship]: string[] = sailed.ships;
    const agentRuns = () =>
      processesOf(`${s.dir}/sprites/${ship}`).some((p) => {
        try {
          return Deno.readTextFileSync(`/proc/${p}/cmdline`) ===
            "sleep\x00600\x00";
        } catch {
          return false; // gone
        }
      });
    await until("the agent running", agentRuns, {
      timeoutMs: 60_000,
      everyMs: 100,
    });
    await s.freeze(ship);
    assert.equal(agentRuns(), false);
    const st = await until("the voyage verified", async () => {
      const st = JSON.parse(
        (await ok(["voyage", "status", id, "--json"])).stdout,
      );
      return st.voyage.state === "verified" && st;
    }, { timeoutMs: 120_000, everyMs: 1000 });
    assert.equal(st.voyage.state, "verified");
    const tasks = await voyageTasks(ok, id);
    assert.deepEqual(tasks.map((t) => [t.id, t.status, t.attempts]), [
      ["1", "done", 2],
    ]);
  });
});

Deno.test({
  name:
    "bare sprites: the dev artifact cannot run there (negative control); init removes its sprite",
  ignore: bareRootSkipReason() !== null,
  async fn() {
    await fleetOn({ bare: true }, async ({ s, run }) => {
      const r = await run(["init", "--provider", "sprites"]);
      assert.equal(r.code, 1, r.stderr);
      assert.match(
        r.stderr,
        /error: ohcommodore on flagship did not start: .*deno: not found/,
      );
      assert.deepEqual(await s.list(), []);
    });
  },
});

Deno.test("sprites: init without a token anywhere stops before any sprite exists", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "ohc-spr-" });
  const s = await startFakeSprites({ dir: `${tmp}/sprites` });
  try {
    const r = await ohc(tmp, ["init", "--provider", "sprites"], {
      env: { SPRITES_API_URL: s.url },
    });
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      "error: no sprites token found\nhint: log in with `sprite login` (or `sprite auth setup --token ...`), or set SPRITE_TOKEN\n",
    );
    assert.deepEqual(await s.list(), []);
    assert.equal(await exists(`${tmp}/.ohcommodore/config.json`), false);
  } finally {
    await s.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
});
