/** The links between the flagship's daemon and its ships' daemons. */
import { none, op, opt, returns, shape, str } from "../rpc/op.ts";
import type { LinkStatus } from "./flagship.ts";

export const LINK_OPS = {
  /** The flagship's daemon attaches to a ship's: link messages both ways. */
  "link.attach": op(
    "daemon",
    shape({ flagship: opt(str) }),
    returns<null>(),
    { on: "ship", session: true },
  ),
  "link.status": op("daemon", none, returns<LinkStatus[]>()),
  /** The fleet registry changed: links follow it now. */
  "link.sync": op("daemon", none, returns<LinkStatus[]>()),
};
