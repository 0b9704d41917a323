/**
 * The flagship's cut-through relay on a real store: what it passes on, what
 * it stores instead, and who gets acknowledged when. The links are the one
 * thing faked: they record what would go on the wire.
 */
import assert from "node:assert/strict";
import {
  type EntryKey,
  InboxService,
  type LinkEntry,
} from "../../lib/inbox/service.ts";
import { type InboxStore, openStore } from "../../lib/inbox/store.ts";
import { Relay, type RelayLinks } from "../../lib/link/relay.ts";
import { commodore, envelope } from "../helpers/inbox.ts";
import { until } from "../helpers/wait.ts";

const msg = (id: string, from: string, to: string): LinkEntry => ({
  kind: "message",
  id,
  recipient: `captain@${to}`,
  payload: envelope(id, `captain@${from}`, `captain@${to}`),
});

/** Links as the relay sees them: which are up, and what went out. */
class Wire implements RelayLinks {
  up = new Set<string>();
  offered: { ship: string; ids: string[] }[] = [];
  acks: { ship: string; ids: string[] }[] = [];
  resets: string[] = [];
  offer(ship: string, entries: LinkEntry[]) {
    if (!this.up.has(ship)) return false;
    this.offered.push({ ship, ids: entries.map((e) => e.id) });
    return true;
  }
  ack(ship: string, keys: EntryKey[]) {
    this.acks.push({ ship, ids: keys.map((k) => k.id) });
  }
  reset(ship: string) {
    this.resets.push(ship);
  }
  ackedTo(ship: string) {
    return this.acks.filter((a) => a.ship === ship).flatMap((a) => a.ids);
  }
}

async function flagship(
  fn: (
    svc: InboxService,
    relay: Relay,
    wire: Wire,
    store: InboxStore,
  ) => Promise<void>,
  holdMs = 60_000,
) {
  const store = await openStore(":memory:");
  const svc = new InboxService(store, commodore);
  svc.roster = new Set(["alpha", "beta", "gamma"]);
  const wire = new Wire();
  const relay = new Relay(svc, wire, () => {}, holdMs);
  svc.relay = relay;
  try {
    await fn(svc, relay, wire, store);
  } finally {
    relay.stop();
    await store.close();
  }
}

const queuedIds = async (store: InboxStore, ship: string) =>
  (await store.outbox.queued(ship)).map((o) => o.id);

Deno.test("relay: an entry for a ship whose link is up goes on unstored; the sender is acknowledged when that ship is", async () => {
  await flagship(async (svc, relay, wire, store) => {
    wire.up.add("beta");
    const now = await svc.accept([msg("m1", "alpha", "beta")], "alpha");
    assert.deepEqual(now, [], "not acknowledged before beta has it");
    assert.deepEqual(wire.offered, [{ ship: "beta", ids: ["m1"] }]);
    assert.deepEqual(await queuedIds(store, "beta"), []);
    assert.equal(relay.inFlight, 1);

    const fromOutbox = relay.acked("beta", [{ kind: "message", id: "m1" }]);
    assert.deepEqual(fromOutbox, [], "nothing of the flagship's to mark");
    assert.deepEqual(wire.ackedTo("alpha"), ["m1"]);
    assert.equal(relay.inFlight, 0);
    assert.equal(await store.outbox.countQueued(), 0);
  });
});

Deno.test("relay: for a ship whose link is down the flagship stores the entry and acknowledges it at once", async () => {
  await flagship(async (svc, relay, wire, store) => {
    const now = await svc.accept([msg("m1", "alpha", "beta")], "alpha");
    assert.deepEqual(now, [{ kind: "message", id: "m1" }]);
    assert.deepEqual(wire.offered, []);
    assert.deepEqual(await queuedIds(store, "beta"), ["m1"]);
    // beta's ack for an entry sent from the outbox is the flagship's to mark.
    const key = { kind: "message" as const, id: "m1" };
    assert.deepEqual(relay.acked("beta", [key]), [key]);
    assert.deepEqual(wire.ackedTo("alpha"), []);
  });
});

Deno.test("relay: a link that drops leaves what it did not acknowledge stored at the flagship, then acknowledged to its senders", async () => {
  await flagship(async (svc, relay, wire, store) => {
    wire.up.add("beta");
    wire.up.add("gamma");
    await svc.accept(
      [msg("a1", "alpha", "beta"), msg("a2", "alpha", "gamma")],
      "alpha",
    );
    await svc.accept([msg("g1", "gamma", "beta")], "gamma");
    relay.acked("beta", [{ kind: "message", id: "a1" }]);
    wire.up.delete("beta");
    relay.down("beta");
    await until(
      "g1 acknowledged to gamma",
      () => wire.ackedTo("gamma").length > 0,
    );
    assert.deepEqual(await queuedIds(store, "beta"), ["g1"]);
    assert.deepEqual(wire.ackedTo("gamma"), ["g1"]);
    assert.deepEqual(wire.ackedTo("alpha"), ["a1"]);
    assert.equal(relay.inFlight, 1, "a2 waits for gamma still");
  });
});

Deno.test("relay: an entry the next ship leaves unacknowledged too long is stored and acknowledged", async () => {
  await flagship(async (svc, relay, wire, store) => {
    wire.up.add("beta");
    await svc.accept([msg("m1", "alpha", "beta")], "alpha");
    assert.deepEqual(wire.ackedTo("alpha"), []);
    await until(
      "m1 stored and acknowledged after beta's silence",
      () => wire.ackedTo("alpha").length > 0,
    );
    assert.deepEqual(await queuedIds(store, "beta"), ["m1"]);
    assert.deepEqual(wire.ackedTo("alpha"), ["m1"]);
    assert.equal(relay.inFlight, 0);
    // beta's late ack now marks the stored copy delivered.
    const key = { kind: "message" as const, id: "m1" };
    assert.deepEqual(relay.acked("beta", [key]), [key]);
  }, 100);
});

Deno.test("relay: while entries for a ship are being stored, later ones are stored behind them, never passed ahead", async () => {
  await flagship(async (svc, _relay, wire, store) => {
    // m1 is stored (beta down); beta comes up while that commits.
    const first = svc.accept([msg("m1", "alpha", "beta")], "alpha");
    wire.up.add("beta");
    const second = svc.accept([msg("m2", "alpha", "beta")], "alpha");
    assert.deepEqual(await first, [{ kind: "message", id: "m1" }]);
    assert.deepEqual(await second, [{ kind: "message", id: "m2" }]);
    assert.deepEqual(await queuedIds(store, "beta"), ["m1", "m2"]);
    assert.deepEqual(wire.offered, []);
    // Once nothing is being stored, entries pass again.
    assert.deepEqual(
      await svc.accept([msg("m3", "alpha", "beta")], "alpha"),
      [],
    );
    assert.deepEqual(wire.offered, [{ ship: "beta", ids: ["m3"] }]);
  });
});

Deno.test("relay: entries for the flagship itself and bounces are stored, never passed", async () => {
  await flagship(async (svc, _relay, wire, store) => {
    wire.up.add("alpha");
    const keys = await svc.accept([
      msg("x1", "alpha", "nobody"),
      {
        kind: "message",
        id: "c1",
        recipient: "commodore",
        payload: envelope("c1", "captain@alpha", "commodore"),
      },
    ], "alpha");
    assert.deepEqual(keys.map((k) => k.id), ["x1", "c1"]);
    assert.deepEqual(wire.offered, []);
    const bounced = await store.outbox.queued("alpha");
    assert.deepEqual(bounced.map((o) => [o.kind, o.id]), [["result", "x1"]]);
    assert.deepEqual((await store.inbox.list()).map((m) => m.id), ["c1"]);
  });
});
