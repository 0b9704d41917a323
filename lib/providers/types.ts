import type { Transport } from "../transport/types.ts";

/** VM statuses, as exe.dev reports them (sprites' cold/warm map to running). */
export type VmStatus =
  | "pending"
  | "running"
  | "stopped"
  | "failed"
  | "building"
  | "unknown";

/** What every provider returns for a VM. */
export interface VmRecord {
  name: string;
  /** How to reach it: `host`, `user@host`, a sprite name, or a folder. */
  ssh_dest: string;
  status: VmStatus;
  provider: ProviderKind;
  /** Provider-specific extras, kept verbatim. */
  data?: Record<string, unknown>;
}

export type ProviderKind = "local" | "exedev" | "sprites";

/**
 * Where a provider lives and how to reach it. Stored in config.json and in
 * the flagship's identity, so the flagship creates ships the same way.
 */
export type ProviderSettings =
  | { kind: "local"; root: string }
  | {
    kind: "exedev";
    /** The lobby host for `ssh <lobby> new|ls|rm|…`. Default "exe.dev". */
    lobby?: string;
    /**
     * An OpenSSH config file passed as `-F` to every ssh (lobby and VMs),
     * instead of ~/.ssh/config; lets tests map exe.dev and *.exe.xyz to
     * loopback.
     */
    ssh_config?: string;
  }
  | {
    kind: "sprites";
    /** The sprites organization (`-o`); else $SPRITE_ORG or $SPRITES_ORG. */
    org?: string;
    /** The `sprite` CLI to run; default `sprite` on PATH. */
    sprite_bin?: string;
  };

export interface Provider {
  readonly kind: ProviderKind;
  /** Creates the VM and waits until its transport answers. */
  create(
    name: string,
    opts?: { onProgress?: (msg: string) => void },
  ): Promise<VmRecord>;
  /** Destroys the VM; a VM that does not exist is not an error. */
  destroy(name: string): Promise<void>;
  list(): Promise<VmRecord[]>;
  transport(vm: Pick<VmRecord, "name" | "ssh_dest">): Transport;
}
