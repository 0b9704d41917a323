/**
 * The voyage's operations. The flagship's daemon owns the queue and the
 * driver (lib/voyage/ops.ts); its per-call process does what needs the
 * provider or the ships (roles/commodore.ts); a ship's per-call process
 * serves the flagship's session (roles/captain.ts).
 */
import { UsageError } from "../errors.ts";
import {
  bool,
  data,
  none,
  num,
  op,
  opt,
  returns,
  shape,
  str,
  strList,
} from "../rpc/op.ts";
import type { AgentKind } from "./agents.ts";
import type { VoyageStatus } from "./ops.ts";
import type { PlanFiles } from "./plan.ts";
import type {
  NewTask,
  TaskEvent,
  TaskStatus,
  TaskWithRuns,
  Voyage,
} from "./queue.ts";
import type { SailResult } from "./sail.ts";

const TASK_STATUSES: readonly TaskStatus[] = [
  "pending",
  "running",
  "done",
  "failed",
];

const taskStatus = (v: unknown): TaskStatus | undefined => {
  if (v === undefined || v === null) return undefined;
  if (!TASK_STATUSES.includes(v as TaskStatus)) {
    throw new UsageError(
      `invalid status "${v}": one of ${TASK_STATUSES.join(", ")}`,
    );
  }
  return v as TaskStatus;
};

/** A voyage id, or absent: the only active voyage. */
const pick = shape({ id: opt(str) });

export const VOYAGE_OPS = {
  // The daemon's: the queue and the driver.
  "voyage.create": op(
    "daemon",
    shape({ voyage: data<Voyage>(), tasks: data<NewTask[]>(), ships: strList }),
    returns<{ id: string }>(),
    { on: "flagship", work: true },
  ),
  "voyage.list": op("daemon", none, returns<VoyageStatus[]>(), {
    on: "flagship",
  }),
  "voyage.status": op("daemon", pick, returns<VoyageStatus>(), {
    on: "flagship",
  }),
  "voyage.tasks": op(
    "daemon",
    shape({ id: opt(str), status: taskStatus }),
    returns<{ voyage: string; tasks: TaskWithRuns[] }>(),
    { on: "flagship" },
  ),
  "voyage.events": op("daemon", pick, returns<TaskEvent[]>(), {
    on: "flagship",
  }),
  "voyage.get": op("daemon", pick, returns<Voyage>(), { on: "flagship" }),
  /** The flagship destroyed these ships (or could not create them). */
  "voyage.ships_gone": op(
    "daemon",
    shape({ ships: strList, reason: opt(str) }),
    returns<{ voyages: string[] }>(),
    { on: "flagship" },
  ),
  "voyage.stop": op(
    "daemon",
    shape({ id: str }),
    returns<{ voyage: string; ships: string[] }>(),
    { on: "flagship" },
  ),

  // The flagship's per-call process: the provider, the ships.
  "voyage.sail": op(
    "call",
    shape({
      files: data<PlanFiles>(),
      ships: opt(num),
      repo: opt(str),
      agent: (v, k) => str(v, k) as AgentKind,
      agent_command: opt(str),
      model: opt(str),
    }),
    returns<SailResult>(),
    { on: "flagship", long: true },
  ),
  "voyage.sink": op(
    "call",
    shape({ id: str }),
    returns<{ voyage: string; destroyed: string[] }>(),
    { on: "flagship", long: true },
  ),
  /** Events: the log's lines, as stdout output. */
  "voyage.logs": op(
    "call",
    shape({ id: opt(str), ship: opt(str), follow: opt(bool), raw: opt(bool) }),
    returns<null>(),
    { on: "flagship", long: true },
  ),
  /** Events: a git bundle of the voyage's branch, as stdout output. */
  "voyage.bundle": op("call", pick, returns<{ id: string; branch: string }>(), {
    on: "flagship",
    long: true,
  }),

  /**
   * A ship's end of the flagship's session for a voyage: requests on the
   * input, one reply event each (lib/voyage/captain_protocol.ts).
   */
  "captain.session": op(
    "call",
    shape({ voyage_id: str }),
    returns<null>(),
    { on: "ship", session: true },
  ),
};
