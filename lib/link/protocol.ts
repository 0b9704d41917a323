import type { EntryKey, LinkEntry } from "../inbox/service.ts";

/**
 * Messages on a flagship ↔ ship link, one JSON object per line. The flagship
 * writes them to the ship's `link.attach` input; the ship answers with
 * `link` events. Everything is acknowledged only once stored, and every
 * entry is idempotent, so a link may drop and resend at any moment.
 */
export type LinkMsg =
  | { t: "hb"; at: string }
  | { t: "roster"; flagship: string; ships: string[] }
  | { t: "entries"; entries: LinkEntry[] }
  | { t: "ack"; keys: EntryKey[] };

export const HEARTBEAT_MS = 2_000;
/** A link silent this long is considered dead and reopened. */
export const DEAD_AFTER_MS = 8_000;
