import type { Transport } from "../transport/types.ts";

/** VM statuses, as exe.dev reports them (sprites' cold/warm/suspended map to running). */
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
    /** The sprites organization the token is for (--org, $SPRITE_ORG, or the CLI's selection). */
    org?: string;
    /** The HTTP API, when not https://api.sprites.dev ($SPRITES_API_URL at init). */
    api_url?: string;
  };

export interface Provider {
  readonly kind: ProviderKind;
  /** Creates the VM and waits until its transport answers. */
  create(
    name: string,
    opts?: {
      onProgress?: (msg: string) => void;
      /** Labels for the VM where the provider has them (exe.dev tags, sprites labels). */
      tags?: string[];
    },
  ): Promise<VmRecord>;
  /** Destroys the VM; a VM that does not exist is not an error. */
  destroy(name: string): Promise<void>;
  list(): Promise<VmRecord[]>;
  /**
   * The VMs created with this tag, where the provider can list by tag
   * without waking a VM of the account (sprites' labels).
   */
  listTagged?(tag: string): Promise<VmRecord[]>;
  transport(vm: Pick<VmRecord, "name" | "ssh_dest">): Transport;
  /**
   * How many VMs the account runs at once, where the provider says
   * (sprites' plans); undefined means no known limit.
   */
  runningLimit?(): Promise<number | undefined>;
}
