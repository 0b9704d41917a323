import type { Envelope } from "../../lib/inbox/types.ts";

/** A message envelope whose command echoes its id. */
export function envelope(
  id: string,
  sender: string,
  recipient: string,
): Envelope {
  return {
    id,
    sender,
    recipient,
    command: `echo ${id}`,
    created_at: new Date().toISOString(),
    timeout_s: null,
  };
}
