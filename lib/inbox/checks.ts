/**
 * What the inbox tables refuse, checked before any statement runs: a
 * malformed message, a bad limit, a transition a message's status forbids.
 */
import { OhcError } from "../errors.ts";
import type { Envelope, MessageStatus, NewMessage } from "./types.ts";

export function checkLimit(limit: number | undefined): void {
  if (limit !== undefined && (!Number.isSafeInteger(limit) || limit < 0)) {
    throw new OhcError(
      "invalid_limit",
      `limit must be a non-negative integer, got ${limit}`,
    );
  }
}

/** The message as stored: every field checked, created_at in ISO UTC. */
export function validateEnvelope(msg: NewMessage, now: string): Envelope {
  const bad = (what: string) =>
    new OhcError("invalid_message", `message ${what}`);
  if (typeof msg !== "object" || msg === null) throw bad("must be an object");
  for (const f of ["id", "sender", "recipient"] as const) {
    if (typeof msg[f] !== "string" || msg[f] === "") {
      throw bad(`needs a non-empty ${f}`);
    }
  }
  if (msg.id.length > 200) throw bad("id is longer than 200 characters");
  if (typeof msg.command !== "string") throw bad("command must be a string");
  let created = now;
  if (msg.created_at !== undefined && msg.created_at !== null) {
    const t = new Date(msg.created_at);
    if (typeof msg.created_at !== "string" || isNaN(t.getTime())) {
      throw bad(`created_at is not a timestamp: ${msg.created_at}`);
    }
    created = t.toISOString();
  }
  const timeout = msg.timeout_s ?? null;
  if (
    timeout !== null &&
    (typeof timeout !== "number" || !Number.isFinite(timeout) || timeout <= 0)
  ) {
    throw bad(`timeout_s must be a positive number, got ${timeout}`);
  }
  return {
    id: msg.id,
    sender: msg.sender,
    recipient: msg.recipient,
    command: msg.command,
    created_at: created,
    timeout_s: timeout,
  };
}

/** The refusal of a transition from `current` (manual: as the CLI says it). */
export function illegalTransition(
  id: string,
  target: MessageStatus,
  current: MessageStatus,
  how: "finish" | "manual",
): OhcError {
  if (how === "finish") {
    return new OhcError(
      "illegal_transition",
      `message ${id} cannot finish as ${target}: it is ${current}, not running`,
    );
  }
  const verb = target === "pending" ? "read (claim)" : `mark ${target}`;
  const hint = current === "running"
    ? "the scheduler is running it; wait for it to finish"
    : current === "pending"
    ? "it is already claimed for manual handling; mark it done or error"
    : target === "pending"
    ? "only an unread message can be claimed"
    : "it has already finished";
  return new OhcError(
    "illegal_transition",
    `cannot ${verb} message ${id}: it is ${current}`,
    hint,
  );
}
