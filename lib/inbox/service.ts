/**
 * The inbox as the daemon runs it: who this machine is, where a recipient
 * lives, what happens to a message sent, delivered or finished. The store
 * keeps every step durable; links carry entries between machines.
 *
 * Routing: only the flagship talks to ships. A ship's outgoing messages and
 * results go to the flagship, which keeps those for itself and forwards the
 * rest to the recipient's ship (store and forward).
 */
import { OhcError, UsageError } from "../errors.ts";
import type { Identity } from "../state/identity.ts";
import type { FinishArgs } from "./finishing.ts";
import type { InboxStore, InboxTables } from "./store.ts";
import {
  type Envelope,
  type Message,
  type MessageResult,
  type NewOutboxEntry,
  resultFromWire,
  resultOf,
  resultToWire,
  type ResultWire,
  type SentRecord,
} from "./types.ts";

/** What travels on a link: a message, or the result of one. */
export type LinkEntry =
  | { kind: "message"; id: string; recipient: string; payload: Envelope }
  | { kind: "result"; id: string; recipient: string; payload: ResultWire };

export type EntryKey = { kind: "message" | "result"; id: string };

/** An outbox entry as it travels: without the ship it is carried to. */
export function linkEntryOf(o: NewOutboxEntry): LinkEntry {
  return {
    kind: o.kind ?? "message",
    id: o.id,
    recipient: o.recipient,
    payload: o.payload,
  } as LinkEntry;
}

/** An entry's identity on a link: kind and id. */
export const entryKey = (e: { kind?: string; id: string }): string =>
  `${e.kind ?? "message"}:${e.id}`;

/** What accept needs of the flagship's relay (link/relay.ts). */
export interface Passer {
  /**
   * Passes on those of `onward` whose next ship can take them now: their
   * keys, and `stored`, to call once the rest are stored (or failed).
   */
  pass(
    onward: NewOutboxEntry[],
    from: string,
  ): { passed: Set<string>; stored: () => void };
}

/** How long acknowledgements gather before they are marked (see delivered). */
export const DELIVERED_DELAY_MS = 200;

export const RECIPIENT_RE =
  /^(captain|commodore)@[a-z][a-z0-9]*(-[a-z0-9]+)*$|^commodore$/;

export class InboxService {
  readonly me: string;
  /** Ship names the flagship told us about (ships) or the registry (flagship). */
  roster: Set<string> | null = null;
  /** Called with entries just queued for `ship`, so its link can send them. */
  onQueued: (ship: string, entries: LinkEntry[]) => void = () => {};
  /** The flagship's cut-through relay (link/relay.ts), once its links exist. */
  relay: Passer | null = null;
  /** Called with messages just inserted (unread), for the scheduler. */
  onInserted: (msgs: Message[]) => void = () => {};
  private waiters = new Map<string, Set<() => void>>();
  #finishing: {
    m: Message;
    result: FinishArgs;
    hop: string | null;
    resolve: () => void;
    reject: (e: unknown) => void;
  }[] = [];
  #draining = false;
  private acked: EntryKey[] = [];
  private ackTimer: ReturnType<typeof setTimeout> | undefined;

  constructor(
    readonly store: InboxStore,
    readonly self: Identity,
  ) {
    this.me = `${self.role}@${self.name}`;
  }

  get isFlagship(): boolean {
    return this.self.role === "commodore";
  }

  isMine(recipient: string): boolean {
    return recipient === this.me ||
      (recipient === "commodore" && this.isFlagship);
  }

  /** The machine an entry for `recipient` must be carried to next. */
  private nextHop(recipient: string): string | null {
    if (!this.isFlagship) return this.self.flagship;
    if (recipient === "commodore" || recipient.startsWith("commodore@")) {
      return null; // commodore@<other flagship> is not ours to reach
    }
    const ship = recipient.slice("captain@".length);
    return this.roster?.has(ship) ? ship : null;
  }

  /**
   * Bare `commodore` is the flagship from anywhere in the fleet: on a ship
   * it means commodore@<flagship>, the address the flagship routes.
   */
  canonical(recipient: string): string {
    return recipient === "commodore"
      ? `commodore@${this.self.flagship}`
      : recipient;
  }

  validateRecipient(recipient: string): void {
    if (!RECIPIENT_RE.test(recipient)) {
      throw new UsageError(
        `invalid recipient "${recipient}": use captain@<ship>, commodore@<flagship> or commodore`,
      );
    }
    if (this.isMine(recipient)) return;
    recipient = this.canonical(recipient);
    if (recipient.startsWith("commodore@")) {
      if (recipient !== `commodore@${this.self.flagship}`) {
        throw new UsageError(
          `unknown recipient "${recipient}": the flagship is commodore@${this.self.flagship}`,
        );
      }
      return;
    }
    const ship = recipient.slice("captain@".length);
    if (this.roster && !this.roster.has(ship)) {
      throw new UsageError(
        `unknown recipient "${recipient}": no ship named "${ship}"`,
      );
    }
  }

  async send(
    recipient: string,
    command: string,
    timeoutS: number | null,
    givenId?: string,
  ): Promise<Envelope> {
    const id = givenId ?? crypto.randomUUID();
    this.validateRecipient(recipient);
    recipient = this.canonical(recipient);
    const env: Envelope = {
      id,
      sender: this.me,
      recipient,
      command,
      created_at: new Date().toISOString(),
      timeout_s: timeoutS,
    };
    const mine = this.isMine(recipient);
    const hop = mine ? null : this.nextHop(recipient);
    if (!mine && !hop) throw new UsageError(`unknown recipient "${recipient}"`);
    const fresh = !givenId;
    if (hop) {
      // The sent row is the outbox entry too: one insert.
      await this.store.sent.record(env, { fresh, hop });
      this.onQueued(hop, [{ kind: "message", id, recipient, payload: env }]);
      return env;
    }
    const inserted = await this.store.batch(async (tx) => {
      await tx.sent.record(env, { fresh });
      return await tx.inbox.insertMany([env]);
    });
    this.onInserted(this.unreadOf([env], inserted));
    return env;
  }

  /** The inserted ones of `envs`, as the scheduler sees them. */
  private unreadOf(envs: Envelope[], inserted: string[]): Message[] {
    const ids = new Set(inserted);
    const at = new Date().toISOString();
    return envs.filter((e) => ids.has(e.id)).map((e) => ({
      ...e,
      status: "unread",
      received_at: at,
      started_at: null,
      finished_at: null,
      exit_code: null,
      stdout: null,
      stderr: null,
      stdout_truncated: false,
      stderr_truncated: false,
      error: null,
    }));
  }

  /**
   * A message of ours was finished by hand (`inbox done/error`): its result
   * goes back to its sender.
   */
  async finished(m: Message): Promise<void> {
    const result = resultOf(m);
    if (!result) return;
    if (m.sender === this.me) {
      await this.store.sent.recordResult(m.id, result);
      this.wake(m.id);
      return;
    }
    const hop = this.nextHop(m.sender);
    if (!hop) return; // a sender we cannot reach: the result stays here
    if (await this.store.inbox.queueResult(m.id, hop)) {
      this.onQueued(hop, [resultEntry(m.sender, result)]);
    }
  }

  /**
   * The scheduler's step: stores the outcome of `m`, queues its result and
   * claims `next` if still unread, in one statement when the result leaves
   * this machine. Without a `next` (the start journal handed the slot over
   * already), outcomes that arrive while one is stored share the next
   * statement (#drainFinishing).
   */
  async complete(
    m: Message,
    result: FinishArgs,
    next: Message | null,
  ): Promise<Message | null> {
    const local = m.sender === this.me;
    const hop = local ? null : this.nextHop(m.sender);
    if (!next && !local) {
      await new Promise<void>((resolve, reject) => {
        this.#finishing.push({ m, result, hop, resolve, reject });
        if (!this.#draining) void this.#drainFinishing();
      });
      return null;
    }
    const done = await this.store.batch(async (tx) => {
      const r = await tx.inbox.complete(m.id, result, {
        running: m,
        resultHop: hop,
        next,
      });
      const res = r.finished && resultOf(r.finished);
      if (res && local) await tx.sent.recordResult(m.id, res);
      return { ...r, result: res };
    }, { writesOnce: !local });
    if (done.result) {
      if (local) this.wake(m.id);
      else if (hop) this.onQueued(hop, [resultEntry(m.sender, done.result)]);
    }
    return done.claimed;
  }

  /**
   * Messages finished without a claim (the scheduler's start journal handed
   * their slot over already) are stored many to one statement: those that
   * finish while one is being stored go into the next.
   */
  async #drainFinishing() {
    this.#draining = true;
    try {
      while (this.#finishing.length > 0) {
        const batch = this.#finishing.splice(0, this.#finishing.length);
        let done: Message[];
        try {
          done = await this.store.inbox.completeMany(
            batch.map((f) => ({
              running: f.m,
              result: f.result,
              resultHop: f.hop,
            })),
          );
        } catch (e) {
          for (const f of batch) f.reject(e);
          continue;
        }
        const hops = new Map(batch.map((f) => [f.m.id, f.hop]));
        for (const m of done) {
          const hop = hops.get(m.id);
          if (hop) this.onQueued(hop, [resultEntry(m.sender, resultOf(m)!)]);
        }
        for (const f of batch) f.resolve();
      }
    } finally {
      this.#draining = false;
    }
  }

  /**
   * Entries arriving on a link, all stored in one transaction (idempotently:
   * a redelivery is not a second message) before they are acknowledged. On
   * the flagship, entries for a ship whose link is up are passed on unstored
   * (`relay`); their keys are left out of the answer, and acknowledged once
   * that ship has stored them.
   */
  async accept(entries: LinkEntry[], fromShip?: string): Promise<EntryKey[]> {
    const mine: Envelope[] = [];
    const results: LinkEntry[] = [];
    const onward: NewOutboxEntry[] = [];
    const bounced: NewOutboxEntry[] = [];
    for (const e of entries) {
      if (this.isMine(e.recipient)) {
        if (e.kind === "message") mine.push(e.payload);
        else results.push(e);
        continue;
      }
      if (!this.isFlagship) continue;
      const hop = this.nextHop(e.recipient);
      if (hop) onward.push({ ...e, ship: hop } as NewOutboxEntry);
      else if (e.kind === "message" && fromShip) {
        bounced.push({ ...bounce(e.payload), ship: fromShip });
      }
    }
    const relayed = fromShip && this.relay && onward.length
      ? this.relay.pass(onward, fromShip)
      : { passed: new Set<string>(), stored: () => {} };
    const toStore = [
      ...onward.filter((o) => !relayed.passed.has(entryKey(o))),
      ...bounced,
    ];
    const after = new After();
    try {
      await this.store.batch(async (tx) => {
        after.reset();
        const inserted = await tx.inbox.insertMany(mine);
        after.inserted = this.unreadOf(mine, inserted);
        for (const r of results) {
          if (r.kind !== "result") continue;
          await tx.sent.recordResult(r.id, resultFromWire(r.payload));
          after.woken.push(r.id);
        }
        await this.#enqueueOnward(tx, toStore, after);
      }, {
        writesOnce: Number(mine.length > 0) + results.length +
            Number(toStore.length > 0) <= 1,
      });
    } finally {
      relayed.stored();
    }
    after.run(this);
    return entries.filter((e) => !relayed.passed.has(entryKey(e))).map((
      e,
    ) => ({ kind: e.kind, id: e.id }));
  }

  /** Stores entries on their way to other ships (the relay's fallback). */
  async storeOnward(entries: NewOutboxEntry[]): Promise<void> {
    const after = new After();
    await this.store.batch((tx) =>
      this.#enqueueOnward(tx, entries, after.reset())
    );
    after.run(this);
  }

  async #enqueueOnward(
    tx: InboxTables,
    entries: NewOutboxEntry[],
    after: After,
  ) {
    // Those already queued are on their way already.
    for (const o of await tx.outbox.enqueueMany(entries)) {
      after.queue(o.ship, linkEntryOf(o));
    }
  }

  /** What is queued for `ship`, oldest first: a new link session sends it. */
  async queuedFor(ship: string): Promise<LinkEntry[]> {
    await this.flushDelivered();
    return (await this.store.outbox.queued(ship)).map(linkEntryOf);
  }

  /**
   * The peer has stored these entries. Marking them delivered waits up to
   * DELIVERED_DELAY_MS so that many acknowledgements share one statement
   * and one commit: should the daemon die first, the entries are sent again
   * on the next link session and the peer, which keys them by id, keeps
   * one of each.
   */
  delivered(keys: EntryKey[]): void {
    this.acked.push(...keys);
    this.ackTimer ??= setTimeout(() => {
      void this.flushDelivered().catch(() => {/* retried with the next */});
    }, DELIVERED_DELAY_MS);
  }

  /** Marks every acknowledged entry delivered now. */
  async flushDelivered(): Promise<void> {
    clearTimeout(this.ackTimer);
    this.ackTimer = undefined;
    const keys = this.acked.splice(0, this.acked.length);
    if (keys.length === 0) return;
    try {
      await this.store.outbox.markDelivered(keys);
    } catch (e) {
      this.acked.unshift(...keys);
      throw e;
    }
  }

  /** Waits until the result of a sent message is known. */
  async waitResult(
    id: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<SentRecord> {
    const end = Date.now() + timeoutMs;
    while (true) {
      const rec = await this.store.sent.get(id);
      if (!rec) throw new UsageError(`no message ${id} was sent from here`);
      if (rec.status !== "sent") return rec;
      const left = end - Date.now();
      if (left <= 0 || signal?.aborted) {
        throw new OhcError(
          "timeout",
          `no result for ${id} yet`,
          `it may still run; check later with: ohcommodore inbox sent ${id}`,
        );
      }
      await new Promise<void>((resolve) => {
        const set = this.waiters.get(id) ?? new Set();
        this.waiters.set(id, set);
        const done = () => {
          clearTimeout(t);
          set.delete(done);
          resolve();
        };
        const t = setTimeout(done, Math.min(left, 1000));
        set.add(done);
        signal?.addEventListener("abort", done, { once: true });
      });
    }
  }

  /** Wakes waitResult calls for a message whose result is in. */
  wake(id: string) {
    for (const f of this.waiters.get(id) ?? []) f();
  }
}

/**
 * What a transaction leaves to do once it has committed (never inside it:
 * a rolled-back batch runs again). `reset` starts over for a rerun.
 */
class After {
  inserted: Message[] = [];
  woken: string[] = [];
  queued = new Map<string, LinkEntry[]>();

  reset(): this {
    this.inserted = [];
    this.woken = [];
    this.queued.clear();
    return this;
  }

  queue(ship: string, e: LinkEntry) {
    const list = this.queued.get(ship) ?? [];
    list.push(e);
    this.queued.set(ship, list);
  }

  run(s: InboxService) {
    if (this.inserted.length) s.onInserted(this.inserted);
    for (const id of this.woken) s.wake(id);
    for (const [ship, entries] of this.queued) s.onQueued(ship, entries);
  }
}

/** The link entry carrying a result back to `sender`. */
function resultEntry(sender: string, result: MessageResult): LinkEntry {
  return {
    kind: "result",
    id: result.id,
    recipient: sender,
    payload: resultToWire(result),
  };
}

/** The error result that answers a message no one can be reached for. */
function bounce(env: Envelope): LinkEntry {
  return {
    kind: "result",
    id: env.id,
    recipient: env.sender,
    payload: {
      id: env.id,
      status: "error",
      exit_code: null,
      stdout_b64: "",
      stderr_b64: "",
      stdout_truncated: false,
      stderr_truncated: false,
      error: `unknown recipient "${env.recipient}"`,
      started_at: null,
      finished_at: new Date().toISOString(),
    },
  };
}
