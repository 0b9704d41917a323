/**
 * A timeout ends everything the command started, on a real ship's daemon:
 * processes that leave the command's group (setsid), ignore SIGTERM, or
 * hold its output open; then the inbox moves on. With cgroup v2 a process
 * that also drops the marker goes too. Timeouts a timer cannot hold are
 * refused.
 */
import assert from "node:assert/strict";
import { localFleet, ohc, ohcOk } from "../helpers/cli.ts";
import { until } from "../helpers/wait.ts";
import { commandCgroups } from "../../lib/daemon/containment.ts";

/** Pids of processes whose argv is exactly `argv`. */
function running(argv: string[]): number[] {
  const want = argv.join("\0") + "\0";
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = new TextDecoder().decode(
        Deno.readFileSync(`/proc/${e.name}/cmdline`),
      );
      if (cmd === want) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

/** A number no other test's `sleep` uses. */
const unique = () => String(100_000 + Math.floor(Math.random() * 800_000));

Deno.test("a timeout ends what left the group, ignored TERM or held the output; the inbox moves on", async () => {
  await using fleet = await localFleet("alpha");
  const home = fleet.home;
  // beta contains commands by their marker alone (no cgroup).
  await ohcOk(home, ["ship", "create", "beta"], {
    env: { OHCOMMODORE_NO_CGROUP: "1" },
  });
  const cgroup = commandCgroups(`${home}/.ohcommodore/local/alpha`);
  if (!cgroup) {
    console.log(
      "NOTICE: no writable cgroup v2 here; alpha uses the marker too",
    );
  }
  for (const ship of ["alpha", "beta"]) {
    const [a, b, c] = [unique(), unique(), unique()];
    // With a cgroup, even a process that drops the marker is ended.
    const dropMarker = ship === "alpha" && cgroup !== null;
    // Before, it never ended (the escaped sleep held its output open).
    const r = await ohc(home, [
      "inbox",
      "send",
      "--wait",
      "--timeout",
      "3",
      `captain@${ship}`,
      `setsid sleep ${a} & ${
        dropMarker ? `setsid env -u OHC_MESSAGE_ID sleep ${c} & ` : ""
      }trap "" TERM; sleep ${b}`,
    ], { timeoutMs: 120_000 });
    assert.notEqual(r.code, 0, r.stderr);
    assert.match(r.stderr, /timed out after 3s/);
    for (const n of dropMarker ? [a, b, c] : [a, b]) {
      await until(
        `sleep ${n} on ${ship} to end`,
        () => running(["sleep", n]).length === 0,
        { timeoutMs: 10_000 },
      );
    }
    const next = await ohc(home, [
      "inbox",
      "send",
      "--wait",
      `captain@${ship}`,
      "echo next",
    ]);
    assert.equal(next.code, 0, next.stderr);
    assert.equal(next.stdout, "next\n");
  }
});

Deno.test("--timeout above what a timer holds is exit 2; the most it holds runs", async () => {
  await using fleet = await localFleet("alpha");
  const home = fleet.home;
  const r = await ohc(home, [
    "inbox",
    "send",
    "--timeout",
    "2147484",
    "captain@alpha",
    "echo ran",
  ]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  assert.match(r.stderr, /at most 2147483 seconds/);
  const listed = JSON.parse(
    (await ohcOk(home, ["inbox", "list", "--json"])).stdout,
  );
  assert.deepEqual(listed.queued, []);
  const most = await ohc(home, [
    "inbox",
    "send",
    "--wait",
    "--timeout",
    "2147483",
    "captain@alpha",
    "sleep 1; echo ran",
  ]);
  assert.equal(most.code, 0, most.stderr);
  assert.equal(most.stdout, "ran\n");
});
