/** The daemon's own operations (lib/daemon/daemon.ts serves them). */
import type { MessageStatus } from "../inbox/types.ts";
import { none, op, returns } from "../rpc/op.ts";

export interface DaemonStatus {
  pid: number;
  version: string;
  started_at: string;
  /** This machine's inbox address. */
  identity: string;
  /** Messages running now. */
  busy: number;
  paused: boolean;
  counts: Record<MessageStatus, number>;
  /** Entries waiting to travel (to the flagship, or through it). */
  queued: number;
  /** Entries the flagship passed on that the next ship has not stored yet. */
  relaying: number;
}

export interface PauseState {
  paused: boolean;
  running: number;
}

export const DAEMON_OPS = {
  "daemon.status": op("daemon", none, returns<DaemonStatus>()),
  "daemon.pause": op("daemon", none, returns<PauseState>()),
  "daemon.resume": op("daemon", none, returns<PauseState>()),
};
