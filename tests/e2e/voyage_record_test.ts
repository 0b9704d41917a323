/**
 * A voyage's record outlives its ships, and its states are true: a sink
 * keeps the repository, the tasks, the logs (fetched from each ship before
 * it goes) and the verify result; the voyage can be steered after it
 * started (`voyage retry`, `voyage add`), after a sink on new ships; its
 * ships show what they are; `voyage status` with no id does what its help
 * says; ids may be shortened except where something is destroyed.
 */
import assert from "node:assert/strict";
import {
  exists,
  localFleet,
  ohc,
  ohcOk,
  scratchHome,
  teardown,
} from "../helpers/cli.ts";
import { writePlan } from "../helpers/plans.ts";
import { until } from "../helpers/wait.ts";
import {
  sailOk,
  type VoyageStatusJson,
  voyageTasks,
  waitVoyage,
} from "../helpers/voyage.ts";

const LEASE = { OHCOMMODORE_TASK_LEASE: "600" };
const waitFor = (g: string) => `while [ ! -e ${g} ]; do sleep 0.1; done`;

async function status(home: string, id: string): Promise<VoyageStatusJson> {
  return JSON.parse(
    (await ohcOk(home, ["voyage", "status", id, "--json"])).stdout,
  );
}

Deno.test("sink keeps the record (logs from the ship, tasks, verify, clone); retry sails on new ships; tasks added to a running voyage run", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const [g1, g2] = [`${home}/gate1`, `${home}/gate2`];
  const plan = await writePlan(`${home}/plan`, [
    { id: "1", command: `echo started-one; ${waitFor(g1)}; echo 1 > one.txt` },
    { id: "2", command: `${waitFor(g2)}; echo 2 > two.txt`, blockedBy: ["1"] },
  ], { ships: 1, verify: "#!/bin/bash\ntest -f three.txt\n" });
  const id = await sailOk(home, [plan, "--agent", "shell"], LEASE);
  await until(
    "task 1 to write",
    async () =>
      (await ohcOk(home, ["voyage", "logs", id])).stdout.includes(
        "started-one",
      ),
    { timeoutMs: 60_000 },
  );

  await ohcOk(home, ["voyage", "sink", id, "--force"]);
  const s = await status(home, id);
  assert.equal(s.voyage.state, "sunk");
  assert.equal(s.counts.running, 0);
  assert.deepEqual(
    s.ships.map((x) => [x.ship, (x as { state?: string }).state]),
    [
      [`${id}-0`, "gone"],
    ],
  );
  const [t1] = await voyageTasks(home, id);
  assert.equal(t1.status, "failed");
  assert.match(t1.error ?? "", /was destroyed/);
  // The ship is gone; what it wrote is not.
  assert.deepEqual(
    JSON.parse((await ohcOk(home, ["ship", "list", "--json"])).stdout),
    [],
  );
  const logs = await ohcOk(home, ["logs", id, "--ship", "ship-0"]);
  assert.match(
    logs.stdout,
    new RegExp(`^\\[${id}-0 task-1\\] started-one$`, "m"),
  );
  await ohcOk(home, ["voyage", "clone", id, "-d", `${home}/kept`]);
  assert.ok(await exists(`${home}/kept/.git`));

  // Retry after the sink: on a new ship, numbered after the old.
  await Deno.writeTextFile(g1, "");
  const retry = await ohcOk(home, [
    "voyage",
    "retry",
    id.slice(0, 5),
    "--ships",
    "1",
    "--json",
  ]);
  const r = JSON.parse(retry.stdout);
  assert.deepEqual(
    [r.tasks, r.reopened, r.new_ships],
    [["1"], true, [`${id}-1`]],
  );
  await until(
    "task 2 to run",
    async () => (await voyageTasks(home, id))[1].status === "running",
    {
      timeoutMs: 120_000,
    },
  );
  // Added while it runs: checked against its tasks, then run by its ship.
  const more = `${home}/more`;
  await Deno.mkdir(more);
  const t3 = (blockedBy: string[]) =>
    JSON.stringify({
      id: "3",
      subject: "three",
      command: "echo 3 > three.txt",
      blockedBy,
    });
  await Deno.writeTextFile(`${more}/3.json`, t3(["9"]));
  const bad = await ohc(home, ["voyage", "add", id, `${more}/3.json`]);
  assert.equal(bad.code, 2, bad.stderr);
  assert.match(bad.stderr, /task 3 is blocked by unknown task 9/);
  await Deno.writeTextFile(`${more}/3.json`, t3(["2"]));
  const added = JSON.parse(
    (await ohcOk(home, ["voyage", "add", id, more, "--json"])).stdout,
  );
  assert.deepEqual([added.tasks, added.reopened, added.new_ships], [
    ["3"],
    false,
    [],
  ]);
  await Deno.writeTextFile(g2, "");
  const done = await waitVoyage(home, id, 180_000);
  assert.equal(done.voyage.state, "verified");
  const ts = await voyageTasks(home, id);
  assert.deepEqual(ts.map((t) => [t.id, t.status, t.ship]), [
    ["1", "done", `${id}-1`],
    ["2", "done", `${id}-1`],
    ["3", "done", `${id}-1`],
  ]);
  assert.equal(ts[0].attempts, 2);

  // Added after a sink: a new ship (one per open task) sails it on.
  await ohcOk(home, ["voyage", "sink", id, "--force"]);
  await Deno.writeTextFile(
    `${more}/3.json`,
    JSON.stringify({
      id: "4",
      subject: "four",
      command: "echo 4 > four.txt",
      blockedBy: ["3"],
    }),
  );
  const after = JSON.parse(
    (await ohcOk(home, ["voyage", "add", id, `${more}/3.json`, "--json"]))
      .stdout,
  );
  assert.deepEqual([after.tasks, after.reopened, after.new_ships], [
    ["4"],
    true,
    [`${id}-2`],
  ]);
  const again = await waitVoyage(home, id, 180_000);
  assert.equal(again.voyage.state, "verified");
  assert.deepEqual(
    (await voyageTasks(home, id)).map((t) => [t.id, t.status, t.ship])[3],
    ["4", "done", `${id}-2`],
  );

  // --purge: nothing of it is left.
  await ohcOk(home, ["voyage", "sink", id, "--force", "--purge"]);
  const gone = await ohc(home, ["voyage", "logs", id]);
  assert.equal(gone.code, 2);
  assert.match(gone.stderr, new RegExp(`no voyage ${id}`));
});

Deno.test("a failed voyage's ships show their real state, not provisioning forever", async () => {
  const home = await scratchHome();
  await using _ = { [Symbol.asyncDispose]: () => teardown(home) };
  // Ship -1 is held in its creation (the cloudinit hook) until the gate.
  const gate = `${home}/gate`;
  const hook = `${home}/hook.sh`;
  await Deno.writeTextFile(
    hook,
    `case "$HOME" in *-1) ${waitFor(gate)};; esac\n`,
  );
  await ohcOk(home, ["init"], { env: { INIT_PATH: hook } });
  const plan = await writePlan(`${home}/plan`, [
    { id: "1", command: "exit 3" },
  ], { ships: 2 });
  const sail = ohc(
    home,
    ["voyage", "sail", plan, "--agent", "shell", "--json"],
    {
      env: { OHCOMMODORE_TASK_ATTEMPTS: "1" },
    },
  );
  const id = await until("the voyage", async () => {
    const r = await ohc(home, ["voyage", "list", "--json"]);
    return r.code === 0 ? JSON.parse(r.stdout)[0]?.voyage.id : null;
  }, { timeoutMs: 60_000 });
  const failed = await until("the voyage to fail", async () => {
    const s = await status(home, id);
    return s.voyage.state === "failed" ? s : null;
  }, { timeoutMs: 120_000 });
  const stateOf = (s: VoyageStatusJson) =>
    s.ships.map((x) => (x as { state?: string }).state);
  // True now: ship -1 is still being made.
  assert.deepEqual(stateOf(failed), ["idle", "provisioning"]);
  await Deno.writeTextFile(gate, "");
  assert.equal((await sail).code, 0);
  assert.deepEqual(stateOf(await status(home, id)), ["idle", "idle"]);
});

Deno.test("status with no id: the only active voyage, else the only one, else a list; short ids; default ships; ocaptain's short flags; shell needs a terminal", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const plan = await writePlan(`${home}/plan`, [
    { id: "1", command: "echo hello-one; echo other; echo 1 > one.txt" },
  ], { ships: null });
  const one = { OHCOMMODORE_DEFAULT_SHIPS: "1" };
  const bad = await ohc(home, ["sail", plan, "--agent", "shell"], {
    env: { OHCOMMODORE_DEFAULT_SHIPS: "0" },
  });
  assert.equal(bad.code, 2);
  assert.match(bad.stderr, /OHCOMMODORE_DEFAULT_SHIPS="0" is not valid/);
  const a = await sailOk(home, [plan, "--agent", "shell"], one);
  assert.equal((await waitVoyage(home, a)).ships.length, 1);
  // The only voyage there is, though it has ended.
  assert.match((await ohcOk(home, ["status"])).stdout, new RegExp(a));
  // ocaptain's logs -s SHIP -f -g RE -n N (a ship as ocaptain names it).
  const greped = await ohcOk(home, [
    "logs",
    a,
    "-s",
    "ship-0",
    "-f",
    "-g",
    "hello-one$",
    "-n",
    "50",
  ]);
  assert.deepEqual(greped.stdout.trim().split("\n"), [
    `[${a}-0 task-1] hello-one`,
  ]);
  const last = await ohcOk(home, ["logs", a, "-s", "0", "-n", "1"]);
  assert.equal(last.stdout.trim().split("\n").length, 1, last.stdout);
  const noShip = await ohc(home, ["logs", a, "-s", "ship-7"]);
  assert.equal(noShip.code, 2);
  assert.match(noShip.stderr, new RegExp(`its ships: ${a}-0 \\(ship-0\\)`));
  // sail -n wins over OHCOMMODORE_DEFAULT_SHIPS.
  const b = await sailOk(home, [plan, "-n", "2", "--agent", "shell"], one);
  assert.equal((await waitVoyage(home, b)).ships.length, 2);
  const none = await ohc(home, ["voyage", "status"]);
  assert.equal(none.code, 2, none.stdout);
  assert.equal(none.stdout, "");
  assert.match(
    none.stderr,
    new RegExp(`no voyage is active; name one of: .*${a} \\(verified\\)`),
  );
  assert.match(none.stderr, new RegExp(`${b} \\(verified\\)`));

  // Short ids where only reading; whole ids where destroying.
  const len = [4, 5, 6, 7].find((n) => a.slice(0, n) !== b.slice(0, n))!;
  const short = a.slice(0, len);
  assert.equal((await status(home, short)).voyage.id, a);
  const guess = await ohc(home, ["voyage", "sink", short, "--force"]);
  assert.equal(guess.code, 2);
  assert.match(guess.stderr, /this command takes a whole id/);
  assert.equal((await status(home, a)).voyage.state, "verified");

  const shell = await ohc(home, ["shell", a]);
  assert.equal(shell.code, 2);
  assert.equal(shell.stdout, "");
  assert.equal(shell.stderr.trim().split("\n").length, 1, shell.stderr);
  assert.match(shell.stderr, /needs a terminal.*--raw/);
});
