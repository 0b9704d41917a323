/**
 * Rows of the inbox tables as DuckDB returns them, and back to the types the
 * rest of the program uses. Outputs are bounded here, once, for every writer.
 */
import { OhcError } from "../errors.ts";
import {
  bytesOrNull,
  num,
  numOrNull,
  type Row,
  str,
  strOrNull,
} from "../db/values.ts";
import {
  type Message,
  type MessageStatus,
  type OutboxEntry,
  type OutboxKind,
  resultOf,
  resultToWire,
  type SentRecord,
  type SentStatus,
} from "./types.ts";

export const MSG_COLS =
  "seq, id, sender, recipient, command, status, created_at, received_at, " +
  "started_at, finished_at, exit_code, stdout, stderr, stdout_truncated, " +
  "stderr_truncated, error, timeout_s";
export const MSG_COLS_NO_OUTPUT = MSG_COLS.replace(
  "stdout, stderr,",
  "NULL::BLOB AS stdout, NULL::BLOB AS stderr,",
);
export const OUTBOX_COLS =
  "kind, id, recipient, ship, payload, state, attempts, created_at, delivered_at";
export const SENT_COLS =
  "id, sender, recipient, command, created_at, timeout_s, status, exit_code, " +
  "stdout, stderr, stdout_truncated, stderr_truncated, error, started_at, " +
  "finished_at, result_at";

const encoder = new TextEncoder();

/** At most max bytes of out; strings are cut at a character boundary. */
export function bound(
  out: Uint8Array | string,
  max: number,
): { bytes: Uint8Array; truncated: boolean } {
  if (typeof out === "string") {
    // A UTF-8 encoding is at most 3 bytes per UTF-16 unit.
    if (out.length * 3 <= max) {
      return { bytes: encoder.encode(out), truncated: false };
    }
    const buf = new Uint8Array(max);
    const { read, written } = encoder.encodeInto(out, buf);
    return { bytes: buf.slice(0, written), truncated: read < out.length };
  }
  if (!(out instanceof Uint8Array)) {
    throw new OhcError("invalid_output", "output must be bytes or a string");
  }
  return out.length > max
    ? { bytes: out.slice(0, max), truncated: true }
    : { bytes: out, truncated: false };
}

/** The columns `inbox` and `sent` share: the envelope and the outcome. */
function envelopeAndOutcome(r: Row) {
  return {
    id: str(r.id),
    sender: str(r.sender),
    recipient: str(r.recipient),
    command: str(r.command),
    created_at: str(r.created_at),
    timeout_s: numOrNull(r.timeout_s),
    started_at: strOrNull(r.started_at),
    finished_at: strOrNull(r.finished_at),
    exit_code: numOrNull(r.exit_code),
    stdout: bytesOrNull(r.stdout),
    stderr: bytesOrNull(r.stderr),
    stdout_truncated: r.stdout_truncated === true,
    stderr_truncated: r.stderr_truncated === true,
    error: strOrNull(r.error),
  };
}

export function toMessage(r: Row): Message {
  return {
    ...envelopeAndOutcome(r),
    status: r.status as MessageStatus,
    received_at: str(r.received_at),
  };
}

export function toOutbox(r: Row): OutboxEntry {
  return {
    kind: r.kind as OutboxKind,
    id: str(r.id),
    recipient: str(r.recipient),
    ship: str(r.ship),
    payload: JSON.parse(str(r.payload)),
    state: r.state as OutboxEntry["state"],
    attempts: num(r.attempts),
    created_at: str(r.created_at),
    delivered_at: strOrNull(r.delivered_at),
  } as OutboxEntry;
}

export function toSent(r: Row): SentRecord {
  return {
    ...envelopeAndOutcome(r),
    status: r.status as SentStatus,
    result_at: strOrNull(r.result_at),
  };
}

/** A sent row queued for its hop, as the outbox entry it stands for. */
export function sentAsOutbox(r: Row): OutboxEntry {
  const { id, sender, recipient, command, created_at, timeout_s } = toSent(r);
  return {
    kind: "message",
    id,
    recipient,
    ship: str(r.hop),
    payload: { id, sender, recipient, command, created_at, timeout_s },
    state: "queued",
    attempts: 0,
    created_at,
    delivered_at: null,
  };
}

/** A finished inbox row whose result is queued, as that outbox entry. */
export function resultAsOutbox(r: Row): OutboxEntry {
  const m = toMessage(r);
  return {
    kind: "result",
    id: m.id,
    recipient: m.sender,
    ship: str(r.result_hop),
    payload: resultToWire(resultOf(m)!),
    state: "queued",
    attempts: 0,
    created_at: m.finished_at ?? m.received_at,
    delivered_at: null,
  };
}
