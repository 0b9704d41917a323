/**
 * The voyage operations the flagship's per-call process serves: what needs
 * the provider or the ships (sail, sink, retry, add, logs, bundle). The
 * queue's live in the daemon (daemon_ops.ts); these ask it.
 */
import { OhcError, UsageError } from "../../errors.ts";
import type { CreateShipRequest, Progress } from "../../fleet/api.ts";
import { bytesToBase64 } from "../../inbox/types.ts";
import { daemonCaller } from "../../rpc/calls.ts";
import { implement, type OpArgs } from "../../rpc/ops.ts";
import type { RpcContext, RpcHandlers } from "../../rpc/stream.ts";
import type { ShipRecord } from "../../state/fleet.ts";
import type { Transport } from "../../transport/types.ts";
import type { Reopened } from "./queue.ts";
import { holdSail } from "./sail_pid.ts";

/** What these operations need of the fleet (the commodore gives it). */
export interface VoyageFleet {
  /** The flagship's home: its daemon, voyages and settings. */
  home: string;
  fleet: {
    createShip(
      req: CreateShipRequest,
      o: { secrets: Record<string, string>; onProgress: Progress },
    ): Promise<ShipRecord>;
    checkCapacity(adding: number): Promise<void>;
    listShips(): Promise<ShipRecord[]>;
    destroyShip(
      name: string,
      onProgress: Progress,
      o?: { keepLogs?: boolean },
    ): Promise<ShipRecord>;
  };
  transport(ship: ShipRecord): Transport;
  /** Tells the daemon these ships left (their tasks go back at once). */
  shipsGone(ships: string[], reason: string): Promise<void>;
}

const progress = (emit: RpcContext["emit"]): Progress => (message, subject) =>
  emit({ type: "progress", message, subject });

const output = (emit: RpcContext["emit"], bytes: Uint8Array) =>
  emit({ type: "output", stream: "stdout", data: bytesToBase64(bytes) });

export function voyageCallOps(d: VoyageFleet): RpcHandlers {
  const ask = daemonCaller(d.home);
  // A voyage's ships get its code from the flagship: no GH_TOKEN.
  const createVoyageShip = (name: string, onProgress: Progress) =>
    d.fleet.createShip({ spec: name }, { secrets: {}, onProgress }).catch(
      async (e) => {
        await d.shipsGone(
          [name],
          `could not be created: ${(e as Error).message}`,
        );
        throw e;
      },
    );

  /**
   * After a retry or added tasks: a voyage with work and no ship left (or
   * asked for more with `ships`) gets new ships, as at sail.
   */
  const sailOn = async (
    r: Reopened & { ships: string[] },
    a: { ships?: number; default_ships?: number },
    onProgress: Progress,
  ) => {
    const asked = a.ships;
    if (asked !== undefined && (!Number.isInteger(asked) || asked < 1)) {
      throw new UsageError("--ships must be a positive whole number");
    }
    if (asked === undefined && (r.ships.length > 0 || r.open === 0)) {
      return { ...r, new_ships: [] };
    }
    const { Settings } = await import("../../settings.ts");
    const count = asked ??
      Math.min(
        r.open,
        a.default_ships ??
          (await Settings.load(d.home)).get("OHCOMMODORE_DEFAULT_SHIPS"),
      );
    await d.fleet.checkCapacity(count);
    // As at sail: held until the ships are made (daemon_ops.ts, afterSail).
    const made = await holdSail(d.home, r.voyage);
    const { ships } = await ask("voyage.add_ships", {
      id: r.voyage,
      count,
    });
    onProgress(`provisioning ${count} ship(s)`, r.voyage);
    const results = await Promise.allSettled(
      ships.map((name) => createVoyageShip(name, onProgress)),
    );
    await made();
    if (results.every((x) => x.status === "rejected")) {
      throw new OhcError(
        "no_ships",
        `no ship could be created for voyage ${r.voyage}: ${
          (results[0] as PromiseRejectedResult).reason?.message
        }`,
      );
    }
    return { ...r, new_ships: ships };
  };

  return implement("call", {
    "voyage.sail": async (a, { secrets, emit }) => {
      const { sail } = await import("./sail.ts");
      // What agents need on ships; nothing else is kept with the voyage.
      const { onlyAgentEnv } = await import("../ship/agent_env.ts");
      const onProgress = progress(emit);
      return await sail(a, {
        home: d.home,
        onProgress,
        ghToken: secrets.GH_TOKEN,
        register: async (voyage, tasks, ships) => {
          await ask("voyage.create", { voyage, tasks, ships }, {
            secrets: onlyAgentEnv(secrets),
          });
        },
        launch: async (id) => {
          await ask("voyage.launch", { id });
        },
        fail: async (id, reason) => {
          await ask("voyage.fail", { id, reason });
        },
        checkCapacity: (n) => d.fleet.checkCapacity(n),
        createShip: (name) => createVoyageShip(name, onProgress),
      });
    },
    // Sunk, its ships destroyed (their logs kept here first); its record
    // (repository, tasks, logs, verify output) stays unless `purge`.
    "voyage.sink": async (a, { emit }) => {
      const purge = a.purge === true;
      const r = await ask("voyage.stop", { id: a.id });
      const fleet = new Set((await d.fleet.listShips()).map((s) => s.name));
      const gone = r.ships.filter((s) => fleet.has(s));
      await Promise.all(
        gone.map((s) =>
          d.fleet.destroyShip(s, progress(emit), { keepLogs: !purge })
        ),
      );
      // Ships the fleet no longer has leave the voyage too: none of its
      // tasks stays running.
      const missing = r.ships.filter((s) => !fleet.has(s));
      if (missing.length) await d.shipsGone(missing, "is not in the fleet");
      if (purge) await ask("voyage.purge", { id: r.voyage });
      return { voyage: r.voyage, destroyed: gone, purged: purge };
    },
    "voyage.retry": async (a, { emit }) =>
      await sailOn(
        await ask("voyage.retry_tasks", {
          id: a.id,
          tasks: a.tasks ?? [],
        }),
        a,
        progress(emit),
      ),
    "voyage.add": async (a, { emit }) =>
      await sailOn(
        await ask("voyage.add_tasks", { id: a.id, files: a.files }),
        a,
        progress(emit),
      ),
    "voyage.logs": (a, ctx) => logs(d, a, ctx),
    "voyage.bundle": async (a, { emit }) => {
      const v = await ask("voyage.get", { id: a.id });
      const { bundleVoyage } = await import("../../git/bundle.ts");
      const file = await Deno.makeTempFile({ suffix: ".bundle" });
      try {
        await bundleVoyage({ bare: v.bare, file });
        const bytes = await Deno.readFile(file);
        for (let i = 0; i < bytes.length; i += 1 << 20) {
          output(emit, bytes.subarray(i, i + (1 << 20)));
        }
      } finally {
        await Deno.remove(file).catch(() => {});
      }
      return { id: v.id, branch: v.branch };
    },
  });
}

/** `voyage logs`: each ship where it is, else what the flagship kept. */
async function logs(
  d: VoyageFleet,
  a: OpArgs<"voyage.logs">,
  { emit, signal }: RpcContext,
): Promise<null> {
  const ask = daemonCaller(d.home);
  const { voyageLogs, shipLogs } = await import("./logs.ts");
  const { archivedLogs } = await import("./log_archive.ts");
  const { resolveVoyageShip } = await import("./ship_names.ts");
  const v = await ask("voyage.get", { id: a.id });
  const shipsOf = async () =>
    (await ask("voyage.status", { id: v.id })).ships.map((x) => x.ship);
  const only = a.ship ? resolveVoyageShip(v.id, await shipsOf(), a.ship) : null;
  let grep: RegExp | undefined;
  if (a.grep !== undefined) {
    try {
      grep = new RegExp(a.grep);
    } catch (e) {
      throw new UsageError(`--grep: ${(e as Error).message}`);
    }
  }
  const tail = a.tail !== undefined && a.tail > 0 ? a.tail : undefined;
  await voyageLogs({
    sources: async () => {
      const fleet = new Map(
        (await d.fleet.listShips()).map((s) => [s.name, s]),
      );
      const out = [];
      for (const ship of only ? [only] : await shipsOf()) {
        const rec = fleet.get(ship);
        if (rec?.ssh_dest && rec.status !== "creating") {
          out.push(shipLogs(ship, d.transport(rec), v.id));
        } else {
          const kept = await archivedLogs(d.home, v.id, ship);
          if (kept) out.push(kept);
        }
      }
      return out;
    },
    ended: async () => {
      const cur = await ask("voyage.get", { id: v.id });
      return !["planning", "running", "complete"].includes(cur.state);
    },
    follow: a.follow === true,
    raw: a.raw === true,
    grep,
    tail,
    signal,
    emit: (line) => output(emit, new TextEncoder().encode(line + "\n")),
  });
  return null;
}
