/**
 * The flagship's cut-through relay. An entry from one ship for another whose
 * link is up goes straight on, unstored; the sender's acknowledgement waits
 * for the next ship's, so the entry stays durable in the sender's outbox until
 * the ship that takes it over has stored it. Only when that ship's link is
 * down, drops before it answers, or stays silent for HOLD_MS does the flagship
 * store the entry itself (store and forward) and acknowledge it.
 *
 * This keeps the flagship's database out of the path of every message and
 * result between two ships: storing, acknowledging and marking delivered cost
 * two commits and four statements per message there.
 *
 * Order: while entries for a ship are being stored, later ones for it are
 * stored too (behind them, in the store's one queue), never passed ahead.
 */
import {
  type EntryKey,
  entryKey,
  type InboxService,
  type LinkEntry,
  linkEntryOf,
  type Passer,
} from "../inbox/service.ts";
import type { NewOutboxEntry } from "../inbox/types.ts";

/** How long an entry passed on may wait for the next ship's ack. */
export const HOLD_MS = 2_000;

/** What the relay needs of the flagship's links. */
export interface RelayLinks {
  /** Sends on the ship's link session; false when there is none. */
  offer(ship: string, entries: LinkEntry[]): boolean;
  /** Acknowledges to a ship (lost if its link is down: it resends). */
  ack(ship: string, keys: EntryKey[]): void;
  /** Ends a ship's session, so that it sends its unacknowledged entries again. */
  reset(ship: string): void;
}

interface Held {
  entry: NewOutboxEntry;
  /** The ship it came from, which waits for the ack. */
  from: string;
  at: number;
}

export class Relay implements Passer {
  /** Entries passed on, by next ship, then by key. */
  private held = new Map<string, Map<string, Held>>();
  /** Entries being stored, by next ship. */
  private storing = new Map<string, number>();
  private timer: ReturnType<typeof setInterval>;

  constructor(
    private service: InboxService,
    private links: RelayLinks,
    private log: (m: string) => void,
    private holdMs = HOLD_MS,
  ) {
    this.timer = setInterval(() => this.sweep(), Math.max(holdMs / 4, 10));
    Deno.unrefTimer(this.timer);
  }

  /**
   * Passes on those of `onward` (arriving from `from`) whose next ship can
   * take them now. Returns the keys passed on (not to be acknowledged yet)
   * and a `stored` callback for the rest: the caller stores them and calls it
   * once they are committed (or failed), so later entries keep their order.
   */
  pass(
    onward: NewOutboxEntry[],
    from: string,
  ): { passed: Set<string>; stored: () => void } {
    const byShip = Map.groupBy(onward, (o) => o.ship);
    const passed = new Set<string>();
    const storing: string[] = [];
    for (const [ship, entries] of byShip) {
      if (
        !this.storing.get(ship) &&
        this.links.offer(ship, entries.map(linkEntryOf))
      ) {
        const held = this.held.get(ship) ?? new Map<string, Held>();
        this.held.set(ship, held);
        const at = Date.now();
        for (const entry of entries) {
          held.set(entryKey(entry), { entry, from, at });
          passed.add(entryKey(entry));
        }
      } else {
        this.storing.set(ship, (this.storing.get(ship) ?? 0) + 1);
        storing.push(ship);
      }
    }
    let done = false;
    return {
      passed,
      stored: () => {
        if (done) return;
        done = true;
        for (const ship of storing) this.unstoring(ship);
      },
    };
  }

  /**
   * `ship` acknowledged these keys. Those passed through go back to their
   * senders; the others were sent from the flagship's outbox and are
   * returned, to be marked delivered there.
   */
  acked(ship: string, keys: EntryKey[]): EntryKey[] {
    const held = this.held.get(ship);
    if (!held) return keys;
    const stored: EntryKey[] = [];
    const passedOn: { from: string; key: EntryKey }[] = [];
    for (const k of keys) {
      const h = held.get(entryKey(k));
      if (h) passedOn.push({ from: h.from, key: k });
      else stored.push(k);
      held.delete(entryKey(k));
    }
    this.ackSenders(passedOn);
    return stored;
  }

  /** `ship`'s link session ended: what it did not acknowledge is stored. */
  down(ship: string): void {
    const held = this.held.get(ship);
    if (!held?.size) return;
    this.held.delete(ship);
    void this.store(ship, [...held.values()]);
  }

  /** How many entries are passed on and not yet acknowledged. */
  get inFlight(): number {
    let n = 0;
    for (const h of this.held.values()) n += h.size;
    return n;
  }

  stop(): void {
    clearInterval(this.timer);
  }

  private sweep() {
    const old = Date.now() - this.holdMs;
    for (const [ship, held] of this.held) {
      const late = [...held.entries()].filter(([, h]) => h.at <= old);
      if (late.length === 0) continue;
      for (const [k] of late) held.delete(k);
      void this.store(ship, late.map(([, h]) => h));
    }
  }

  /** Stores held entries in the flagship's outbox, then acknowledges them. */
  private async store(ship: string, items: Held[]) {
    this.storing.set(ship, (this.storing.get(ship) ?? 0) + 1);
    try {
      await this.service.storeOnward(items.map((h) => h.entry));
    } catch (e) {
      // Unacknowledged, they are still queued at their senders: a new
      // session makes each sender send them again.
      this.log(`storing entries for ${ship}: ${(e as Error).message}`);
      for (const from of new Set(items.map((h) => h.from))) {
        this.links.reset(from);
      }
      return;
    } finally {
      this.unstoring(ship);
    }
    this.ackSenders(items.map((h) => ({
      from: h.from,
      key: { kind: h.entry.kind ?? "message", id: h.entry.id },
    })));
  }

  /** Acknowledges each key to the ship it came from, one ack per ship. */
  private ackSenders(items: { from: string; key: EntryKey }[]) {
    for (const [from, list] of Map.groupBy(items, (i) => i.from)) {
      this.links.ack(from, list.map((i) => i.key));
    }
  }

  private unstoring(ship: string) {
    const n = (this.storing.get(ship) ?? 1) - 1;
    if (n > 0) this.storing.set(ship, n);
    else this.storing.delete(ship);
  }
}
