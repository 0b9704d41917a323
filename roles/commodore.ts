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
import { UsageError } from "../lib/errors.ts";
import type {
  CreateShipRequest,
  FleetApi,
  FleetConfig,
  FleetStatus,
  Progress,
  SinkResult,
} from "../lib/fleet/api.ts";
import { providerFor } from "../lib/providers/mod.ts";
import type { Provider, VmRecord } from "../lib/providers/types.ts";
import { call, lostCall } from "../lib/rpc/client.ts";
import { callDaemonIfUp } from "../lib/rpc/calls.ts";
import { implement } from "../lib/rpc/ops.ts";
import type { RpcHandlers } from "../lib/rpc/server.ts";
import {
  readFleet,
  type ShipRecord,
  shipVm,
  updateFleet,
} from "../lib/state/fleet.ts";
import { checkVmName, fleetTag, isFleetVm } from "../lib/fleet/naming.ts";
import { overLimit, resolveShip, sortShips } from "../lib/fleet/ships.ts";
import type { Identity } from "../lib/state/identity.ts";
import { retryLost, withBinPath } from "../lib/transport/run.ts";
import {
  nameFromRepo,
  parseRepoArg,
  repoBaseName,
  repoLabel,
  validateName,
} from "../lib/validate.ts";
import { voyageCallOps } from "../lib/voyage/flagship/call_ops.ts";
import type { SetupArgs } from "../lib/fleet/rpc.ts";

export class Commodore implements FleetApi {
  readonly provider: Provider;
  constructor(readonly self: Identity, readonly home: string) {
    this.provider = providerFor(self.provider, { home });
  }

  async status(): Promise<FleetStatus> {
    const fleet = await readFleet(this.home);
    const linked = await linkStatus(this.home);
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
    return sortShips(Object.values((await readFleet(this.home)).ships));
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
    await updateFleet(this.home, (f) => {
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
      const settings = {
        ...await readSettingsFile(this.home),
        ...req.settings,
      };
      onProgress("installing ohcommodore", name);
      await deploy(t, deployOptions(this.home, new Settings(settings)));
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
      const rec = await updateFleet(this.home, (f) => {
        const rec: ShipRecord = {
          ...f.ships[name],
          ssh_dest: created.ssh_dest,
          status: "running",
        };
        f.ships[name] = rec;
        return rec;
      });
      await pokeLinks(this.home);
      return rec;
    } catch (e) {
      // Leave no orphan: the VM goes, and so does the reservation.
      if (vm) await this.provider.destroy(vm.name).catch(() => {});
      await updateFleet(this.home, (f) => {
        delete f.ships[name];
      }).catch(() => {});
      throw e;
    }
  }

  /** Refuses `adding` more ships than the plan runs at once. */
  async checkCapacity(adding: number): Promise<void> {
    const limit = await this.provider.runningLimit?.();
    if (limit === undefined) return;
    const ships = Object.keys((await readFleet(this.home)).ships).length;
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
    return (await readJsonFile(
      paths.bootstrap(this.home),
      (v) => v as Bootstrap,
    )) ??
      { env: {} };
  }

  async destroyShip(
    name: string,
    onProgress: Progress,
    o: { keepLogs?: boolean } = {},
  ) {
    // Destructive: the exact name only, never a guess from a prefix.
    const ship = resolveShip(await this.listShips(), name, { exact: true });
    // Its voyages hear it first, before anything on it dies: its tasks go
    // back to the queue as lost and it claims nothing more. Told after, a
    // task whose agent the destroy killed came back as the agent's failure,
    // and was tried again on the same ship.
    await voyageShipsGone(this.home, [ship.name], "was destroyed");
    // Through its transport first, so the provider knows its address and
    // forgets its host key with it.
    const vm = shipVm(ship);
    if (vm.ssh_dest) {
      const t = this.provider.transport(vm);
      // Its voyages' logs stay on the flagship (voyage logs reads them).
      if (o.keepLogs !== false) {
        const { keepShipLogs } = await import(
          "../lib/voyage/flagship/log_archive.ts"
        );
        await keepShipLogs(this.home, t, ship.name, onProgress);
      }
    }
    onProgress("destroying VM", ship.name);
    await this.provider.destroy(vm.name);
    await updateFleet(this.home, (f) => {
      delete f.ships[ship.name];
    });
    await pokeLinks(this.home);
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
    await updateFleet(this.home, (f) => {
      f.ships = Object.fromEntries(found.map((s) => [s.name, s]));
    });
    return sortShips(found);
  }

  async getSettings(): Promise<FleetConfig> {
    return { settings: await readSettingsFile(this.home), failed: [] };
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
      paths.settings(this.home),
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

/** The daemon's links, or null when it does not answer. */
const linkStatus = (home: string) => callDaemonIfUp(home, "link.status", {});

/**
 * Tells the flagship's daemon that ships it sailed voyages with are gone:
 * their tasks go back to the queue at once, without waiting out a lease,
 * and a voyage left with no ship is sunk. Without a daemon, the leases
 * decide when it is back.
 */
async function voyageShipsGone(
  home: string,
  ships: string[],
  reason: string,
) {
  await callDaemonIfUp(home, "voyage.ships_gone", { ships, reason });
}

/** Tells the flagship's daemon the registry changed (it also notices by itself). */
async function pokeLinks(home: string): Promise<void> {
  await callDaemonIfUp(home, "link.sync", {});
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
    ...voyageCallOps({
      home: c.home,
      fleet: c,
      transport: (s) => c.provider.transport(shipVm(s)),
      shipsGone: (ships, reason) => voyageShipsGone(c.home, ships, reason),
    }),
  };
}
