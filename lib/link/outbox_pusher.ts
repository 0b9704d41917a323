import {
  type EntryKey,
  entryKey as key,
  type InboxService,
  type LinkEntry,
} from "../inbox/service.ts";

/**
 * Sends a machine's outbox entries for one peer over one link session. The
 * session starts with whatever is queued in the database (what waited while
 * the link was down, and what the last session sent but saw no ack for);
 * after that, entries are handed over as they are committed (`offer`), so a
 * busy link never reads the queue again. Each entry goes out once per
 * session, in commit order, so each sender's order is kept; entries offered
 * in the same turn of the event loop travel as one batch.
 */
export class OutboxPusher {
  private sent = new Set<string>();
  private loaded = false;
  private outgoing: LinkEntry[] = [];
  private flushing = false;

  constructor(
    private service: InboxService,
    private peer: string,
    private send: (entries: LinkEntry[]) => void,
  ) {}

  /** Sends what is queued; entries offered meanwhile follow it. */
  async start(): Promise<void> {
    const queued = await this.service.queuedFor(this.peer);
    this.outgoing = [...queued, ...this.outgoing];
    this.loaded = true;
    this.flush();
  }

  /** Entries just committed to the outbox for this peer. */
  offer(entries: LinkEntry[]): void {
    this.outgoing.push(...entries);
    if (this.loaded && !this.flushing) {
      this.flushing = true;
      setTimeout(() => this.flush(), 0);
    }
  }

  private flush() {
    this.flushing = false;
    const batch: LinkEntry[] = [];
    for (const e of this.outgoing) {
      if (this.sent.has(key(e))) continue;
      this.sent.add(key(e));
      batch.push(e);
    }
    this.outgoing = [];
    if (batch.length) this.send(batch);
  }

  /**
   * The peer stored these; `fromOutbox` are those this machine's outbox
   * holds (on the flagship, entries the relay passed through are not there).
   */
  acked(keys: EntryKey[], fromOutbox: EntryKey[] = keys): void {
    if (fromOutbox.length) this.service.delivered(fromOutbox);
    for (const k of keys) this.sent.delete(key(k));
  }
}
