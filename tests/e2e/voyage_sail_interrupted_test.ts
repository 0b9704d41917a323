/**
 * A sail whose own process dies while its ships are being made (the
 * flagship restarted, the process was killed): its voyage does not stay
 * 'planning', and no ship loop waits for a ship nobody makes. The ships
 * install ohcommodore from a release served here, which hands the binary
 * to as many ships as a test says and holds every later download, so a
 * ship is still being made, for sure, when the sail is SIGKILLed.
 */
import assert from "node:assert/strict";
import { localFleet, ohc, ohcOk } from "../helpers/cli.ts";
import { writePlan } from "../helpers/plans.ts";
import { publish } from "../helpers/release.ts";
import { flagshipHome, statusWait, voyageTasks } from "../helpers/voyage.ts";
import { until } from "../helpers/wait.ts";

const artifact = new URL("../../dist/dev/ohcommodore", import.meta.url)
  .pathname;

/** The release, giving the binary `served` times; later downloads wait. */
async function heldRelease(served: number) {
  const dir = await Deno.makeTempDir({ prefix: "ohc-rel-" });
  const name = await publish(dir, artifact);
  let given = 0;
  let held = 0;
  const { promise: released, resolve: release } = Promise.withResolvers<
    void
  >();
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (req) => {
      const file = new URL(req.url).pathname.slice(1);
      if (file === name && given++ >= served) {
        held++;
        await released;
        return new Response("held", { status: 503 });
      }
      return new Response(await Deno.readFile(`${dir}/${file}`));
    },
  );
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    held: () => held,
    [Symbol.asyncDispose]: async () => {
      release();
      await server.shutdown();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

/**
 * Sails `ships` ships in the background and SIGKILLs the sail's process
 * once a download is held (and, with more than one ship, the voyage runs).
 */
async function sailAndKill(
  home: string,
  ships: number,
  rel: { url: string; held: () => number },
) {
  await ohcOk(home, [
    "fleet",
    "config",
    "set",
    `OHCOMMODORE_RELEASE_URL=${rel.url}`,
  ]);
  const plan = await writePlan(`${home}/plan`, [
    { id: "1", command: "echo ok > ok.txt" },
  ], { verify: "#!/bin/bash\ntest -f ok.txt\n" });
  const sailing = ohc(home, [
    "voyage",
    "sail",
    plan,
    "--agent",
    "shell",
    "--ships",
    String(ships),
  ], { timeoutMs: 300_000 });
  await until("a ship's download to be held", () => rel.held() > 0, {
    timeoutMs: 120_000,
  });
  const voyages = `${await flagshipHome(home)}/.ohcommodore/voyages`;
  const [id] = await Array.fromAsync(Deno.readDir(voyages), (e) => e.name);
  if (ships > 1) {
    // The ship that got the binary is up: the voyage was launched (and
    // may have sailed through already).
    await until("the voyage to be launched", async () => {
      const [v] = JSON.parse(
        (await ohcOk(home, ["voyage", "list", "--json"])).stdout,
      );
      return v.voyage.state !== "planning";
    }, { timeoutMs: 120_000 });
  }
  const pid = Number(
    (await Deno.readTextFile(`${voyages}/${id}/sail.pid`)).split(" ")[0],
  );
  Deno.kill(pid, "SIGKILL");
  const r = await sailing;
  assert.notEqual(r.code, 0, "the sail's own process was killed");
  return id;
}

Deno.test("sail killed before any ship is up: the voyage fails, saying so, and status --wait returns", async () => {
  await using fleet = await localFleet();
  await using rel = await heldRelease(0);
  const id = await sailAndKill(fleet.home, 1, rel);
  const { code, stderr, status: s } = await statusWait(fleet.home, id, 60_000);
  assert.equal(code, 1, stderr);
  assert.equal(s.voyage.state, "failed");
  assert.match(
    s.reason ?? "",
    /sail was interrupted .* before any ship was up/,
  );
  const [t] = await voyageTasks(fleet.home, id);
  assert.equal(t.status, "failed");
  assert.match(t.error ?? "", /^not started: /);
});

Deno.test("sail killed with one of two ships up: the voyage sails on with it and the other leaves it", async () => {
  await using fleet = await localFleet();
  await using rel = await heldRelease(1);
  const id = await sailAndKill(fleet.home, 2, rel);
  const { code, stderr, status: s } = await statusWait(
    fleet.home,
    id,
    180_000,
  );
  assert.equal(code, 0, stderr);
  assert.equal(s.voyage.state, "verified");
  // Not 'provisioning' for good: nobody makes that ship any more.
  assert.deepEqual(
    s.ships.map((x) => x.state).toSorted(),
    ["gone", "idle"],
    JSON.stringify(s.ships),
  );
});
