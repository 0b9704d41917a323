/**
 * A sail whose ships all fail to be created: the sail says so (exit 1),
 * and the voyage ends 'failed' with that reason at once, instead of
 * sitting 'running' with loops waiting for ships that will never come.
 */
import assert from "node:assert/strict";
import { localFleet, ohc, ohcOk } from "../helpers/cli.ts";
import { writePlan } from "../helpers/plans.ts";

Deno.test("a sail whose ships all fail to be created ends 'failed', with the reason", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  // Ships install ohcommodore from a release that is not there: every
  // ship create fails (the flagship itself is up already).
  await ohcOk(home, [
    "fleet",
    "config",
    "set",
    "OHCOMMODORE_RELEASE_URL=http://127.0.0.1:9/none",
  ]);
  const plan = await writePlan(`${home}/plan`, [
    { id: "1", command: "true" },
  ]);
  const r = await ohc(
    home,
    ["sail", plan, "--agent", "shell", "--ships", "2"],
    {
      timeoutMs: 300_000,
    },
  );
  assert.equal(r.code, 1, r.stderr);
  assert.match(r.stderr, /no ship could be created/);
  const list = JSON.parse(
    (await ohcOk(home, ["voyage", "list", "--json"])).stdout,
  );
  assert.equal(list.length, 1, JSON.stringify(list));
  assert.equal(list[0].voyage.state, "failed", JSON.stringify(list[0]));
  assert.match(list[0].reason ?? "", /no ship could be created/);
  const tasks = JSON.parse(
    (await ohcOk(home, ["voyage", "tasks", list[0].voyage.id, "--json"]))
      .stdout,
  );
  assert.deepEqual(tasks.map((t: { status: string }) => t.status), [
    "failed",
  ]);
});
