import type { EntryKey, InboxService, LinkEntry } from "../inbox/service.ts";

/**
 * Sends a machine's queued outbox entries for one peer over a link session:
 * each entry once per session (a new session resends whatever is still
 * unacknowledged), pushes serialized so each sender's order is kept.
 */
export class OutboxPusher {
  private inFlight = new Set<string>();
  private chain = Promise.resolve();
  /** A push that has not started reading the queue yet. */
  private pending: Promise<void> | null = null;

  constructor(
    private service: InboxService,
    private peer: string,
    private send: (entries: LinkEntry[]) => void,
  ) {}

  /**
   * Sends what is queued and not yet sent. Calls that come while a push
   * runs are folded into one more pass: a burst of N entries costs two reads
   * of the queue, not N.
   */
  push(): Promise<void> {
    if (this.pending) return this.pending;
    this.pending = this.chain.then(async () => {
      this.pending = null;
      const queued = await this.service.queuedFor(this.peer);
      // Forget keys that are no longer queued (delivered). An ack alone does
      // not remove a key: this snapshot may predate it, and resending what
      // was just acknowledged would make needless duplicates.
      const still = new Set(queued.map(key));
      for (const k of this.inFlight) if (!still.has(k)) this.inFlight.delete(k);
      const entries = queued.filter((e) => !this.inFlight.has(key(e)));
      if (entries.length === 0) return;
      for (const e of entries) this.inFlight.add(key(e));
      this.send(entries);
    }).catch(() => {});
    this.chain = this.pending;
    return this.pending;
  }

  async acked(keys: EntryKey[]): Promise<void> {
    await this.service.delivered(keys);
  }
}

const key = (e: EntryKey) => `${e.kind}:${e.id}`;
