/**
 * VM settings travel with the fleet: from the laptop's environment at
 * create, and by `fleet config set` to the flagship and every ship, whose
 * daemons take them without a restart. A bad value is exit 2, nothing done.
 */
import assert from "node:assert/strict";
import { localFleet, ohc, ohcOk } from "../helpers/cli.ts";
import { until } from "../helpers/wait.ts";

const vmHome = (home: string, vm: string) => `${home}/.ohcommodore/local/${vm}`;
const settingsOf = async (home: string, vm: string) =>
  JSON.parse(
    await Deno.readTextFile(`${vmHome(home, vm)}/.ohcommodore/settings.json`),
  );

Deno.test("fleet config: settings reach every VM and the daemons use them; bad ones are exit 2", async () => {
  await using fleet = await localFleet("alpha");
  const home = fleet.home;

  // A bad value in the laptop's environment: exit 2 before any VM exists.
  const bad = await ohc(home, ["ship", "create", "bravo"], {
    env: { OHCOMMODORE_INBOX_TIMEOUT: "abc" },
  });
  assert.equal(bad.code, 2);
  assert.equal(
    bad.stderr,
    'error: OHCOMMODORE_INBOX_TIMEOUT="abc" is not valid: the inbox timeout: a number of seconds from 0 to 2147483\n',
  );
  const ships = JSON.parse(
    (await ohcOk(home, ["ship", "list", "--json"])).stdout,
  );
  assert.deepEqual(ships.map((s: { name: string }) => s.name), ["alpha"]);

  // Set for the fleet: the flagship and alpha hold it, and alpha's running
  // daemon times a command out by it.
  for (
    const args of [
      ["fleet", "config", "set", "OHCOMMODORE_INBOX_TIMEOUT=two"],
      ["fleet", "config", "set", "OHCOMMODORE_BOGUS=1"],
      ["fleet", "config", "unset", "OHCOMMODORE_BOGUS"],
      ["fleet", "config", "set"],
    ]
  ) {
    const r = await ohc(home, args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
  const set = await ohcOk(home, [
    "fleet",
    "config",
    "set",
    "OHCOMMODORE_INBOX_TIMEOUT=2",
    "--json",
  ]);
  assert.deepEqual(JSON.parse(set.stdout), {
    settings: { OHCOMMODORE_INBOX_TIMEOUT: "2" },
    failed: [],
  });
  for (const vm of ["flagship", "alpha"]) {
    assert.deepEqual(await settingsOf(home, vm), {
      OHCOMMODORE_INBOX_TIMEOUT: "2",
    });
  }
  // The daemon reloads the file by itself (every 2 s): wait for its log.
  await until(
    "alpha's daemon to reload its settings",
    async () =>
      (await Deno.readTextFile(
        `${vmHome(home, "alpha")}/.ohcommodore/daemon.log`,
      ).catch(() => "")).includes("settings reloaded"),
  );
  const timed = await ohc(home, [
    "inbox",
    "send",
    "--wait",
    "captain@alpha",
    "sleep 60",
  ]);
  assert.notEqual(timed.code, 0);
  assert.match(timed.stdout + timed.stderr, /timed out after 2s/);

  // A bad value reaching a VM another way (its file edited there) is checked
  // where it is read: the daemon names it and keeps its old values, instead
  // of a NaN timeout looping its scheduler.
  await Deno.writeTextFile(
    `${vmHome(home, "alpha")}/.ohcommodore/settings.json`,
    JSON.stringify({ OHCOMMODORE_INBOX_TIMEOUT: "abc" }),
  );
  await until(
    "alpha's daemon to refuse the bad value",
    async () =>
      (await Deno.readTextFile(
        `${vmHome(home, "alpha")}/.ohcommodore/daemon.log`,
      ).catch(() => "")).includes(
        'settings not reloaded: OHCOMMODORE_INBOX_TIMEOUT="abc" is not valid: the inbox timeout',
      ),
  );
  const still = await ohcOk(home, [
    "inbox",
    "send",
    "--wait",
    "captain@alpha",
    "echo still here",
  ]);
  assert.match(still.stdout, /still here/);

  // A ship made later gets the fleet's settings too.
  await ohcOk(home, ["ship", "create", "bravo"]);
  assert.deepEqual(await settingsOf(home, "bravo"), {
    OHCOMMODORE_INBOX_TIMEOUT: "2",
  });
  const got = await ohcOk(home, ["fleet", "config", "get"]);
  assert.match(got.stdout, /OHCOMMODORE_INBOX_TIMEOUT\s+2\s/);
  assert.match(got.stdout, /OHCOMMODORE_TASK_LEASE\s+60 \(default\)/);
  await ohcOk(home, ["fleet", "config", "unset", "OHCOMMODORE_INBOX_TIMEOUT"]);
  assert.deepEqual(await settingsOf(home, "bravo"), {});
});
