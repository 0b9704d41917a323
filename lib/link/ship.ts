/**
 * The ship's end of the flagship's link: the daemon's `link.attach`
 * operation. Input lines come from the flagship; answers go out as `link`
 * events. The newest attachment wins.
 */
import type { InboxService } from "../inbox/service.ts";
import { readLines } from "../lines.ts";
import type { RpcContext } from "../rpc/stream.ts";
import { Intake } from "./intake.ts";
import { OutboxPusher } from "./outbox_pusher.ts";
import type { LinkMsg } from "./protocol.ts";

export class ShipLinkEnd {
  private current:
    | { send(m: LinkMsg): void; id: number; pusher: OutboxPusher }
    | null = null;
  private seq = 0;
  lastHeartbeat: string | null = null;

  constructor(private service: InboxService, private log: (m: string) => void) {
    // Entries for anyone go to the flagship, which routes them.
    service.onQueued = (_ship, entries) => this.current?.pusher.offer(entries);
  }

  async attach(ctx: RpcContext): Promise<unknown> {
    const id = ++this.seq;
    const send = (msg: LinkMsg) => ctx.emit({ type: "link", msg });
    const pusher = new OutboxPusher(
      this.service,
      this.service.self.flagship,
      (entries) => send({ t: "entries", entries }),
    );
    this.current = { send, id, pusher };
    this.log("flagship attached");
    const stop = new AbortController();
    const intake = new Intake(
      (entries) => this.service.accept(entries),
      (keys) => send({ t: "ack", keys }),
      (e) => {
        this.log(`storing entries from the flagship: ${e.message}`);
        stop.abort();
      },
    );
    await pusher.start();
    try {
      for await (const line of readLines(ctx.input)) {
        if (this.current?.id !== id || stop.signal.aborted) break; // replaced or failed
        if (!line.trim()) continue;
        const msg = JSON.parse(line) as LinkMsg;
        switch (msg.t) {
          case "hb":
            this.lastHeartbeat = new Date().toISOString();
            send({ t: "hb", at: this.lastHeartbeat });
            break;
          case "roster":
            this.service.roster = new Set(msg.ships);
            break;
          case "entries":
            intake.add(msg.entries);
            break;
          case "ack":
            pusher.acked(msg.keys);
            break;
        }
      }
    } finally {
      if (this.current?.id === id) this.current = null;
      this.log("flagship detached");
    }
    return null;
  }
}
