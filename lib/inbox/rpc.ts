/** The inbox's operations (the daemon serves them: it owns the database). */
import { UsageError } from "../errors.ts";
import { none, num, op, opt, returns, shape, str } from "../rpc/op.ts";
import {
  type Envelope,
  MAX_TIMEOUT_S,
  type Message,
  MESSAGE_STATUSES,
  type MessageStatus,
  type OutboxKind,
  type SentRecord,
  type WireRecord,
} from "./types.ts";

/** What `inbox.list` shows of an entry waiting to leave this machine. */
export interface QueuedView {
  id: string;
  kind: OutboxKind;
  recipient: string;
  ship: string;
  attempts: number;
  created_at: string;
  command: string | null;
}

const timeout = (v: unknown, _key: string): number | undefined => {
  if (v === undefined || v === null) return undefined;
  if (typeof v !== "number" || !(v > 0) || v > MAX_TIMEOUT_S) {
    throw new UsageError(
      `--timeout must be a positive number of seconds, at most ${MAX_TIMEOUT_S}`,
    );
  }
  return v;
};

const status = (v: unknown): MessageStatus | undefined => {
  if (v === undefined || v === null) return undefined;
  if (!MESSAGE_STATUSES.includes(v as MessageStatus)) {
    throw new UsageError(
      `invalid status "${v}": one of ${MESSAGE_STATUSES.join(", ")}`,
    );
  }
  return v as MessageStatus;
};

const manual = (v: unknown, key: string): "pending" | "done" | "error" => {
  const s = str(v, key);
  if (s !== "pending" && s !== "done" && s !== "error") {
    throw new UsageError(`invalid status "${s}": one of pending, done, error`);
  }
  return s;
};

export const INBOX_OPS = {
  "inbox.identity": op("daemon", none, returns<string>()),
  "inbox.send": op(
    "daemon",
    shape({ recipient: str, command: str, timeout_s: timeout }),
    returns<Envelope>(),
    { work: true },
  ),
  "inbox.wait": op(
    "daemon",
    shape({ id: str, timeout_ms: opt(num) }),
    returns<WireRecord<SentRecord>>(),
  ),
  "inbox.list": op(
    "daemon",
    shape({ status, limit: opt(num) }),
    returns<{ messages: WireRecord<Message>[]; queued: QueuedView[] }>(),
  ),
  "inbox.show": op(
    "daemon",
    shape({ id: str }),
    returns<
      | { kind: "inbox"; record: WireRecord<Message> }
      | { kind: "sent"; record: WireRecord<SentRecord> }
    >(),
  ),
  "inbox.set": op(
    "daemon",
    shape({ id: str, status: manual, error: opt(str) }),
    returns<WireRecord<Message> | null>(),
  ),
  "inbox.delete": op(
    "daemon",
    shape({ id: str }),
    returns<{ deleted: string }>(),
  ),
};
