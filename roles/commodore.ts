/**
 * The flagship: owns the fleet registry and acts on the provider. Every
 * fleet command ends here, whether typed on the flagship or forwarded from
 * the laptop by RPC.
 */
import { type Bootstrap, isEmpty } from "../lib/bootstrap.ts";
import { bytesToBase64 } from "../lib/inbox/types.ts";
import { deploy, deployOptions, startRemoteDaemon } from "../lib/deploy.ts";
import { readJsonFile, updateJsonFile } from "../lib/state/atomic.ts";
import {
  parseAssignments,
  readSettingsFile,
  settingName,
  Settings,
} from "../lib/settings.ts";
import { paths } from "../lib/state/paths.ts";
import { VERSION } from "../lib/version.ts";
import { OhcError, UsageError } from "../lib/errors.ts";
import type {
  CreateShipRequest,
  FleetApi,
  FleetConfig,
  FleetStatus,
  Progress,
  SinkResult,
} from "../lib/fleet/api.ts";
import type { LinkStatus } from "../lib/link/flagship.ts";
import { providerFor } from "../lib/providers/mod.ts";
import type { Provider, VmRecord } from "../lib/providers/types.ts";
import type { Transport } from "../lib/transport/types.ts";
import { call, lostCall } from "../lib/rpc/client.ts";
import { implement } from "../lib/rpc/ops.ts";
import type { RpcHandlers } from "../lib/rpc/server.ts";
import {
  readFleet,
  type ShipRecord,
  shipVm,
  updateFleet,
} from "../lib/state/fleet.ts";
import { checkVmName, fleetTag, isFleetVm } from "../lib/fleet/naming.ts";
import type { Identity } from "../lib/state/identity.ts";
import { retryLost, withBinPath } from "../lib/transport/run.ts";
import {
  nameFromRepo,
  parseRepoArg,
  repoBaseName,
  repoLabel,
  validateName,
} from "../lib/validate.ts";
import type { Reopened } from "../lib/voyage/queue.ts";
import type { SetupArgs } from "./vm.ts";

export class Commodore implements FleetApi {
  readonly provider: Provider;
  constructor(readonly self: Identity) {
    this.provider = providerFor(self.provider);
  }

  async status(): Promise<FleetStatus> {
    const fleet = await readFleet();
    const linked = await linkStatus();
    const links = new Map((linked ?? []).map((l) => [l.ship, l]));
    return {
      flagship: {
        name: this.self.name,
        provider: this.self.provider.kind,
        ssh_dest: this.self.ssh_dest ?? this.self.name,
        status: "up",
        daemon: linked === null ? "down" : "up",
      },
      ships: sortShips(Object.values(fleet.ships)).map((s) => ({
        ...s,
        link: {
          state: links.get(s.name)?.state ?? "unknown",
          last_heartbeat: links.get(s.name)?.last_heartbeat ?? null,
        },
      })),
    };
  }

  async listShips(): Promise<ShipRecord[]> {
    return sortShips(Object.values((await readFleet()).ships));
  }

  async createShip(
    req: CreateShipRequest,
    { secrets, onProgress }: {
      secrets: Record<string, string>;
      onProgress: Progress;
    },
  ): Promise<ShipRecord> {
    const spec = parseRepoArg(req.spec);
    const repoName = repoBaseName(spec);
    let name = req.name;
    if (!name) {
      name = spec.kind === "none" ? req.spec : nameFromRepo(repoName ?? "") ??
        undefined;
      if (!name) {
        throw new UsageError(
          `cannot make a ship name from "${repoName}"; give one with --name`,
        );
      }
    }
    validateName(name);
    const kind = this.self.provider.kind;
    const vmNameOf = checkVmName(kind, this.self.fleet_id, name);
    if (name === this.self.name) {
      throw new UsageError(`"${name}" is the flagship's name; pick another`);
    }
    if (spec.kind === "github" && !secrets.GH_TOKEN) {
      throw new UsageError(`GH_TOKEN is required to clone ${req.spec}`);
    }
    const repo = repoLabel(spec);
    const repoDir = repoName && spec.kind !== "none" ? repoName : null;
    const limit = await this.provider.runningLimit?.();

    // Reserve the name first, so two concurrent creates cannot both take it
    // (and, with the reservations counted, cannot both take the last slot).
    await updateFleet((f) => {
      if (f.ships[name]) {
        throw new UsageError(`a ship named "${name}" already exists`);
      }
      overLimit(limit, Object.keys(f.ships).length, 1, name);
      f.ships[name] = {
        name,
        ...(vmNameOf !== name ? { vm: vmNameOf } : {}),
        repo,
        repo_dir: repoDir,
        ssh_dest: "",
        status: "creating",
        created_at: new Date().toISOString(),
      };
    });

    let vm: VmRecord | undefined;
    try {
      onProgress("creating VM", name);
      vm = await this.provider.create(vmNameOf, {
        tags: this.self.fleet_id ? [fleetTag(this.self.fleet_id)] : [],
        onProgress: (m) => onProgress(m, name),
      });
      const t = this.provider.transport(vm);
      // The fleet's settings, and what the laptop's environment set now.
      const settings = { ...await readSettingsFile(), ...req.settings };
      onProgress("installing ohcommodore", name);
      await deploy(t, deployOptions(new Settings(settings)));
      const setup: SetupArgs = {
        bootstrap: await this.bootstrapFor(req),
        settings,
        identity: {
          role: "captain",
          name,
          flagship: this.self.name,
          fleet_id: this.self.fleet_id ?? null,
          vm: vmNameOf,
          provider: this.self.provider,
          repo,
          repo_dir: repoDir,
          created_at: new Date().toISOString(),
        },
        clone: repoDir
          ? {
            // The laptop resolves owner/repo against its own GitHub base.
            url: req.clone_url ??
              (spec.kind === "github" || spec.kind === "url"
                ? spec.url
                : `file://${(spec as { path: string }).path}`),
            dir: repoDir,
          }
          : null,
      };
      onProgress("setting up captain", name);
      // Idempotent: made again when only its connection was lost.
      await retryLost(
        () =>
          call(t, "vm.setup", { ...setup }, {
            secrets: secrets.GH_TOKEN ? { GH_TOKEN: secrets.GH_TOKEN } : {},
            onEvent: (e) =>
              e.type === "progress" && onProgress(e.message, name),
          }),
        lostCall,
      );
      onProgress("starting daemon", name);
      await startRemoteDaemon(t);
      const created = vm;
      const rec = await updateFleet((f) => {
        const rec: ShipRecord = {
          ...f.ships[name],
          ssh_dest: created.ssh_dest,
          status: "running",
        };
        f.ships[name] = rec;
        return rec;
      });
      await pokeLinks();
      return rec;
    } catch (e) {
      // Leave no orphan: the VM goes, and so does the reservation.
      if (vm) await this.provider.destroy(vm.name).catch(() => {});
      await updateFleet((f) => {
        delete f.ships[name];
      }).catch(() => {});
      throw e;
    }
  }

  /** Refuses `adding` more ships than the plan runs at once. */
  async checkCapacity(adding: number): Promise<void> {
    const limit = await this.provider.runningLimit?.();
    if (limit === undefined) return;
    const ships = Object.keys((await readFleet()).ships).length;
    overLimit(
      limit,
      ships,
      adding,
      adding === 1 ? "another ship" : `${adding} more ships`,
    );
  }

  /** The laptop's settings for this ship, else those it gave at init. */
  private async bootstrapFor(req: CreateShipRequest): Promise<Bootstrap> {
    if (!isEmpty(req.bootstrap)) return req.bootstrap!;
    return (await readJsonFile(paths.bootstrap(), (v) => v as Bootstrap)) ??
      { env: {} };
  }

  async destroyShip(
    name: string,
    onProgress: Progress,
    o: { keepLogs?: boolean } = {},
  ) {
    // Destructive: the exact name only, never a guess from a prefix.
    const ship = resolveShip(await this.listShips(), name, { exact: true });
    // Through its transport first, so the provider knows its address and
    // forgets its host key with it.
    const vm = shipVm(ship);
    if (vm.ssh_dest) {
      const t = this.provider.transport(vm);
      // Its voyages' logs stay on the flagship (voyage logs reads them).
      if (o.keepLogs !== false) await keepLogs(t, ship.name, onProgress);
    }
    onProgress("destroying VM", ship.name);
    await this.provider.destroy(vm.name);
    // Its voyages hear why before the registry loses it (a driver that
    // finds it missing first would only know that it left).
    await voyageShipsGone([ship.name], "was destroyed");
    await updateFleet((f) => {
      delete f.ships[ship.name];
    });
    await pokeLinks();
    return ship;
  }

  async sink(onProgress: Progress): Promise<SinkResult> {
    const ships = await this.listShips();
    const result: SinkResult = { destroyed: [], failed: [] };
    await Promise.all(ships.map(async (s) => {
      try {
        await this.destroyShip(s.name, onProgress);
        onProgress("sunk", s.name);
        result.destroyed.push(s.name);
      } catch (e) {
        result.failed.push({ name: s.name, error: (e as Error).message });
      }
    }));
    result.destroyed.sort();
    return result;
  }

  async recover(onProgress: Progress): Promise<ShipRecord[]> {
    // Only this fleet's VMs: the account may hold others' (exe.dev), and
    // asking a VM who it is wakes it (sprites): where the provider lists by
    // tag, only the fleet's tagged VMs are asked.
    const kind = this.self.provider.kind;
    const own = this.self.vm ?? this.self.name;
    const fleetId = this.self.fleet_id;
    const vms =
      (await (fleetId && this.provider.listTagged
        ? this.provider.listTagged(fleetTag(fleetId))
        : this.provider.list())).filter((v) =>
          v.name !== own && isFleetVm(kind, fleetId, v.name)
        );
    const found: ShipRecord[] = [];
    await Promise.all(vms.map(async (vm) => {
      try {
        const { identity } = await call<{ identity: Identity | null }>(
          this.provider.transport(vm),
          "vm.identity",
        );
        if (
          identity?.role !== "captain" || identity.flagship !== this.self.name
        ) {
          return; // someone else's VM
        }
        onProgress("found", vm.name);
        found.push({
          name: identity.name,
          ...(vm.name !== identity.name ? { vm: vm.name } : {}),
          repo: identity.repo ?? null,
          repo_dir: identity.repo_dir ?? null,
          ssh_dest: vm.ssh_dest,
          status: vm.status,
          created_at: identity.created_at,
        });
      } catch (e) {
        onProgress(`skipped: ${(e as Error).message}`, vm.name);
      }
    }));
    await updateFleet((f) => {
      f.ships = Object.fromEntries(found.map((s) => [s.name, s]));
    });
    return sortShips(found);
  }

  async getSettings(): Promise<FleetConfig> {
    return { settings: await readSettingsFile(), failed: [] };
  }

  async setSettings(
    set: Record<string, string>,
    unset: string[],
    onProgress: Progress,
  ): Promise<FleetConfig> {
    // Every value checked before anything changes.
    const checked = parseAssignments(
      Object.entries(set).map(([k, v]) => `${k}=${v}`),
    );
    for (const k of unset) settingName(k);
    const settings = await updateJsonFile(
      paths.settings(),
      (v) => v as Record<string, string>,
      (): Record<string, string> => ({}),
      (cur) => {
        for (const k of unset) delete cur[k];
        Object.assign(cur, checked);
        return { ...cur };
      },
    );
    const failed: FleetConfig["failed"] = [];
    await Promise.all((await this.listShips()).map(async (s) => {
      try {
        await call(this.provider.transport(shipVm(s)), "vm.settings", {
          settings,
        });
        onProgress("settings changed", s.name);
      } catch (e) {
        failed.push({ name: s.name, error: (e as Error).message });
      }
    }));
    return { settings, failed };
  }

  async exec(
    name: string,
    argv: string[],
    io: Parameters<FleetApi["exec"]>[2],
  ): Promise<number> {
    const ship = resolveShip(await this.listShips(), name, { ready: true });
    const t = this.provider.transport(shipVm(ship));
    const child = t.spawn(withBinPath(argv), {
      stdin: io.input ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    });
    if (io.input) io.input.pipeTo(child.stdin).catch(() => {});
    const pump = async (
      s: ReadableStream<Uint8Array>,
      k: "stdout" | "stderr",
    ) => {
      for await (const chunk of s) io.onOutput(k, chunk);
    };
    await Promise.all([
      pump(child.stdout, "stdout"),
      pump(child.stderr, "stderr"),
    ]);
    return (await child.status).code;
  }

  async ssh(name: string, argv: string[], tty: boolean): Promise<number> {
    const ship = resolveShip(await this.listShips(), name, { ready: true });
    return await this.provider.transport(shipVm(ship)).interactive(argv, {
      tty,
    });
  }
}

/** The longest a ship's logs are fetched for before it is destroyed anyway. */
const KEEP_LOGS_MS = 120_000;

async function keepLogs(t: Transport, ship: string, onProgress: Progress) {
  const { collectShipLogs } = await import("../lib/voyage/log_archive.ts");
  try {
    const n = await collectShipLogs(
      t,
      ship,
      AbortSignal.timeout(KEEP_LOGS_MS),
    );
    if (n) onProgress(`kept ${n} voyage log(s) on the flagship`, ship);
  } catch (e) {
    onProgress(
      `its voyage logs could not be kept: ${(e as Error).message}`,
      ship,
    );
  }
}

/**
 * Refuses, before anything is created, a fleet that needs more VMs at once
 * than the plan runs: a voyage needs the flagship and every ship running.
 */
function overLimit(
  limit: number | undefined,
  ships: number,
  adding: number,
  what: string,
): void {
  if (limit === undefined || 1 + ships + adding <= limit) return;
  throw new UsageError(
    `cannot create ${what}: the sprites plan runs at most ${limit} sprites at once (running_limit ${limit}), and the flagship and ${ships} ship${
      ships === 1 ? "" : "s"
    } already make ${1 + ships}`,
    "destroy a ship, or move to a plan that runs more sprites at once",
  );
}

/** The daemon's links, or null when it does not answer. */
async function linkStatus(): Promise<LinkStatus[] | null> {
  const { connectDaemon, daemonCall } = await import("../lib/daemon/client.ts");
  const conn = await connectDaemon();
  if (!conn) return null;
  conn.close();
  return await daemonCall<LinkStatus[]>("link.status").catch(() => null);
}

/**
 * Tells the flagship's daemon that ships it sailed voyages with are gone:
 * their tasks go back to the queue at once, without waiting out a lease,
 * and a voyage left with no ship is sunk. Without a daemon, the leases
 * decide when it is back.
 */
async function voyageShipsGone(ships: string[], reason: string) {
  const { connectDaemon, daemonCall } = await import(
    "../lib/daemon/client.ts"
  );
  const conn = await connectDaemon();
  if (!conn) return;
  conn.close();
  await daemonCall("voyage.ships_gone", { ships, reason }).catch(() => {});
}

/** Tells the flagship's daemon the registry changed (it also notices by itself). */
async function pokeLinks(): Promise<void> {
  const { connectDaemon } = await import("../lib/daemon/client.ts");
  const conn = await connectDaemon();
  if (!conn) return;
  conn.close();
  const { daemonCall } = await import("../lib/daemon/client.ts");
  await daemonCall("link.sync").catch(() => {});
}

function sortShips(ships: ShipRecord[]): ShipRecord[] {
  return ships.sort((a, b) => a.name.localeCompare(b.name));
}

/**
 * Exact name, or a unique prefix (not for `exact`: commands that destroy);
 * an ambiguous prefix lists the matches.
 */
export function resolveShip(
  ships: ShipRecord[],
  nameOrPrefix: string,
  o: { ready?: boolean; exact?: boolean } = {},
): ShipRecord {
  const mustBeReady = o.ready === true;
  const exact = ships.find((s) => s.name === nameOrPrefix);
  const prefixed = ships.filter((s) => s.name.startsWith(nameOrPrefix));
  const matches = exact ? [exact] : o.exact ? [] : prefixed;
  if (matches.length === 0 || nameOrPrefix === "") {
    const near = o.exact && nameOrPrefix !== "" && prefixed.length > 0
      ? ` (this command takes a whole name: ${
        prefixed.map((s) => s.name).join(", ")
      })`
      : "";
    throw new UsageError(`no ship named "${nameOrPrefix}"${near}`);
  }
  if (matches.length > 1) {
    throw new UsageError(
      `"${nameOrPrefix}" matches ${matches.length} ships: ${
        matches.map((s) => s.name).join(", ")
      }`,
    );
  }
  const ship = matches[0];
  if (mustBeReady && (ship.status === "creating" || !ship.ssh_dest)) {
    throw new OhcError(
      "not_ready",
      `ship "${ship.name}" is still being created`,
    );
  }
  return ship;
}

/** The flagship's RPC surface: FleetApi, op by op. */
export function commodoreHandlers(c: Commodore): RpcHandlers {
  const progress =
    (emit: Parameters<RpcHandlers[string]>[0]["emit"]) =>
    (message: string, subject?: string) =>
      emit({ type: "progress", message, subject });
  return {
    ...implement("call", {
      "fleet.status": () => c.status(),
      "fleet.versions": async () => ({
        flagship: VERSION,
        ships: await Promise.all((await c.listShips()).map(async (s) => {
          try {
            const r = await call<{ version: string }>(
              c.provider.transport(shipVm(s)),
              "vm.identity",
            );
            return { name: s.name, version: r.version };
          } catch (e) {
            return {
              name: s.name,
              version: null,
              error: (e as Error).message,
            };
          }
        })),
      }),
      "ship.list": () => c.listShips(),
      "ship.create": (a, { secrets, emit }) =>
        c.createShip(a, { secrets, onProgress: progress(emit) }),
      "fleet.capacity": async (a) => {
        await c.checkCapacity(a.adding);
        return null;
      },
      "ship.destroy": (a, { emit }) => c.destroyShip(a.name, progress(emit)),
      "fleet.sink": (_a, { emit }) => c.sink(progress(emit)),
      "fleet.recover": (_a, { emit }) => c.recover(progress(emit)),
      "fleet.settings": () => c.getSettings(),
      "fleet.configure": (a, { emit }) =>
        c.setSettings(a.set ?? {}, a.unset ?? [], progress(emit)),
      "ship.exec": async (a, { emit, input }) => {
        const code = await c.exec(a.name, a.argv, {
          input,
          onOutput: (stream, data) =>
            emit({ type: "output", stream, data: bytesToBase64(data) }),
        });
        return { code };
      },
    }),
    ...voyageHandlers(c, progress),
  };
}

/** Voyage operations that need the provider (the queue's live in the daemon). */
function voyageHandlers(
  c: Commodore,
  progress: (emit: Parameters<RpcHandlers[string]>[0]["emit"]) => Progress,
): RpcHandlers {
  const daemon = async <T>(
    op: string,
    args: Record<string, unknown>,
    secrets?: Record<string, string>,
  ) => {
    const { daemonCall } = await import("../lib/daemon/client.ts");
    return await daemonCall<T>(op, args, { secrets });
  };
  /**
   * After a retry or added tasks: a voyage with work and no ship left (or
   * asked for more with `ships`) gets new ships, as at sail.
   */
  const sailOn = async (
    r: Reopened & { ships: string[] },
    args: Record<string, unknown>,
    onProgress: Progress,
  ) => {
    const asked = args.ships;
    if (
      asked !== undefined &&
      (typeof asked !== "number" || !Number.isInteger(asked) || asked < 1)
    ) {
      throw new UsageError("--ships must be a positive whole number");
    }
    if (asked === undefined && (r.ships.length > 0 || r.open === 0)) {
      return { ...r, new_ships: [] };
    }
    const { Settings } = await import("../lib/settings.ts");
    const count = (asked as number | undefined) ??
      Math.min(
        r.open,
        typeof args.default_ships === "number"
          ? args.default_ships
          : (await Settings.load()).get("OHCOMMODORE_DEFAULT_SHIPS"),
      );
    await c.checkCapacity(count);
    const { ships } = await daemon<{ ships: string[] }>("voyage.add_ships", {
      id: r.voyage,
      count,
    });
    onProgress(`provisioning ${count} ship(s)`, r.voyage);
    const results = await Promise.allSettled(
      ships.map((name) => createVoyageShip(name, onProgress)),
    );
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
  // A voyage's ships get its code from the flagship: no GH_TOKEN.
  const createVoyageShip = (name: string, onProgress: Progress) =>
    c.createShip({ spec: name }, { secrets: {}, onProgress }).catch(
      async (e) => {
        await voyageShipsGone(
          [name],
          `could not be created: ${(e as Error).message}`,
        );
        throw e;
      },
    );
  return {
    "voyage.sail": async ({ args, secrets, emit }) => {
      const { sail } = await import("../lib/voyage/sail.ts");
      // What agents need on ships; nothing else is kept with the voyage.
      const { onlyAgentEnv } = await import("../lib/voyage/agent_env.ts");
      const onProgress = progress(emit);
      return await sail(
        args as unknown as import("../lib/voyage/sail.ts").SailRequest,
        {
          onProgress,
          ghToken: secrets.GH_TOKEN,
          register: (voyage, tasks, ships) =>
            daemon(
              "voyage.create",
              { voyage, tasks, ships },
              onlyAgentEnv(secrets),
            ),
          checkCapacity: (n) => c.checkCapacity(n),
          createShip: (name) => createVoyageShip(name, onProgress),
        },
      );
    },
    // Sunk, its ships destroyed (their logs kept here first); its record
    // (repository, tasks, logs, verify output) stays unless `purge`.
    "voyage.sink": async ({ args, emit }) => {
      const purge = args.purge === true;
      const r = await daemon<{ voyage: string; ships: string[] }>(
        "voyage.stop",
        { id: args.id },
      );
      const fleet = new Set((await c.listShips()).map((s) => s.name));
      const gone = r.ships.filter((s) => fleet.has(s));
      await Promise.all(
        gone.map((s) => c.destroyShip(s, progress(emit), { keepLogs: !purge })),
      );
      // Ships the fleet no longer has leave the voyage too: none of its
      // tasks stays running.
      const missing = r.ships.filter((s) => !fleet.has(s));
      if (missing.length) {
        await voyageShipsGone(missing, "is not in the fleet");
      }
      if (purge) await daemon("voyage.purge", { id: r.voyage });
      return { voyage: r.voyage, destroyed: gone, purged: purge };
    },
    "voyage.retry": async ({ args, emit }) =>
      await sailOn(
        await daemon<Reopened & { ships: string[] }>("voyage.retry_tasks", {
          id: args.id,
          tasks: args.tasks ?? [],
        }),
        args,
        progress(emit),
      ),
    "voyage.add": async ({ args, emit }) =>
      await sailOn(
        await daemon<Reopened & { ships: string[] }>("voyage.add_tasks", {
          id: args.id,
          files: args.files,
        }),
        args,
        progress(emit),
      ),
    "voyage.logs": async ({ args, emit, signal }) => {
      const { voyageLogs, shipLogs } = await import("../lib/voyage/logs.ts");
      const { archivedLogs } = await import("../lib/voyage/log_archive.ts");
      const { resolveVoyageShip } = await import(
        "../lib/voyage/ship_names.ts"
      );
      const v = await daemon<{ id: string }>("voyage.get", { id: args.id });
      const shipsOf = async () =>
        (await daemon<{ ships: { ship: string }[] }>("voyage.status", {
          id: v.id,
        })).ships.map((x) => x.ship);
      const only = typeof args.ship === "string" && args.ship
        ? resolveVoyageShip(v.id, await shipsOf(), args.ship)
        : null;
      let grep: RegExp | undefined;
      if (typeof args.grep === "string") {
        try {
          grep = new RegExp(args.grep);
        } catch (e) {
          throw new UsageError(`--grep: ${(e as Error).message}`);
        }
      }
      const tail = typeof args.tail === "number" && args.tail > 0
        ? args.tail
        : undefined;
      await voyageLogs({
        // Each ship where it is: in the fleet, else what the flagship kept.
        sources: async () => {
          const fleet = new Map(
            (await c.listShips()).map((s) => [s.name, s]),
          );
          const out = [];
          for (const ship of only ? [only] : await shipsOf()) {
            const rec = fleet.get(ship);
            if (rec?.ssh_dest && rec.status !== "creating") {
              out.push(
                shipLogs(ship, c.provider.transport(shipVm(rec)), v.id),
              );
            } else {
              const kept = await archivedLogs(v.id, ship);
              if (kept) out.push(kept);
            }
          }
          return out;
        },
        ended: async () => {
          const cur = await daemon<{ state: string }>("voyage.get", {
            id: v.id,
          });
          return !["planning", "running", "complete"].includes(cur.state);
        },
        follow: args.follow === true,
        raw: args.raw === true,
        grep,
        tail,
        signal,
        emit: (line) =>
          emit({
            type: "output",
            stream: "stdout",
            data: bytesToBase64(new TextEncoder().encode(line + "\n")),
          }),
      });
      return null;
    },
    "voyage.bundle": async ({ args, emit }) => {
      const v = await daemon<{ id: string; bare: string; branch: string }>(
        "voyage.get",
        { id: args.id },
      );
      const { bundleVoyage } = await import("../lib/voyage/git.ts");
      const file = await Deno.makeTempFile({ suffix: ".bundle" });
      try {
        await bundleVoyage({ bare: v.bare, file });
        const bytes = await Deno.readFile(file);
        for (let i = 0; i < bytes.length; i += 1 << 20) {
          emit({
            type: "output",
            stream: "stdout",
            data: bytesToBase64(bytes.subarray(i, i + (1 << 20))),
          });
        }
      } finally {
        await Deno.remove(file).catch(() => {});
      }
      return { id: v.id, branch: v.branch };
    },
  };
}
