/**
 * The flagship daemon's voyage operations: the queue (which only the
 * daemon opens) and the driver that sails every running voyage.
 */
import { UsageError } from "../errors.ts";
import type { InboxStore } from "../inbox/store.ts";
import type { Provider } from "../providers/types.ts";
import { argString, type RpcHandlers } from "../rpc/stream.ts";
import { readJsonFile, writeJsonAtomic } from "../state/atomic.ts";
import type { ShipRecord } from "../state/fleet.ts";
import { paths } from "../state/paths.ts";
import { VoyageDriver } from "./driver.ts";
import {
  type NewTask,
  type TaskStatus,
  type Voyage,
  VoyageQueue,
} from "./queue.ts";

const HEARTBEAT_STALE_MS = 10_000;
const secretsFile = (id: string) => `${paths.secrets()}/voyage-${id}.json`;

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

export async function voyageOps(deps: {
  store: InboxStore;
  provider: Provider;
  ships: () => Promise<ShipRecord[]>;
  log: (m: string) => void;
}): Promise<RpcHandlers> {
  const queue = new VoyageQueue(deps.store);
  const secrets = new Map<string, Record<string, string>>();
  const driver = new VoyageDriver({
    queue,
    provider: deps.provider,
    ships: deps.ships,
    secrets: (id) => secrets.get(id) ?? {},
    log: deps.log,
  });
  for (const v of await queue.list()) {
    if (v.state === "running") {
      secrets.set(
        v.id,
        (await readJsonFile(
          secretsFile(v.id),
          (x) => x as Record<string, string>,
        )) ?? {},
      );
    }
  }
  await driver.resume();

  /** The given voyage, or the only active one. */
  const pick = async (id: unknown): Promise<Voyage> => {
    if (typeof id === "string" && id) {
      const v = await queue.get(id);
      if (!v) throw new UsageError(`no voyage ${id}`);
      return v;
    }
    const all = await queue.list();
    const active = all.filter((v) =>
      v.state === "running" || v.state === "complete"
    );
    if (active.length === 1) return active[0];
    if (active.length === 0 && all.length > 0) return all[0];
    if (all.length === 0) {
      throw new UsageError("no voyages yet: ohcommodore voyage sail <plan>");
    }
    throw new UsageError(
      `${active.length} voyages are active (${
        active.map((v) => v.id).join(", ")
      }): name one`,
    );
  };

  const status = async (v: Voyage): Promise<VoyageStatus> => {
    const counts: Record<TaskStatus, number> = {
      pending: 0,
      running: 0,
      done: 0,
      failed: 0,
    };
    for (const t of await queue.tasks(v.id)) counts[t.status]++;
    const now = Date.now();
    const ships = (await queue.ships(v.id)).map((s) => ({
      ...s,
      stale: s.state === "working" && !!s.last_heartbeat &&
        now - Date.parse(s.last_heartbeat) > HEARTBEAT_STALE_MS,
    }));
    const cur = (await queue.get(v.id))!;
    const reason = cur.state === "failed" ? await queue.reason(v.id) : null;
    return { voyage: cur, reason, counts, ships };
  };

  return {
    "voyage.create": async ({ args, secrets: given }) => {
      const v = args.voyage as Voyage;
      await queue.create(v, args.tasks as NewTask[], args.ships as string[]);
      if (Object.keys(given).length) {
        await writeJsonAtomic(secretsFile(v.id), given);
        secrets.set(v.id, given);
      }
      await driver.start(v.id);
      return { id: v.id };
    },
    "voyage.list": async () =>
      await Promise.all((await queue.list()).map(status)),
    "voyage.status": async ({ args }) => await status(await pick(args.id)),
    "voyage.tasks": async ({ args }) => {
      const v = await pick(args.id);
      const st = args.status as TaskStatus | undefined;
      if (st && !["pending", "running", "done", "failed"].includes(st)) {
        throw new UsageError(
          `invalid status "${st}": one of pending, running, done, failed`,
        );
      }
      return { voyage: v.id, tasks: await queue.tasksWithRuns(v.id, st) };
    },
    "voyage.events": async ({ args }) =>
      await queue.events((await pick(args.id)).id),
    "voyage.get": async ({ args }) => await pick(args.id),
    // The flagship destroyed these ships (or could not create them).
    "voyage.ships_gone": async ({ args }) => {
      const ships = args.ships;
      if (
        !Array.isArray(ships) || ships.some((x) => typeof x !== "string")
      ) {
        throw new UsageError("voyage.ships_gone needs ships: string[]");
      }
      const reason = typeof args.reason === "string"
        ? args.reason
        : "was destroyed";
      const voyages = await queue.shipsGone(ships as string[], reason);
      driver.shipsGone();
      return { voyages };
    },
    "voyage.stop": async ({ args }) => {
      const v = await pick(argString(args, "id"));
      if (v.state === "running") await queue.setVoyageState(v.id, "sunk");
      return {
        voyage: v.id,
        ships: (await queue.ships(v.id)).map((s) => s.ship),
      };
    },
  };
}
