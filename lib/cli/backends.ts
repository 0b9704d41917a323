/**
 * What the CLI needs from the role implementations under roles/, as
 * interfaces: lib/ never imports roles/ (the roles import lib/), so main.ts
 * hands the CLI these, built by roles/cli.ts.
 */
import type { FleetApi, InitOptions, Progress } from "../fleet/api.ts";
import type { RpcHandlers } from "../rpc/stream.ts";
import type { Config } from "../state/config.ts";
import type { Identity } from "../state/identity.ts";
import type { Transport } from "../transport/types.ts";

/** The user's machine: the flagship reached over its transport. */
export interface LaptopBackend {
  /** config.json, or a UsageError saying to run init. */
  requireConfig(): Promise<Config>;
  fleet(config: Config): FleetApi;
  transport(config: Config): Transport;
  init(o: InitOptions): Promise<Config>;
  /** Destroys the flagship VM and forgets it. */
  scuttle(config: Config, onProgress: Progress): Promise<void>;
  /** exedev: the account the user's own ssh setup reaches. */
  exeDevAccount(config: Config): Promise<{ email: string }>;
}

/** The flagship acting on its own behalf. */
export interface FlagshipBackend {
  fleet: FleetApi;
  /** The operations a per-call process answers (not the daemon's). */
  handlers: RpcHandlers;
}

/** Each for this machine's home (lib/machine.ts). */
export interface Backends {
  laptop(home: string): Promise<LaptopBackend>;
  flagship(self: Identity, home: string): Promise<FlagshipBackend>;
}
