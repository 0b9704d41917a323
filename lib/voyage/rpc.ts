/**
 * The voyage's operations. The flagship's daemon owns the queue and the
 * driver (flagship/daemon_ops.ts); its per-call process does what needs
 * the provider or the ships (flagship/call_ops.ts); a ship's per-call
 * process serves the flagship's session (ship/session.ts).
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
import type { AgentKind } from "./ship/agents/kinds.ts";
import type { PlanFiles } from "./plan/plan.ts";
import type {
  NewTask,
  NewVoyage,
  Reopened,
  TaskEvent,
  TaskStatus,
  TaskWithRuns,
  Voyage,
} from "./flagship/queue.ts";
import type { SailResult } from "./flagship/sail.ts";

export interface VoyageStatus {
  voyage: Voyage;
  /** Why it failed before its tasks ran (a ship without the agent), else null. */
  reason: string | null;
  counts: Record<TaskStatus, number>;
  ships: {
    ship: string;
    state: string;
    current_task: string | null;
    task_started_at: string | null;
    last_heartbeat: string | null;
    stale: boolean;
  }[];
}

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
    shape({
      voyage: data<NewVoyage>(),
      tasks: data<NewTask[]>(),
      ships: strList,
    }),
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
  /** Sunk, whatever its state; the whole id only (it destroys). */
  "voyage.stop": op(
    "daemon",
    shape({ id: str }),
    returns<{ voyage: string; ships: string[] }>(),
    { on: "flagship" },
  ),
  /** Its first ship is up: 'planning' becomes 'running', its loops start. */
  "voyage.launch": op(
    "daemon",
    shape({ id: str }),
    returns<{ voyage: string; launched: boolean }>(),
    { on: "flagship", work: true },
  ),
  /** It cannot sail (no ship could be created): 'failed', with the reason. */
  "voyage.fail": op(
    "daemon",
    shape({ id: str, reason: str }),
    returns<{ voyage: string; failed: boolean }>(),
    { on: "flagship" },
  ),
  /** Forgets a voyage: its rows and its folder on the flagship. */
  "voyage.purge": op(
    "daemon",
    shape({ id: str }),
    returns<{ voyage: string }>(),
    { on: "flagship" },
  ),
  /** Failed tasks back in the queue (these, else every failed one). */
  "voyage.retry_tasks": op(
    "daemon",
    shape({ id: opt(str), tasks: opt(strList) }),
    returns<Reopened & { ships: string[] }>(),
    { on: "flagship", work: true },
  ),
  /** Task files added to a voyage (checked as a plan's). */
  "voyage.add_tasks": op(
    "daemon",
    shape({ id: opt(str), files: data<PlanFiles>() }),
    returns<Reopened & { ships: string[] }>(),
    { on: "flagship", work: true },
  ),
  /** New ships registered for a voyage (the flagship creates them next). */
  "voyage.add_ships": op(
    "daemon",
    shape({ id: str, count: num }),
    returns<{ voyage: string; ships: string[] }>(),
    { on: "flagship", work: true },
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
      /** OHCOMMODORE_DEFAULT_SHIPS from the caller's environment. */
      default_ships: opt(num),
    }),
    returns<SailResult>(),
    { on: "flagship", long: true },
  ),
  /** The record stays on the flagship unless `purge`. */
  "voyage.sink": op(
    "call",
    shape({ id: str, purge: opt(bool) }),
    returns<{ voyage: string; destroyed: string[]; purged: boolean }>(),
    { on: "flagship", long: true },
  ),
  /** voyage.retry_tasks, then new ships when it has none left. */
  "voyage.retry": op(
    "call",
    shape({
      id: str,
      tasks: opt(strList),
      ships: opt(num),
      default_ships: opt(num),
    }),
    returns<Reopened & { ships: string[]; new_ships: string[] }>(),
    { on: "flagship", long: true },
  ),
  /** voyage.add_tasks, then new ships when it has none left. */
  "voyage.add": op(
    "call",
    shape({
      id: str,
      files: data<PlanFiles>(),
      ships: opt(num),
      default_ships: opt(num),
    }),
    returns<Reopened & { ships: string[]; new_ships: string[] }>(),
    { on: "flagship", long: true },
  ),
  /** Events: the log's lines, as stdout output. */
  "voyage.logs": op(
    "call",
    shape({
      id: opt(str),
      ship: opt(str),
      follow: opt(bool),
      raw: opt(bool),
      grep: opt(str),
      tail: opt(num),
    }),
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
   * input, one reply event each (lib/voyage/protocol.ts).
   */
  "captain.session": op(
    "call",
    shape({ voyage_id: str }),
    returns<null>(),
    { on: "ship", session: true },
  ),
};
