import type { EntryKey, LinkEntry } from "../inbox/service.ts";

/**
 * The receiving end of a link session: entries are stored and acknowledged
 * in order, and whatever arrives while one batch is being stored goes into
 * the next one, so a burst costs a few transactions instead of one per line.
 */
export class Intake {
  private queue: LinkEntry[] = [];
  private draining = false;

  constructor(
    private accept: (entries: LinkEntry[]) => Promise<EntryKey[]>,
    private ack: (keys: EntryKey[]) => void,
    /** Storing failed: the session must end (the peer resends on the next). */
    private fail: (e: Error) => void,
  ) {}

  add(entries: LinkEntry[]): void {
    this.queue.push(...entries);
    if (!this.draining) void this.drain();
  }

  private async drain() {
    this.draining = true;
    try {
      while (this.queue.length > 0) {
        const batch = this.queue.splice(0, this.queue.length);
        const keys = await this.accept(batch);
        if (keys.length) this.ack(keys);
      }
    } catch (e) {
      this.queue = [];
      this.fail(e as Error);
    } finally {
      this.draining = false;
    }
  }
}
