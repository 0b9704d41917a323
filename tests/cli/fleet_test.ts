/** `fleet ...` and `ship ...` against a fake FleetApi, nothing spawned. */
import assert from "node:assert/strict";
import type { FleetStatus } from "../../lib/fleet/api.ts";
import type { ShipRecord } from "../../lib/state/fleet.ts";
import { CAPTAIN, COMMODORE, runWith } from "../helpers/cli_context.ts";

const ship = (name: string): ShipRecord =>
  ({
    name,
    repo: null,
    status: "ready",
    created_at: new Date().toISOString(),
  }) as unknown as ShipRecord;

const status = (up: boolean): FleetStatus => ({
  flagship: {
    name: "flagship",
    provider: "local",
    ssh_dest: "flag@host",
    status: up ? "up" : "down",
    daemon: up ? "up" : undefined,
  },
  ships: [{
    ...ship("alpha"),
    link: { state: "up", last_heartbeat: null },
  }],
});

Deno.test("fleet status: the table, --json, exit 1 when the flagship is down", async () => {
  const home = await Deno.makeTempDir();
  try {
    let r = await runWith({
      home,
      fleet: { status: () => Promise.resolve(status(true)) },
    }, ["fleet", "status"]);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /FLAGSHIP: flag@host \(up\)/);
    assert.match(r.stdout, /alpha/);
    // The names completion offers.
    assert.equal(
      await Deno.readTextFile(`${home}/.ohcommodore/cache/ships`),
      "alpha\n",
    );
    r = await runWith({
      home,
      fleet: { status: () => Promise.resolve(status(false)) },
    }, ["fleet", "status", "--json"]);
    assert.equal(r.code, 1);
    assert.equal(JSON.parse(r.stdout).flagship.status, "down");
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("fleet commands on a ship: exit 2, one line, nothing asked", async () => {
  const r = await runWith({ identity: CAPTAIN }, ["fleet", "status"]);
  assert.equal(r.code, 2);
  assert.equal(
    r.stderr,
    `error: 'fleet status' runs on your own machine or on the flagship, not on ship "alpha"\n`,
  );
  assert.deepEqual(r.calls, []);
});

Deno.test("fleet sink: asks on a terminal, refuses without one, --force does not ask", async () => {
  const fleet = {
    listShips: () => Promise.resolve([ship("alpha")]),
    sink: () => Promise.resolve({ destroyed: ["alpha"], failed: [] }),
  };
  let r = await runWith({ fleet }, ["fleet", "sink"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /refusing to sink without a terminal.*--force\n$/);
  assert.ok(!r.calls.some((c) => c[0] === "fleet.sink"));

  r = await runWith({ fleet, tty: true, answers: ["no"] }, ["fleet", "sink"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, / {2}- alpha\n[\s\S]*error: aborted\n$/);
  assert.ok(!r.calls.some((c) => c[0] === "fleet.sink"));

  r = await runWith({ fleet, tty: true, answers: ["sink"] }, ["fleet", "sink"]);
  assert.equal(r.code, 0);
  assert.deepEqual(r.prompts, ["Type 'sink' to confirm:"]);
  assert.equal(r.stdout, "Sunk 1 ship(s).\n");

  r = await runWith({ fleet }, ["fleet", "sink", "--force", "--json"]);
  assert.deepEqual(JSON.parse(r.stdout), {
    destroyed: ["alpha"],
    failed: [],
    scuttled: false,
  });
});

Deno.test("fleet sink --scuttle: only from the user's machine; a failed ship keeps the flagship", async () => {
  const fleet = {
    listShips: () => Promise.resolve([]),
    sink: () =>
      Promise.resolve({
        destroyed: [],
        failed: [{ name: "bravo", error: "boom" }],
      }),
  };
  let r = await runWith(
    { identity: COMMODORE, fleet },
    ["fleet", "sink", "--scuttle", "--force"],
  );
  assert.equal(r.code, 2);
  assert.match(r.stderr, /--scuttle runs on your own machine/);
  r = await runWith({ fleet }, ["fleet", "sink", "--scuttle", "--force"]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "error: bravo: boom\n"); // scuttle was not called

  assert.equal(r.stdout, "Sunk 0 ship(s).\n");
});

Deno.test("fleet config set: a bad value or name is exit 2 before the fleet is asked", async () => {
  for (
    const args of [
      ["fleet", "config", "set", "OHCOMMODORE_INBOX_TIMEOUT=-1"],
      ["fleet", "config", "set", "NOPE=1"],
      ["fleet", "config", "unset", "NOPE"],
    ]
  ) {
    const r = await runWith({}, args);
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.stderr.split("\n").length, 2, r.stderr);
    assert.deepEqual(r.calls, []);
  }
  const r = await runWith({
    fleet: {
      setSettings: (set: Record<string, string>) =>
        Promise.resolve({ settings: set, failed: [{ name: "b", error: "x" }] }),
    },
  }, ["fleet", "config", "set", "OHCOMMODORE_INBOX_TIMEOUT=600"]);
  assert.equal(r.code, 1); // a ship was not told
  assert.match(r.stdout, /OHCOMMODORE_INBOX_TIMEOUT\s+600/);
  assert.match(r.stderr, /ship b was not told: x/);
});

Deno.test("ship create: misuse is exit 2 with nothing made; several ships in parallel", async () => {
  for (
    const [args, line] of [
      [["a", "b", "--name", "c"], "--name names one ship; give one spec"],
      [["a", "a"], "the same ship is named twice"],
      [["Bad_Name"], ""],
    ] as const
  ) {
    const r = await runWith({}, ["ship", "create", ...args]);
    assert.equal(r.code, 2, args.join(" "));
    if (line) assert.equal(r.stderr, `error: ${line}\n`);
    assert.deepEqual(r.calls, []);
  }
  const r = await runWith({
    fleet: {
      checkCapacity: () => Promise.resolve(),
      createShip: (req: { spec: string }) =>
        req.spec === "bad"
          ? Promise.reject(new Error("no room"))
          : Promise.resolve(ship(req.spec)),
    },
  }, ["ship", "create", "alpha", "bad", "--json"]);
  assert.equal(r.code, 1);
  const out = JSON.parse(r.stdout);
  assert.deepEqual(out.created.map((s: ShipRecord) => s.name), ["alpha"]);
  assert.deepEqual(out.failed, [{ spec: "bad", error: "no room" }]);
});

Deno.test("ship exec: passes stdin and output through and exits with the command's code", async () => {
  const r = await runWith({
    stdin: "in",
    fleet: {
      exec: async (name: string, argv: string[], io: {
        input?: ReadableStream<Uint8Array>;
        onOutput: (s: "stdout" | "stderr", d: Uint8Array) => void;
      }) => {
        const input = await new Response(io.input).text();
        io.onOutput(
          "stdout",
          new TextEncoder().encode(`${name} ${argv} ${input}`),
        );
        io.onOutput("stderr", new TextEncoder().encode("warn"));
        return 7;
      },
    },
  }, ["ship", "exec", "alpha", "--", "sh", "-c", "x"]);
  assert.equal(r.code, 7);
  assert.equal(r.stdout, "alpha sh,-c,x in");
  assert.equal(r.stderr, "warn");
  const bad = await runWith({}, ["ship", "exec", "alpha", "--"]);
  assert.equal(bad.code, 2);
  assert.equal(bad.stderr, "error: ship exec needs a command after --\n");
});

Deno.test("ship list and destroy", async () => {
  const home = await Deno.makeTempDir();
  try {
    let r = await runWith(
      { home, fleet: { listShips: () => Promise.resolve([]) } },
      ["ship", "list"],
    );
    assert.equal(r.stdout, "No ships.\n");
    r = await runWith({
      fleet: { destroyShip: (n: string) => Promise.resolve(ship(n)) },
    }, ["ship", "destroy", "alpha"]);
    assert.equal(r.stdout, "Destroyed alpha.\n");
    r = await runWith({}, ["ship", "destroy"]);
    assert.equal(r.code, 2);
    assert.match(r.stderr, /missing required argument 'name'/);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
