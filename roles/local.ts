/**
 * The user's machine: owns config.json, creates and scuttles the flagship,
 * and forwards every fleet command to the flagship by RPC.
 */
import { deploy, deployOptions, startRemoteDaemon } from "../lib/deploy.ts";
import { Settings } from "../lib/settings.ts";
import { OhcError, UsageError } from "../lib/errors.ts";
import type {
  CreateShipRequest,
  FleetApi,
  FleetConfig,
  FleetStatus,
  InitOptions,
  Progress,
  SinkResult,
} from "../lib/fleet/api.ts";
import { ExeDevProvider } from "../lib/providers/exedev.ts";
import {
  checkVmName,
  fleetTag,
  namesAreGlobal,
  newFleetId,
  vmName,
} from "../lib/fleet/naming.ts";
import { providerFor, vmProviderSettings } from "../lib/providers/mod.ts";
import { SpritesProvider } from "../lib/providers/sprites.ts";
import { DEFAULT_API_URL } from "../lib/providers/sprites_api.ts";
import type { ProviderSettings, VmRecord } from "../lib/providers/types.ts";
import { call, lostCall } from "../lib/rpc/client.ts";
import type { RpcEvent } from "../lib/rpc/protocol.ts";
import { type Config, readConfig, writeConfig } from "../lib/state/config.ts";
import type { ShipRecord } from "../lib/state/fleet.ts";
import type { Identity } from "../lib/state/identity.ts";
import { paths } from "../lib/state/paths.ts";
import { remoteBin, retryLost } from "../lib/transport/run.ts";
import type { Transport } from "../lib/transport/types.ts";
import { validateName } from "../lib/validate.ts";
import type { SetupArgs } from "../lib/fleet/rpc.ts";

export async function requireConfig(home: string): Promise<Config> {
  const c = await readConfig(home);
  if (!c) {
    throw new UsageError(
      "no flagship configured: run 'ohcommodore init' first",
    );
  }
  return c;
}

/** The provider as the laptop reaches it (the user's own ssh for exe.dev). */
export function laptopProvider(
  c: Pick<Config, "flagship" | "identity_file">,
  home: string,
) {
  return providerFor(c.flagship.provider, { home }, {
    identityFile: c.identity_file,
  });
}

export function flagshipTransport(c: Config, home: string): Transport {
  return laptopProvider(c, home).transport({
    name: c.flagship.vm ?? c.flagship.name,
    ssh_dest: c.flagship.ssh_dest,
  });
}

/** FleetApi over RPC to the flagship. */
export class RemoteFleet implements FleetApi {
  readonly t: Transport;
  constructor(readonly config: Config, home: string) {
    this.t = flagshipTransport(config, home);
  }

  private call<T>(
    op: string,
    args: Record<string, unknown> = {},
    onProgress?: Progress,
    secrets?: Record<string, string>,
  ): Promise<T> {
    return call<T>(this.t, op, args, {
      secrets,
      onEvent: (e: RpcEvent) => {
        if (e.type === "progress") onProgress?.(e.message, e.subject);
      },
    });
  }

  async status(): Promise<FleetStatus> {
    try {
      return await this.call<FleetStatus>("fleet.status");
    } catch (e) {
      if (e instanceof OhcError && e.code === "unreachable") {
        const f = this.config.flagship;
        return {
          flagship: {
            name: f.name,
            provider: f.provider.kind,
            ssh_dest: f.ssh_dest,
            status: "down",
          },
          ships: [],
        };
      }
      throw e;
    }
  }
  listShips() {
    return this.call<ShipRecord[]>("ship.list");
  }
  createShip(
    req: CreateShipRequest,
    o: { secrets: Record<string, string>; onProgress: Progress },
  ) {
    return this.call<ShipRecord>(
      "ship.create",
      { ...req },
      o.onProgress,
      o.secrets,
    );
  }
  async checkCapacity(adding: number): Promise<void> {
    // Only sprites' plans have a limit: others pay no round trip.
    if (this.config.flagship.provider.kind !== "sprites") return;
    await this.call("fleet.capacity", { adding });
  }
  destroyShip(name: string, onProgress: Progress) {
    return this.call<ShipRecord>("ship.destroy", { name }, onProgress);
  }
  sink(onProgress: Progress) {
    return this.call<SinkResult>("fleet.sink", {}, onProgress);
  }
  getSettings() {
    return this.call<FleetConfig>("fleet.settings");
  }
  setSettings(
    set: Record<string, string>,
    unset: string[],
    onProgress: Progress,
  ) {
    return this.call<FleetConfig>(
      "fleet.configure",
      { set, unset },
      onProgress,
    );
  }
  recover(onProgress: Progress) {
    return this.call<ShipRecord[]>("fleet.recover", {}, onProgress);
  }
  async exec(
    name: string,
    argv: string[],
    io: Parameters<FleetApi["exec"]>[2],
  ): Promise<number> {
    const res = await call<{ code: number }>(this.t, "ship.exec", {
      name,
      argv,
    }, {
      input: io.input,
      onEvent: (e) => {
        if (e.type === "output") {
          io.onOutput(
            e.stream,
            Uint8Array.from(atob(e.data), (c) => c.charCodeAt(0)),
          );
        }
      },
    });
    return res.code;
  }
  ssh(name: string, argv: string[], tty: boolean): Promise<number> {
    return this.t.interactive(remoteBin("ship", "ssh", name, "--", ...argv), {
      tty,
    });
  }
}

/** Fleet ids drawn before `init` gives up on names the provider refuses. */
const INIT_TRIES = 5;

/** The provider refused a name because it is someone else's (or reserved). */
function nameTaken(e: unknown): boolean {
  return e instanceof OhcError && e.code === "name_taken";
}

/** Creates the flagship VM, installs ohcommodore and saves config.json. */
export async function initFlagship(
  o: InitOptions,
  home: string,
): Promise<Config> {
  validateName(o.name, "flagship name");
  // Where names are global, a name somebody holds means another fleet id.
  let fleetId = newFleetId();
  // The VM name it makes, checked before anything is asked or made.
  checkVmName(
    o.provider.kind,
    o.exactVmName ? null : fleetId,
    o.name,
    "flagship name",
  );
  if (await readConfig(home)) {
    throw new UsageError(
      `already initialized (${
        paths.config(home)
      }); run 'ohcommodore fleet sink --scuttle' first to start over`,
    );
  }
  // The flagship drives the provider from now on: it gets the sprites
  // token (exe.dev gets a key of its own, registered below), and the org
  // and API it is for are kept in the fleet's settings.
  const sprites = o.provider.kind === "sprites"
    ? await spritesLogin(o.provider, home)
    : null;
  if (sprites) o = { ...o, provider: sprites.settings };
  const provider = sprites
    ? new SpritesProvider(sprites.settings, { token: sprites.token })
    : providerFor(o.provider, { home }, { identityFile: o.identityFile });
  if (sprites) {
    o.onProgress(`using the sprites token from ${sprites.source}`, o.name);
  }
  if (provider instanceof ExeDevProvider) {
    o.onProgress("checking your exe.dev account", o.name);
    await provider.whoami(); // an unregistered key fails here, before any VM
  }
  o.onProgress("creating flagship VM", o.name);
  let vm: VmRecord;
  for (let attempt = 1;; attempt++) {
    const name = o.exactVmName
      ? o.name
      : vmName(o.provider.kind, fleetId, o.name);
    try {
      vm = await provider.create(name, {
        tags: [fleetTag(fleetId)],
        onProgress: (m) => o.onProgress(m, o.name),
      });
      break;
    } catch (e) {
      const retry = nameTaken(e) && !o.exactVmName &&
        namesAreGlobal(o.provider.kind) && attempt < INIT_TRIES;
      if (!retry) throw e;
      fleetId = newFleetId();
      o.onProgress(`${name} is taken; trying fleet id ${fleetId}`, o.name);
    }
  }
  try {
    const t = provider.transport(vm);
    o.onProgress("installing ohcommodore", o.name);
    // The flagship keeps the gzip'd binary to pass on to its ships.
    await deploy(t, deployOptions(home, new Settings(o.settings ?? {})), {
      keepCompressed: true,
    });
    const identity: Identity = {
      role: "commodore",
      name: o.name,
      flagship: o.name,
      fleet_id: fleetId,
      vm: vm.name,
      provider: vmProviderSettings(o.provider),
      ssh_dest: vm.ssh_dest,
      created_at: new Date().toISOString(),
    };
    o.onProgress("setting up commodore", o.name);
    const setup: SetupArgs = {
      identity,
      bootstrap: o.bootstrap,
      settings: o.settings ?? {},
    };
    // Idempotent: made again when only its connection was lost.
    const { public_key } = await retryLost(
      () =>
        call<{ public_key: string | null }>(t, "vm.setup", { ...setup }, {
          secrets: sprites ? { SPRITE_TOKEN: sprites.token } : {},
        }),
      lostCall,
    );
    if (public_key && provider instanceof ExeDevProvider) {
      o.onProgress("registering the flagship's key with exe.dev", o.name);
      await provider.registerKey(public_key);
    }
    o.onProgress("starting daemon", o.name);
    await startRemoteDaemon(t);
    const config: Config = {
      version: 1,
      fleet_id: fleetId,
      flagship: {
        name: o.name,
        ...(vm.name !== o.name ? { vm: vm.name } : {}),
        ssh_dest: vm.ssh_dest,
        provider: o.provider,
        created_at: identity.created_at,
      },
      ...(o.identityFile ? { identity_file: o.identityFile } : {}),
    };
    await writeConfig(config, home);
    return config;
  } catch (e) {
    await provider.destroy(vm.name).catch(() => {});
    throw e;
  }
}

/**
 * The sprites token for init, before any VM exists: $SPRITE_TOKEN or the
 * `sprite` CLI's login, with the org and API it is for.
 */
async function spritesLogin(
  s: Extract<ProviderSettings, { kind: "sprites" }>,
  home: string,
): Promise<{ settings: typeof s; token: string; source: string }> {
  const { findSpriteToken, NO_TOKEN_HINT } = await import(
    "../lib/providers/sprites_token.ts"
  );
  const found = await findSpriteToken({ org: s.org, home });
  if (!found) {
    throw new OhcError(
      "sprites_no_token",
      `no sprites token found${s.org ? ` for org ${s.org}` : ""}`,
      NO_TOKEN_HINT,
    );
  }
  const org = s.org ?? found.org;
  return {
    settings: {
      kind: "sprites",
      ...(org ? { org } : {}),
      ...(found.url !== DEFAULT_API_URL ? { api_url: found.url } : {}),
    },
    token: found.token,
    source: found.source,
  };
}

/** Destroys the flagship VM and forgets it. */
export async function scuttle(
  c: Config,
  home: string,
  onProgress: Progress,
): Promise<void> {
  onProgress("scuttling flagship", c.flagship.name);
  await laptopProvider(c, home).destroy(c.flagship.vm ?? c.flagship.name);
  await Deno.remove(paths.config(home)).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}
