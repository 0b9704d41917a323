/**
 * A sink ends what it sinks: when the flagship destroys ships (`ship
 * destroy`, `fleet sink`), the voyages that sailed with them learn it at
 * once: their tasks go back to the queue (no lease waited out; the lease
 * here is ten minutes), and a voyage left with no ship is sunk, so
 * `voyage status --wait` returns with a true state.
 */
import assert from "node:assert/strict";
import { exists, localFleet, ohcOk } from "../helpers/cli.ts";
import { writePlan } from "../helpers/plans.ts";
import { until } from "../helpers/wait.ts";
import {
  sailOk,
  statusWait,
  voyageTasks,
  waitVoyage,
} from "../helpers/voyage.ts";

const LEASE = { OHCOMMODORE_TASK_LEASE: "600" };

/** The ship running a task of the voyage, once there is one. */
async function busyShip(home: string, id: string): Promise<string> {
  return await until(
    "a task to run",
    async () =>
      (await voyageTasks(home, id)).find((t) => t.status === "running")
        ?.ship,
    { timeoutMs: 60_000 },
  );
}

Deno.test("ship destroy of a busy ship: its task goes back to the queue at once and another ship does it", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  // The first attempt runs until its ship is destroyed (however long the
  // destroy takes on a loaded machine); the second finishes.
  const first = `${home}/first-attempt`;
  const plan = await writePlan(`${home}/plan`, [
    {
      id: "1",
      command:
        `if mkdir ${first} 2>/dev/null; then exec sleep 600; fi; echo slow > slow.txt`,
    },
  ], { ships: 2, verify: "#!/bin/bash\ntest -f slow.txt\n" });
  const id = await sailOk(home, [plan, "--agent", "shell"], LEASE);
  // Running in the queue is not running on the ship yet: destroyed before
  // its agent started, the victim would leave the slow attempt to the
  // other ship.
  await until("the first attempt to start", () => exists(first), {
    timeoutMs: 60_000,
  });
  const victim = await busyShip(home, id);
  await ohcOk(home, ["ship", "destroy", victim]);
  // At once: back in the queue, or already with the other ship.
  const [t] = await voyageTasks(home, id);
  assert.ok(
    t.status !== "running" || t.ship !== victim,
    `still running on the destroyed ship: ${JSON.stringify(t)}`,
  );
  const s = await waitVoyage(home, id, 180_000);
  assert.equal(s.voyage.state, "verified");
  const [done] = await voyageTasks(home, id);
  assert.equal(done.status, "done");
  assert.notEqual(done.ship, victim);
  assert.equal(done.attempts, 2, JSON.stringify(done.runs));
  // Lost to the destroy, not counted as the agent's failure (its agent was
  // killed only after the queue had taken the task back).
  assert.deepEqual(
    done.runs.map((r) => [r.ship === victim, r.outcome]),
    [[true, "lost"], [false, "done"]],
    JSON.stringify(done.runs),
  );
});

Deno.test("fleet sink during a voyage: the voyage is sunk, no task is left running, status --wait returns", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const plan = await writePlan(
    `${home}/plan`,
    ["1", "2", "3"].map((id) => ({ id, command: "sleep 60" })),
    { ships: 3 },
  );
  const id = await sailOk(home, [plan, "--agent", "shell"], LEASE);
  await until(
    "three tasks to run",
    async () =>
      (await voyageTasks(home, id)).filter((t) => t.status === "running")
        .length === 3,
    { timeoutMs: 60_000 },
  );
  await ohcOk(home, ["fleet", "sink", "--force"]);
  const wait = await statusWait(home, id, 60_000);
  assert.equal(wait.code, 1, wait.stderr);
  assert.equal(wait.status.voyage.state, "sunk");
  const ts = await voyageTasks(home, id);
  assert.equal(ts.filter((t) => t.status === "running").length, 0);
  for (const t of ts) assert.match(t.error ?? "", /was destroyed/);
});
