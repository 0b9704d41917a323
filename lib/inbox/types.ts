/**
 * Records of the inbox (messages this machine runs), the outbox (messages and
 * results waiting to leave it) and the sent table (messages it sent, with
 * their results once they come back). Pure types and small helpers: importing
 * this module never loads DuckDB.
 */

/** unread → running → done | error; unread → pending (manual `read`) → done | error. */
export type MessageStatus = "unread" | "running" | "pending" | "done" | "error";

export const MESSAGE_STATUSES: readonly MessageStatus[] = [
  "unread",
  "running",
  "pending",
  "done",
  "error",
];

/**
 * The longest message timeout, in seconds: what a timer holds (2^31 - 1
 * ms); a longer one would fire at once.
 */
export const MAX_TIMEOUT_S = Math.floor((2 ** 31 - 1) / 1000);

/** How a message ends. */
export type FinalStatus = "done" | "error";

/** What a person or agent may set by hand (`inbox read|done|error`). */
export type ManualStatus = "pending" | "done" | "error";

/**
 * The part of a message that travels between machines. The sender makes the
 * id (a uuid), so a retried delivery of the same envelope is not a second
 * message.
 */
export interface Envelope {
  id: string;
  /** The sender's identity, e.g. `captain@alpha`. */
  sender: string;
  /** As addressed: `captain@<ship>`, `commodore@<flagship>` or `commodore`. */
  recipient: string;
  /** Shell text, run as `bash -c <command>` by the recipient's scheduler. */
  command: string;
  /** ISO 8601 (UTC), the sender's clock. */
  created_at: string;
  /** Per-message timeout in seconds; null means the scheduler's default. */
  timeout_s: number | null;
}

/** What `insert` takes: created_at defaults to now, timeout_s to null. */
export type NewMessage =
  & Omit<Envelope, "created_at" | "timeout_s">
  & Partial<Pick<Envelope, "created_at" | "timeout_s">>;

/** A message in this machine's inbox. */
export interface Message extends Envelope {
  status: MessageStatus;
  /** ISO 8601, this machine's clock, when the message arrived. */
  received_at: string;
  started_at: string | null;
  finished_at: string | null;
  exit_code: number | null;
  /** Raw bytes, at most the store's bound; null until the message finished. */
  stdout: Uint8Array | null;
  stderr: Uint8Array | null;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  error: string | null;
}

/** What the scheduler hands to `finish`; outputs of any size are accepted. */
export interface FinishInput {
  status: FinalStatus;
  /** null when the command never exited on its own (e.g. killed by a signal). */
  exit_code: number | null;
  stdout: Uint8Array | string;
  stderr: Uint8Array | string;
  error?: string | null;
}

/** The outcome of a message, as it travels back to the sender. */
export interface MessageResult {
  id: string;
  status: FinalStatus;
  exit_code: number | null;
  stdout: Uint8Array;
  stderr: Uint8Array;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  error: string | null;
  started_at: string | null;
  finished_at: string | null;
}

/** `MessageResult` in a JSON-safe form (outputs base64), for links and the outbox. */
export interface ResultWire {
  id: string;
  status: FinalStatus;
  exit_code: number | null;
  stdout_b64: string;
  stderr_b64: string;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  error: string | null;
  started_at: string | null;
  finished_at: string | null;
}

export type OutboxKind = "message" | "result";
export type OutboxState = "queued" | "delivered";

interface OutboxBase {
  /** The message id (for a result: the id of the message it answers). */
  id: string;
  /** Who the entry is for (an identity such as `captain@beta`). */
  recipient: string;
  /** The routing target: the ship (or flagship) it must be carried to. */
  ship: string;
  state: OutboxState;
  attempts: number;
  created_at: string;
  delivered_at: string | null;
}

/**
 * Something waiting to leave this machine. Entries are keyed by (kind, id): a
 * message and the result answering it share an id.
 */
export type OutboxEntry =
  | (OutboxBase & { kind: "message"; payload: Envelope })
  | (OutboxBase & { kind: "result"; payload: ResultWire });

/** What `enqueueOutbox` takes. */
export type NewOutboxEntry =
  | {
    kind?: "message";
    id: string;
    recipient: string;
    ship: string;
    payload: Envelope;
  }
  | {
    kind: "result";
    id: string;
    recipient: string;
    ship: string;
    payload: ResultWire;
  };

/** "sent" until the result comes back. */
export type SentStatus = "sent" | FinalStatus;

/** A message this machine sent, with its result once known. */
export interface SentRecord extends Envelope {
  status: SentStatus;
  exit_code: number | null;
  stdout: Uint8Array | null;
  stderr: Uint8Array | null;
  stdout_truncated: boolean;
  stderr_truncated: boolean;
  error: string | null;
  started_at: string | null;
  finished_at: string | null;
  /** When the result reached this machine. */
  result_at: string | null;
}

/** The result of a finished message, or null while it is not finished. */
export function resultOf(msg: Message): MessageResult | null {
  if (msg.status !== "done" && msg.status !== "error") return null;
  return {
    id: msg.id,
    status: msg.status,
    exit_code: msg.exit_code,
    stdout: msg.stdout ?? new Uint8Array(),
    stderr: msg.stderr ?? new Uint8Array(),
    stdout_truncated: msg.stdout_truncated,
    stderr_truncated: msg.stderr_truncated,
    error: msg.error,
    started_at: msg.started_at,
    finished_at: msg.finished_at,
  };
}

export function resultToWire(r: MessageResult): ResultWire {
  const { stdout, stderr, ...rest } = r;
  return {
    ...rest,
    stdout_b64: bytesToBase64(stdout),
    stderr_b64: bytesToBase64(stderr),
  };
}

export function resultFromWire(w: ResultWire): MessageResult {
  const { stdout_b64, stderr_b64, ...rest } = w;
  return {
    ...rest,
    stdout: base64ToBytes(stdout_b64),
    stderr: base64ToBytes(stderr_b64),
  };
}

interface WithOutputs {
  stdout: Uint8Array | null;
  stderr: Uint8Array | null;
}

/**
 * A record with its outputs as base64 (null stays null): JSON.stringify of a
 * Uint8Array gives {"0":..}, so use this for the daemon socket and `--json`.
 */
export type WireRecord<T extends WithOutputs> =
  & Omit<T, "stdout" | "stderr">
  & { stdout_b64: string | null; stderr_b64: string | null };

/** For a Message or SentRecord. */
export function recordToWire<T extends WithOutputs>(r: T): WireRecord<T> {
  const { stdout, stderr, ...rest } = r;
  return {
    ...rest,
    stdout_b64: stdout === null ? null : bytesToBase64(stdout),
    stderr_b64: stderr === null ? null : bytesToBase64(stderr),
  };
}

export function recordFromWire<T extends WithOutputs>(w: WireRecord<T>): T {
  const { stdout_b64, stderr_b64, ...rest } = w;
  return {
    ...rest,
    stdout: stdout_b64 === null ? null : base64ToBytes(stdout_b64),
    stderr: stderr_b64 === null ? null : base64ToBytes(stderr_b64),
  } as unknown as T;
}

export function bytesToBase64(bytes: Uint8Array): string {
  let bin = "";
  const chunk = 0x8000;
  for (let i = 0; i < bytes.length; i += chunk) {
    bin += String.fromCharCode(...bytes.subarray(i, i + chunk));
  }
  return btoa(bin);
}

export function base64ToBytes(b64: string): Uint8Array {
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}
