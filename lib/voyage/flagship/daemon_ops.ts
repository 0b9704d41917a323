/**
 * The flagship daemon's voyage operations: the queue (which only the
 * daemon opens) and the driver that sails every running voyage.
 */
import { UsageError } from "../../errors.ts";
import type { Database } from "../../db/database.ts";
import type { Provider } from "../../providers/types.ts";
import { implement } from "../../rpc/ops.ts";
import type { RpcHandlers } from "../../rpc/stream.ts";
import type { VoyageStatus } from "../rpc.ts";
import { readJsonFile, writeJsonAtomic } from "../../state/atomic.ts";
import type { ShipRecord } from "../../state/fleet.ts";
import { paths } from "../../state/paths.ts";
import { resolveShortId } from "../../short_id.ts";
import { VoyageDriver } from "./driver.ts";
import {
  type TaskStatus,
  type Voyage,
  VoyageQueue,
  type VoyageState,
} from "./queue.ts";
import { newTasks } from "../queue_types.ts";
import { sailDied } from "./sail_pid.ts";
import { nextShipNames } from "./ship_names.ts";

const HEARTBEAT_STALE_MS = 10_000;
export async function voyageOps(deps: {
  /** The flagship's home: its voyages' secrets are kept there. */
  home: string;
  db: Database;
  provider: Provider;
  ships: () => Promise<ShipRecord[]>;
  log: (m: string) => void;
}): Promise<RpcHandlers> {
  const secretsFile = (id: string) =>
    `${paths.secrets(deps.home)}/voyage-${id}.json`;
  const queue = new VoyageQueue(deps.db);
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

  /**
   * The voyage `id` names (a unique prefix of 4 or more characters; with
   * `exact`, its whole id only: for what destroys); without one, the only
   * active voyage, else the only voyage there is.
   */
  const pick = async (id: unknown, o: { exact?: boolean } = {}) => {
    if (typeof id === "string" && id) {
      if (o.exact) {
        const v = await queue.get(id);
        if (v) return v;
        const near = await queue.idsStartingWith(id, 10);
        throw new UsageError(
          `no voyage ${id}${
            near.length
              ? ` (this command takes a whole id: ${near.join(", ")})`
              : ""
          }`,
        );
      }
      const full = await resolveShortId(
        id,
        (prefix, limit) => queue.idsStartingWith(prefix, limit),
        "voyage",
      );
      return (await queue.get(full))!;
    }
    const all = await queue.list();
    const active = all.filter((v) =>
      v.state === "planning" || v.state === "running" ||
      v.state === "complete"
    );
    if (active.length === 1) return active[0];
    if (active.length === 0 && all.length === 1) return all[0];
    if (all.length === 0) {
      throw new UsageError("no voyages yet: ohcommodore voyage sail <plan>");
    }
    const listed = (vs: Voyage[]) =>
      vs.slice(0, 10).map((v) => `${v.id} (${v.state})`).join(", ") +
      (vs.length > 10 ? ", …" : "");
    throw new UsageError(
      active.length === 0
        ? `no voyage is active; name one of: ${listed(all)}`
        : `${active.length} voyages are active (${listed(active)}): name one`,
    );
  };

  /**
   * A sail ends by launching its voyage or failing it (and a retry or an
   * add that makes new ships, once they are made). One whose process died
   * first (the flagship restarted, the process was killed) left its
   * pidfile naming a process that is gone: the voyage goes on with the
   * ships that came up and the others leave it, or, none up, it fails. So
   * no voyage stays 'planning', no loop waits for a ship nobody makes, and
   * no ship shows 'provisioning' for good.
   */
  const recovering = new Set<string>();
  const afterSail = async (v: Voyage): Promise<void> => {
    // Any state: a voyage may end (its tasks done by the ships that came
    // up) before anyone asks.
    if (recovering.has(v.id)) return;
    if (!(await sailDied(deps.home, v.id))) return;
    recovering.add(v.id);
    try {
      const fleet = new Map((await deps.ships()).map((s) => [s.name, s]));
      const mine = (await queue.ships(v.id)).filter((s) => s.state !== "gone")
        .map((s) => s.ship);
      // Not made: not in the fleet yet, or still being created there.
      const made = (s: string) =>
        (fleet.get(s)?.status ?? "creating") !== "creating";
      const up = mine.filter(made);
      const why =
        "the sail was interrupted (the flagship restarted, or its process was killed)";
      if (up.length === 0) {
        await queue.failVoyage(
          v.id,
          `${why} before any ship was up: sail the plan again`,
          ["planning"],
        );
      }
      const lost = mine.filter((s) => !made(s));
      if (lost.length) await queue.shipsGone(lost, `was not made: ${why}`);
      if (
        up.length &&
        await queue.setVoyageState(v.id, "running", {}, ["planning"])
      ) {
        await loadSecrets(v.id);
        await driver.start(v.id);
      }
      driver.shipsGone();
      deps.log(
        `voyage ${v.id}: ${why}; ${
          up.length ? `sails on with ${up.join(", ")}` : "no ship was up"
        }`,
      );
      await Deno.remove(paths.sailPid(deps.home, v.id)).catch(() => {});
    } finally {
      recovering.delete(v.id);
    }
  };

  const status = async (v: Voyage): Promise<VoyageStatus> => {
    await afterSail(v);
    const counts: Record<TaskStatus, number> = {
      pending: 0,
      running: 0,
      done: 0,
      failed: 0,
    };
    for (const t of await queue.tasks(v.id)) counts[t.status]++;
    const now = Date.now();
    const cur = (await queue.get(v.id))!;
    const fleet = new Map((await deps.ships()).map((s) => [s.name, s]));
    const ships = (await queue.ships(v.id)).map((s) => {
      const state = shipStateNow(s.state, cur.state, fleet.get(s.ship));
      return {
        ...s,
        state,
        stale: state === "working" && !!s.last_heartbeat &&
          now - Date.parse(s.last_heartbeat) > HEARTBEAT_STALE_MS,
      };
    });
    const reason = cur.state === "failed" || cur.state === "sunk"
      ? await queue.reason(v.id)
      : null;
    return { voyage: cur, reason, counts, ships };
  };

  /** Its ships that still sail with it (not gone). */
  const liveShips = async (id: string) => {
    const fleet = new Map((await deps.ships()).map((s) => [s.name, s]));
    const v = (await queue.get(id))!;
    return (await queue.ships(id)).filter((s) =>
      shipStateNow(s.state, v.state, fleet.get(s.ship)) !== "gone"
    ).map((s) => s.ship);
  };

  /** Loads a voyage's agent secrets for its driver (after a restart, say). */
  const loadSecrets = async (id: string) => {
    if (secrets.has(id)) return;
    secrets.set(
      id,
      (await readJsonFile(
        secretsFile(id),
        (x) => x as Record<string, string>,
      )) ?? {},
    );
  };

  // After a restart: what a sail that died with the flagship left undone.
  for (const v of await queue.list()) await afterSail(v);

  return implement("daemon", {
    "voyage.create": async (a, { secrets: given }) => {
      const v = a.voyage;
      await queue.create(v, a.tasks, a.ships);
      if (Object.keys(given).length) {
        await writeJsonAtomic(secretsFile(v.id), given);
        secrets.set(v.id, given);
      }
      // A voyage still 'planning' (its ships being made) starts at launch.
      if (v.state === "running") await driver.start(v.id);
      return { id: v.id };
    },
    "voyage.launch": async (a) => {
      const v = await pick(a.id, { exact: true });
      const launched = await queue.setVoyageState(v.id, "running", {}, [
        "planning",
      ]);
      if (launched || v.state === "running") await driver.start(v.id);
      return { voyage: v.id, launched };
    },
    "voyage.fail": async (a) => {
      const v = await pick(a.id, { exact: true });
      const failed = await queue.failVoyage(v.id, a.reason);
      driver.shipsGone();
      return { voyage: v.id, failed };
    },
    "voyage.list": async () =>
      await Promise.all((await queue.list()).map(status)),
    "voyage.status": async (a) => await status(await pick(a.id)),
    "voyage.tasks": async (a) => {
      const v = await pick(a.id);
      return { voyage: v.id, tasks: await queue.tasksWithRuns(v.id, a.status) };
    },
    "voyage.events": async (a) => await queue.events((await pick(a.id)).id),
    "voyage.get": async (a) => await pick(a.id),
    // The flagship destroyed these ships (or could not create them).
    "voyage.ships_gone": async (a) => {
      const voyages = await queue.shipsGone(
        a.ships,
        a.reason ?? "was destroyed",
      );
      driver.shipsGone();
      return { voyages };
    },
    // Sunk from whatever state it was in; its ships (that the flagship
    // destroys next) leave with what they ran.
    "voyage.stop": async (a) => {
      const v = await pick(a.id, { exact: true });
      await queue.sink(v.id);
      driver.shipsGone();
      return {
        voyage: v.id,
        ships: (await queue.ships(v.id)).map((s) => s.ship),
      };
    },
    "voyage.purge": async (a) => {
      const v = await pick(a.id, { exact: true });
      await queue.purge(v.id);
      secrets.delete(v.id);
      await Deno.remove(secretsFile(v.id)).catch(() => {});
      await Deno.remove(voyageRoot(v), { recursive: true }).catch(() => {});
      return { voyage: v.id };
    },
    "voyage.retry_tasks": async (a) => {
      const v = await pick(a.id);
      const r = await queue.retry(v.id, a.tasks ?? []);
      await loadSecrets(v.id);
      await driver.reopen(v.id);
      return { ...r, ships: await liveShips(v.id) };
    },
    "voyage.add_tasks": async (a) => {
      const v = await pick(a.id);
      const { parseAddedTasks } = await import("../plan/check.ts");
      const have = await queue.tasks(v.id);
      const tasks = parseAddedTasks(a.files, have.map((t) => t.id));
      const r = await queue.addTasks(
        v.id,
        newTasks(tasks),
      );
      await loadSecrets(v.id);
      await driver.reopen(v.id);
      return { ...r, ships: await liveShips(v.id) };
    },
    // New ships for a voyage that has none left (the flagship creates them).
    "voyage.add_ships": async (a) => {
      const v = await pick(a.id, { exact: true });
      if (!Number.isInteger(a.count) || a.count < 1) {
        throw new UsageError(
          "voyage.add_ships needs count: a positive integer",
        );
      }
      const had = (await queue.ships(v.id)).map((s) => s.ship);
      const ships = nextShipNames(v.id, had, a.count);
      await queue.addShips(v.id, ships);
      await driver.reopen(v.id);
      return { voyage: v.id, ships };
    },
  });
}

/** The voyage's folder on the flagship: its plan, repository, logs, verify. */
export const voyageRoot = (v: Voyage): string =>
  v.plan_dir.replace(/\/plan\/?$/, "");

/**
 * What a voyage's ship is now, from its row, its voyage's state and its
 * fleet record: a ship the fleet no longer has is gone; one still being
 * created is provisioning; and once the voyage has ended, none is working
 * or provisioning any more (it is idle, if it is there at all).
 */
export function shipStateNow(
  row: string,
  voyage: VoyageState,
  rec: ShipRecord | undefined,
): string {
  const ended = !["planning", "running", "complete"].includes(voyage);
  if (row === "gone") return "gone";
  // A voyage registers its ships just before the fleet reserves them.
  if (!rec) return row === "provisioning" && !ended ? row : "gone";
  if (rec.status === "creating") return "provisioning";
  if (ended && ["provisioning", "working", "stale"].includes(row)) {
    return "idle";
  }
  return row;
}
