/**
 * The flagship's links: one long-lived `link.attach` call per ship over the
 * provider's transport, reconnecting with backoff. Messages for a ship wait
 * in the flagship's outbox while its link is down and flow when it is back.
 */
import type { EntryKey, InboxService, LinkEntry } from "../inbox/service.ts";
import { readLines } from "../lines.ts";
import type { Provider } from "../providers/types.ts";
import { PROTOCOL_VERSION, type RpcEvent } from "../rpc/protocol.ts";
import type { ShipRecord } from "../state/fleet.ts";
import { remoteBin } from "../transport/run.ts";
import { Intake } from "./intake.ts";
import { OutboxPusher } from "./outbox_pusher.ts";
import { DEAD_AFTER_MS, HEARTBEAT_MS, type LinkMsg } from "./protocol.ts";
import { Relay } from "./relay.ts";

export type LinkState = "connecting" | "up" | "down";

export interface LinkStatus {
  ship: string;
  state: LinkState;
  last_heartbeat: string | null;
  since: string;
  reconnects: number;
}

class ShipLink {
  state: LinkState = "connecting";
  lastHeartbeat: string | null = null;
  since = new Date().toISOString();
  reconnects = 0;
  private stopped = false;
  private send: ((m: LinkMsg) => void) | null = null;
  private pusher: OutboxPusher | null = null;
  private kill: (() => void) | null = null;

  constructor(
    readonly ship: ShipRecord,
    private provider: Provider,
    private service: InboxService,
    private relay: Relay,
    private log: (m: string) => void,
  ) {
    void this.loop();
  }

  private setState(s: LinkState) {
    if (s !== this.state) {
      this.state = s;
      this.since = new Date().toISOString();
      this.log(`link ${this.ship.name}: ${s}`);
    }
  }

  /**
   * Entries for this ship go now if a session is open (true), else they wait
   * for the next one (false).
   */
  offer(entries: LinkEntry[]): boolean {
    this.pusher?.offer(entries);
    return this.pusher !== null;
  }

  /** Acknowledges entries this ship sent, if its session is open. */
  ack(keys: EntryKey[]): void {
    this.send?.({ t: "ack", keys });
  }

  /** Ends the current session (the loop opens a new one). */
  reset(): void {
    this.kill?.();
  }

  private async loop() {
    let backoff = 250;
    while (!this.stopped) {
      const opened = Date.now();
      await this.session().catch((e) =>
        this.log(`link ${this.ship.name}: ${e.message}`)
      );
      this.send = null;
      this.pusher = null;
      // What this session passed on unacknowledged is stored now.
      this.relay.down(this.ship.name);
      if (this.stopped) break;
      this.setState("down");
      this.reconnects++;
      if (Date.now() - opened > 10_000) backoff = 250;
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(backoff * 2, 5_000);
    }
  }

  private async session() {
    this.setState("connecting");
    const t = this.provider.transport(this.ship);
    const child = t.spawn(remoteBin("_rpc"), {
      stdin: "piped",
      stdout: "piped",
      stderr: "null",
    });
    this.kill = () => child.kill("SIGTERM");
    const writer = child.stdin.getWriter();
    const enc = new TextEncoder();
    let writing = Promise.resolve();
    const write = (obj: unknown) => {
      writing = writing.then(() =>
        writer.write(enc.encode(JSON.stringify(obj) + "\n"))
      )
        .catch(() => child.kill("SIGTERM"));
    };
    write({
      v: PROTOCOL_VERSION,
      op: "link.attach",
      args: { flagship: this.service.self.name },
    });
    this.send = (m) => write(m);
    const pusher = new OutboxPusher(
      this.service,
      this.ship.name,
      (entries) => write({ t: "entries", entries }),
    );
    this.pusher = pusher;
    write({
      t: "roster",
      flagship: this.service.self.name,
      ships: [...(this.service.roster ?? [])],
    });
    write({ t: "hb", at: new Date().toISOString() });
    const intake = new Intake(
      (entries) => this.service.accept(entries, this.ship.name),
      (keys) => write({ t: "ack", keys }),
      (e) => {
        this.log(`link ${this.ship.name}: storing entries: ${e.message}`);
        child.kill("SIGTERM");
      },
    );
    await pusher.start();

    let lastHeard = Date.now();
    const timer = setInterval(() => {
      if (Date.now() - lastHeard > DEAD_AFTER_MS) child.kill("SIGTERM");
      else write({ t: "hb", at: new Date().toISOString() });
    }, HEARTBEAT_MS);
    try {
      for await (const line of readLines(child.stdout)) {
        let ev: RpcEvent;
        try {
          ev = JSON.parse(line);
        } catch {
          continue;
        }
        if (ev.type === "error") throw new Error(ev.error.message);
        if (ev.type !== "link") continue;
        lastHeard = Date.now();
        const msg = ev.msg as LinkMsg;
        switch (msg.t) {
          case "hb":
            this.lastHeartbeat = new Date().toISOString();
            this.setState("up");
            break;
          case "entries":
            intake.add(msg.entries);
            break;
          case "ack":
            pusher.acked(
              msg.keys,
              this.relay.acked(this.ship.name, msg.keys),
            );
            break;
        }
      }
    } finally {
      clearInterval(timer);
      child.kill("SIGTERM");
      await writer.close().catch(() => {});
      await child.status;
    }
  }

  sendRoster(ships: string[]) {
    this.send?.({ t: "roster", flagship: this.service.self.name, ships });
  }

  stop() {
    this.stopped = true;
    this.kill?.();
  }

  status(): LinkStatus {
    return {
      ship: this.ship.name,
      state: this.state,
      last_heartbeat: this.lastHeartbeat,
      since: this.since,
      reconnects: this.reconnects,
    };
  }
}

export class LinkManager {
  private links = new Map<string, ShipLink>();
  readonly relay: Relay;

  constructor(
    private provider: Provider,
    private service: InboxService,
    private log: (m: string) => void,
  ) {
    service.onQueued = (ship, entries) => this.links.get(ship)?.offer(entries);
    this.relay = new Relay(service, {
      offer: (ship, entries) => this.links.get(ship)?.offer(entries) ?? false,
      ack: (ship, keys) => this.links.get(ship)?.ack(keys),
      reset: (ship) => this.links.get(ship)?.reset(),
    }, log);
    service.relay = this.relay;
  }

  /** Matches the links to the registry: new ships get one, gone ships lose theirs. */
  sync(ships: ShipRecord[]): void {
    const ready = ships.filter((s) => s.status !== "creating" && s.ssh_dest);
    const names = ready.map((s) => s.name);
    const changed = names.length !== this.links.size ||
      names.some((n) => !this.links.has(n));
    this.service.roster = new Set(ships.map((s) => s.name));
    for (const [name, link] of this.links) {
      if (!names.includes(name)) {
        link.stop();
        this.links.delete(name);
      }
    }
    for (const s of ready) {
      if (!this.links.has(s.name)) {
        this.links.set(
          s.name,
          new ShipLink(s, this.provider, this.service, this.relay, this.log),
        );
      }
    }
    if (changed) { for (const l of this.links.values()) l.sendRoster(names); }
  }

  status(): LinkStatus[] {
    return [...this.links.values()].map((l) => l.status());
  }

  stop(): void {
    this.service.relay = null;
    this.relay.stop();
    for (const l of this.links.values()) l.stop();
    this.links.clear();
  }
}
