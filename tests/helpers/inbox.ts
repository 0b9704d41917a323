import type { Envelope } from "../../lib/inbox/types.ts";
import type { Identity } from "../../lib/state/identity.ts";

/** A ship's identity in a fleet whose flagship is "flag". */
export const captain = (name: string) =>
  ({ role: "captain", name, flagship: "flag" }) as Identity;

/** The flagship "flag"'s identity. */
export const commodore = {
  role: "commodore",
  name: "flag",
  flagship: "flag",
} as Identity;

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
