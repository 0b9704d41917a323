/** The exe.dev emulator's state and knobs (shared by lobby, store, module). */

export type VmStatus =
  | "pending"
  | "running"
  | "stopped"
  | "failed"
  | "building"
  | "unknown";

export interface Account {
  email: string;
  region: string;
  regionDisplay: string;
}

export interface KeyRecord {
  id: number;
  /** Canonical `type base64`. */
  publicKey: string;
  fingerprint: string;
  name: string;
  addedAt: string;
}

export interface VmRecord {
  name: string;
  /** Allocation index: decides the loopback address. */
  index: number;
  address: string;
  /** The VM sshd's port; 0 until it was started. */
  port: number;
  image: string;
  command: string;
  tags: string[];
  comment: string;
  env: string[];
  status: VmStatus;
  createdAt: string;
  /** pid of the `unshare` process that holds the VM's namespaces. */
  pid?: number;
  /** `pid:[inode]` of the VM's pid namespace. */
  pidNs?: string;
}

export interface State {
  account: Account;
  nextKeyNumber: number;
  nextKeyId: number;
  nextVmIndex: number;
  keys: KeyRecord[];
  vms: VmRecord[];
  /** The next this many `new`s find their name held by another account. */
  heldNext?: number;
}

/** Behaviour switches, read by the lobby on every command. */
export interface Knobs {
  /** Sleep this long inside every `new` (after the name is reserved). */
  delayMs: number;
  /**
   * New VMs report `pending` and their sshd only starts this long after
   * `new` returned, or as soon as the knob is set back to 0; then they
   * become `running`.
   */
  pendingMs: number;
  /** `new` fails (for all names, or for these names) with `failMessage`. */
  failCreate: boolean | string[];
  failMessage: string;
  /** These VMs are created but end up `failed`, with no sshd. */
  failedVms: string[];
  /** ssh_dest is `vm+<name>@vm.exe.xyz` instead of `<name>.exe.xyz`. */
  vmPlusDest: boolean;
  /** More VMs than this: "You have reached the maximum number of VMs…". */
  maxVms: number;
  /** Environment for sessions on VMs created from now on (sshd SetEnv). */
  vmEnv: Record<string, string>;
  /**
   * VMs started from now on hold only the OS (tests/helpers/bare_root.ts):
   * no host deno, node, checkout or caches; a session sees the VM's root.
   */
  bareVms: boolean;
  /**
   * Names other accounts hold (exe.dev's names are global): `true` holds
   * every common word, i.e. one word of letters with an optional number
   * (`flagship`, `alpha`, `ship-1`), as on the real service; a list holds
   * just those; `false` none.
   */
  heldByOthers: boolean | string[];
}

/** Whether another account holds `name` (see Knobs.heldByOthers). */
export function heldByOthers(knobs: Knobs, name: string): boolean {
  const h = knobs.heldByOthers;
  if (Array.isArray(h)) return h.includes(name);
  return h && /^[a-z]+(-?[0-9]+)?$/.test(name);
}

export const DEFAULT_KNOBS: Knobs = {
  delayMs: 0,
  pendingMs: 0,
  failCreate: false,
  failMessage: "The server is temporarily unreachable, please try again.",
  failedVms: [],
  vmPlusDest: false,
  maxVms: 1000,
  vmEnv: {},
  bareVms: false,
  heldByOthers: true,
};

export function emptyState(account?: Partial<Account>): State {
  return {
    account: {
      email: account?.email ?? "tester@example.com",
      region: account?.region ?? "lon",
      regionDisplay: account?.regionDisplay ?? "London, UK",
    },
    nextKeyNumber: 1,
    nextKeyId: 1,
    nextVmIndex: 1,
    keys: [],
    vms: [],
  };
}

/** Loopback address of VM number `index` (1-based): 127.0.1.1, 127.0.1.2, … */
export function vmAddress(index: number): string {
  const i = index - 1;
  return `127.0.${1 + Math.floor(i / 254) % 254}.${(i % 254) + 1}`;
}

export const BOX_HOST = "exe.xyz";

export function sshDestFor(name: string, vmPlus: boolean): string {
  return vmPlus ? `vm+${name}@vm.${BOX_HOST}` : `${name}.${BOX_HOST}`;
}

/** `name.exe.xyz` → `name` (exe.dev's normalizeBoxName). */
export function normalizeVmName(arg: string): string {
  const suffix = `.${BOX_HOST}`;
  if (arg.endsWith(suffix) && arg.length > suffix.length) {
    const label = arg.slice(0, -suffix.length);
    if (!label.includes(".")) return label;
  }
  return arg;
}
