import type { Bootstrap } from "../bootstrap.ts";
import type { ShipRecord } from "../state/fleet.ts";
import type { ProviderKind, ProviderSettings } from "../providers/types.ts";

/**
 * What the fleet commands need from the flagship. The commodore implements
 * it directly; the laptop implements it by RPC to the flagship. Commands
 * are written once against this interface.
 */
export interface FleetApi {
  status(): Promise<FleetStatus>;
  listShips(): Promise<ShipRecord[]>;
  createShip(
    req: CreateShipRequest,
    opts: { secrets: Record<string, string>; onProgress: Progress },
  ): Promise<ShipRecord>;
  /**
   * Refuses, before anything is made, `adding` more ships than the
   * provider's plan runs at once (the flagship and every ship count).
   */
  checkCapacity(adding: number): Promise<void>;
  destroyShip(nameOrPrefix: string, onProgress: Progress): Promise<ShipRecord>;
  sink(onProgress: Progress): Promise<SinkResult>;
  recover(onProgress: Progress): Promise<ShipRecord[]>;
  exec(
    name: string,
    argv: string[],
    io: {
      input?: ReadableStream<Uint8Array>;
      onOutput: (stream: "stdout" | "stderr", data: Uint8Array) => void;
    },
  ): Promise<number>;
  /** Attaches this terminal to a shell (or argv) on the ship. */
  ssh(name: string, argv: string[], tty: boolean): Promise<number>;
  /** The fleet's VM settings (lib/settings.ts) as the flagship holds them. */
  getSettings(): Promise<FleetConfig>;
  /**
   * Sets (and unsets) fleet settings on the flagship and every ship; values
   * are checked first, and nothing changes when one is bad.
   */
  setSettings(
    set: Record<string, string>,
    unset: string[],
    onProgress: Progress,
  ): Promise<FleetConfig>;
}

export interface FleetConfig {
  /** The settings set for the fleet (the rest have their defaults). */
  settings: Record<string, string>;
  /** Ships that could not be told (they keep their old values). */
  failed: { name: string; error: string }[];
}

export type Progress = (message: string, subject?: string) => void;

export interface CreateShipRequest {
  /** owner/repo, URL, absolute path, or a bare name for an empty ship. */
  spec: string;
  /** The ship's name; derived from the repo when absent. */
  name?: string;
  /** Where to clone from, as the laptop resolved it (owner/repo → URL). */
  clone_url?: string;
  /** cloudinit settings from the laptop; else the flagship's own. */
  bootstrap?: Bootstrap;
  /** VM settings from the laptop's environment, over the fleet's. */
  settings?: Record<string, string>;
}

export interface FleetStatus {
  flagship: {
    name: string;
    provider: ProviderKind;
    ssh_dest: string;
    /** Whether the flagship answered at all. */
    status: "up" | "down";
    /** Its daemon (the links, the queue): absent when the flagship is down. */
    daemon?: "up" | "down";
  };
  ships: ShipView[];
}

/** A ship as `fleet status` shows it: the registry entry and its link. */
export interface ShipView extends ShipRecord {
  link: {
    state: "connecting" | "up" | "down" | "unknown";
    last_heartbeat: string | null;
  };
}

export interface SinkResult {
  destroyed: string[];
  failed: { name: string; error: string }[];
}

/** `init`: the flagship to make (roles/local.ts makes it). */
export interface InitOptions {
  provider: ProviderSettings;
  /** The flagship's name in the fleet. */
  name: string;
  /**
   * The user chose the name (`--name`): the VM gets exactly it, no fleet
   * prefix and no second try when it is taken.
   */
  exactVmName?: boolean;
  /** exedev: offer this key only (`--identity`), not the user's ssh setup. */
  identityFile?: string;
  bootstrap: Bootstrap;
  /** The fleet's VM settings (lib/settings.ts), from the laptop's env. */
  settings?: Record<string, string>;
  onProgress: Progress;
}
