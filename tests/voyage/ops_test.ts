/**
 * The flagship daemon's voyage operations on a database of their own (no
 * ships, no VMs): which voyage an id names, and the states it shows.
 */
import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import { openDatabase } from "../../lib/db/database.ts";
import { VOYAGE_MIGRATIONS } from "../../lib/voyage/flagship/queue_schema.ts";
import type { Provider } from "../../lib/providers/types.ts";
import type { RpcHandlers } from "../../lib/rpc/stream.ts";
import type { ShipRecord } from "../../lib/state/fleet.ts";
import {
  shipStateNow,
  voyageOps,
} from "../../lib/voyage/flagship/daemon_ops.ts";

async function withOps(
  fn: (
    call: (op: string, args?: Record<string, unknown>) => Promise<unknown>,
  ) => Promise<void>,
  ships: ShipRecord[] = [],
) {
  const db = await openDatabase(":memory:", {
    migrations: VOYAGE_MIGRATIONS,
  });
  const home = await Deno.makeTempDir();
  try {
    const h: RpcHandlers = await voyageOps({
      home,
      db,
      provider: {} as Provider,
      ships: () => Promise.resolve(ships),
      log: () => {},
    });
    await fn((op, args = {}) =>
      h[op]({
        args,
        secrets: {},
        emit: () => {},
        input: new ReadableStream({ start: (c) => c.close() }),
        signal: new AbortController().signal,
      })
    );
  } finally {
    await db.close();
    await Deno.remove(home, { recursive: true });
  }
}

const create = (id: string, state = "running") => ({
  voyage: {
    id,
    name: null,
    state,
    plan_dir: `/nowhere/${id}/plan`,
    bare: "/b.git",
    branch: `voyage/${id}`,
    repo: null,
    agent: "shell",
    agent_command: null,
    objective: "",
    max_attempts: 1,
    lease_s: 60,
  },
  tasks: [],
  ships: [],
});

type Status = { voyage: { id: string; state: string } };

Deno.test("voyage ids: a unique prefix of 4+ characters; an ambiguous one lists its candidates; destructive ops take whole ids", async () => {
  await withOps(async (call) => {
    await call("voyage.create", create("vabcd11"));
    await call("voyage.create", create("vabcd22"));
    const s = await call("voyage.status", { id: "vabcd1" }) as Status;
    assert.equal(s.voyage.id, "vabcd11");
    await assert.rejects(
      () => call("voyage.status", { id: "vabcd" }),
      (e: Error) =>
        e instanceof UsageError &&
        e.message === 'voyage id "vabcd" is ambiguous: vabcd11, vabcd22',
    );
    await assert.rejects(
      () => call("voyage.tasks", { id: "vab" }),
      /no voyage vab \(a short id needs 4 characters or more\)/,
    );
    await assert.rejects(
      () => call("voyage.stop", { id: "vabcd1" }),
      (e: Error) =>
        e instanceof UsageError &&
        e.message ===
          "no voyage vabcd1 (this command takes a whole id: vabcd11)",
    );
    await assert.rejects(
      () => call("voyage.purge", { id: "vabcd2" }),
      /takes a whole id/,
    );
    assert.equal(
      ((await call("voyage.status", { id: "vabcd11" })) as Status).voyage.state,
      "running",
    );
  });
});

Deno.test("no id: the only active voyage, else the only voyage; otherwise a clear error listing them", async () => {
  await withOps(async (call) => {
    await assert.rejects(() => call("voyage.status"), /no voyages yet/);
    await call("voyage.create", create("vdone01", "verified"));
    // The only voyage there is.
    assert.equal(
      ((await call("voyage.status")) as Status).voyage.id,
      "vdone01",
    );
    await call("voyage.create", create("vdone02", "sunk"));
    await assert.rejects(
      () => call("voyage.status"),
      (e: Error) =>
        e instanceof UsageError &&
        /^no voyage is active; name one of: vdone0\d \(\w+\), vdone0\d \(\w+\)$/
          .test(e.message),
    );
    await call("voyage.create", create("vrun001"));
    assert.equal(
      ((await call("voyage.status")) as Status).voyage.id,
      "vrun001",
    );
    await call("voyage.create", create("vrun002"));
    await assert.rejects(
      () => call("voyage.tasks"),
      /2 voyages are active \(.*vrun001 \(running\).*\): name one/,
    );
  });
});

Deno.test("a voyage's ships show what they are now: gone from the fleet, still being created, idle once it ended", () => {
  const rec = (status: string): ShipRecord => ({
    name: "s",
    repo: null,
    repo_dir: null,
    ssh_dest: status === "creating" ? "" : "s",
    status,
    created_at: "",
  } as ShipRecord);
  const cases: [string, string, ShipRecord | undefined, string][] = [
    ["provisioning", "running", undefined, "provisioning"], // not reserved yet
    ["provisioning", "failed", undefined, "gone"], // never made
    ["provisioning", "failed", rec("creating"), "provisioning"],
    ["provisioning", "failed", rec("running"), "idle"],
    ["working", "sunk", rec("running"), "idle"],
    ["stale", "verified", rec("running"), "idle"],
    ["working", "running", rec("running"), "working"],
    ["idle", "running", undefined, "gone"],
    ["gone", "running", rec("running"), "gone"],
  ];
  for (const [row, v, r, want] of cases) {
    assert.equal(
      shipStateNow(row, v as "running", r),
      want,
      `${row} ${v} ${r?.status}`,
    );
  }
});
