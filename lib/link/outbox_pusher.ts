import type { EntryKey, InboxService, LinkEntry } from "../inbox/service.ts";

/**
 * Sends a machine's queued outbox entries for one peer over a link session:
 * each entry once per session (a new session resends whatever is still
 * unacknowledged), pushes serialized so each sender's order is kept.
 */
export class OutboxPusher {
  private inFlight = new Set<string>();
  private chain = Promise.resolve();

  constructor(
    private service: InboxService,
    private peer: string,
    private send: (entries: LinkEntry[]) => void,
  ) {}

  push(): Promise<void> {
    this.chain = this.chain.then(async () => {
      const entries = (await this.service.queuedFor(this.peer))
        .filter((e) => !this.inFlight.has(key(e)));
      if (entries.length === 0) return;
      for (const e of entries) this.inFlight.add(key(e));
      this.send(entries);
    }).catch(() => {});
    return this.chain;
  }

  async acked(keys: EntryKey[]): Promise<void> {
    await this.service.delivered(keys);
    for (const k of keys) this.inFlight.delete(key(k));
  }
}

const key = (e: EntryKey) => `${e.kind}:${e.id}`;
