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
import type { InboxStore } from "./store.ts";
import {
  type Envelope,
  type Message,
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

export const RECIPIENT_RE =
  /^(captain|commodore)@[a-z][a-z0-9]*(-[a-z0-9]+)*$|^commodore$/;

export class InboxService {
  readonly me: string;
  /** Ship names the flagship told us about (ships) or the registry (flagship). */
  roster: Set<string> | null = null;
  /** Called when entries for `ship` are queued, so a link can push them. */
  onQueued: (ship: string) => void = () => {};
  /** Called when a message is inserted, so the scheduler looks. */
  onInserted: () => void = () => {};
  private waiters = new Map<string, Set<() => void>>();

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

  validateRecipient(recipient: string): void {
    if (!RECIPIENT_RE.test(recipient)) {
      throw new UsageError(
        `invalid recipient "${recipient}": use captain@<ship>, commodore@<flagship> or commodore`,
      );
    }
    if (this.isMine(recipient)) return;
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
    id = crypto.randomUUID(),
  ): Promise<Envelope> {
    this.validateRecipient(recipient);
    const env: Envelope = {
      id,
      sender: this.me,
      recipient,
      command,
      created_at: new Date().toISOString(),
      timeout_s: timeoutS,
    };
    await this.store.recordSent(env);
    if (this.isMine(recipient)) {
      await this.store.insert(env);
      this.onInserted();
      return env;
    }
    const hop = this.nextHop(recipient);
    if (!hop) throw new UsageError(`unknown recipient "${recipient}"`);
    await this.store.enqueueOutbox({
      kind: "message",
      id,
      recipient,
      ship: hop,
      payload: env,
    });
    this.onQueued(hop);
    return env;
  }

  /** A message of ours finished: its result goes back to its sender. */
  async finished(m: Message): Promise<void> {
    const result = resultOf(m);
    if (!result) return;
    if (m.sender === this.me) {
      await this.store.recordResult(m.id, result);
      this.wake(m.id);
      return;
    }
    const hop = this.nextHop(m.sender);
    if (!hop) return; // a sender we cannot reach: the result stays here
    await this.store.enqueueOutbox({
      kind: "result",
      id: m.id,
      recipient: m.sender,
      ship: hop,
      payload: resultToWire(result),
    });
    this.onQueued(hop);
  }

  /**
   * Entries arriving on a link. Each is stored (idempotently: a redelivery
   * is not a second message) before it is acknowledged.
   */
  async accept(entries: LinkEntry[], fromShip?: string): Promise<EntryKey[]> {
    const acked: EntryKey[] = [];
    for (const e of entries) {
      if (this.isMine(e.recipient)) {
        if (e.kind === "message") {
          await this.store.insert(e.payload);
          this.onInserted();
        } else {
          await this.store.recordResult(e.id, resultFromWire(e.payload));
          this.wake(e.id);
        }
      } else if (this.isFlagship) {
        const hop = this.nextHop(e.recipient);
        if (hop) {
          await this.store.enqueueOutbox(
            { ...e, ship: hop } as Parameters<InboxStore["enqueueOutbox"]>[0],
          );
          this.onQueued(hop);
        } else if (e.kind === "message" && fromShip) {
          await this.bounce(
            e.payload,
            fromShip,
            `unknown recipient "${e.recipient}"`,
          );
        }
      }
      acked.push({ kind: e.kind, id: e.id });
    }
    return acked;
  }

  /** Answers an undeliverable message with an error result. */
  private async bounce(env: Envelope, ship: string, why: string) {
    const now = new Date().toISOString();
    await this.store.enqueueOutbox({
      kind: "result",
      id: env.id,
      recipient: env.sender,
      ship,
      payload: {
        id: env.id,
        status: "error",
        exit_code: null,
        stdout_b64: "",
        stderr_b64: "",
        stdout_truncated: false,
        stderr_truncated: false,
        error: why,
        started_at: null,
        finished_at: now,
      },
    });
    this.onQueued(ship);
  }

  async queuedFor(ship: string): Promise<LinkEntry[]> {
    return (await this.store.queuedOutbox(ship)).map((o) =>
      ({
        kind: o.kind,
        id: o.id,
        recipient: o.recipient,
        payload: o.payload,
      }) as LinkEntry
    );
  }

  async delivered(keys: EntryKey[]): Promise<void> {
    for (const k of keys) await this.store.markDelivered(k.id, k.kind);
  }

  /** Waits until the result of a sent message is known. */
  async waitResult(
    id: string,
    timeoutMs: number,
    signal?: AbortSignal,
  ): Promise<SentRecord> {
    const end = Date.now() + timeoutMs;
    while (true) {
      const rec = await this.store.getSent(id);
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

  private wake(id: string) {
    for (const f of this.waiters.get(id) ?? []) f();
  }
}
