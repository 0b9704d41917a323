/**
 * VM names on providers whose names are global. exe.dev's names are shared
 * by every account, so any word a person would pick is taken: a fleet gets a
 * random id at `init`, and each of its VMs is named `<fleet id>-<name>`
 * there, while people keep the short names (`alpha`). The prefix is also how
 * sweeps and `fleet recover` tell this fleet's VMs from the account's others.
 * Providers with private names (local folders, a sprites org) keep the
 * short name as the VM name.
 */
import { UsageError } from "../errors.ts";
import type { ProviderKind } from "../providers/types.ts";
import { NAME_MAX } from "../validate.ts";
import {
  exeDevNewNameError,
  RESERVED_NAME_MESSAGE,
} from "../providers/exedev_lobby.ts";

/** A letter, then 5 of [a-z0-9]: a valid start of an exe.dev name. */
export const FLEET_ID_RE = /^[a-z][a-z0-9]{5}$/;

export function newFleetId(): string {
  const letters = "abcdefghijklmnopqrstuvwxyz";
  const chars = letters + "0123456789";
  const r = crypto.getRandomValues(new Uint8Array(6));
  // The slight modulo bias does not matter for a name.
  return letters[r[0] % 26] +
    [...r.slice(1)].map((b) => chars[b % 36]).join("");
}

/** Whether this provider's VM names are shared beyond the fleet. */
export function namesAreGlobal(kind: ProviderKind): boolean {
  return kind === "exedev";
}

/**
 * The VM name for the fleet's machine `name`. A fleet made before fleet ids
 * existed (no id) keeps its plain names.
 */
export function vmName(
  kind: ProviderKind,
  fleetId: string | null | undefined,
  name: string,
): string {
  return namesAreGlobal(kind) && fleetId ? `${fleetId}-${name}` : name;
}

/**
 * Refuses (exit 2) a machine name whose VM name the provider could not
 * take: too long once the fleet id is in front, or (exe.dev) refused by its
 * shape or reserved. `name` itself already passed validateName.
 */
export function checkVmName(
  kind: ProviderKind,
  fleetId: string | null | undefined,
  name: string,
  what = "ship name",
): string {
  const vm = vmName(kind, fleetId, name);
  if (vm.length > NAME_MAX) {
    throw new UsageError(
      `${what} "${name}" is too long for ${kind}: its VM name ${vm} would be ${vm.length} characters; the limit is ${NAME_MAX} (so ${
        NAME_MAX - (vm.length - name.length)
      } for the ${what})`,
    );
  }
  if (kind === "exedev") {
    const bad = exeDevNewNameError(vm);
    if (bad === RESERVED_NAME_MESSAGE) {
      throw new UsageError(
        `${what} "${name}" cannot name an exe.dev VM: exe.dev reserves ${vm} (names ending in -pNNN or -portNNN, or holding "exelet"); pick another`,
      );
    }
    if (bad !== null) throw new UsageError(`${what} "${name}": ${bad}`);
  }
  return vm;
}

/** Whether a VM of the provider's account belongs to this fleet. */
export function isFleetVm(
  kind: ProviderKind,
  fleetId: string | null | undefined,
  vm: string,
): boolean {
  return !namesAreGlobal(kind) || !fleetId || vm.startsWith(`${fleetId}-`);
}

/** The tag exe.dev VMs of this fleet carry (`ls` and the web UI show it). */
export const fleetTag = (fleetId: string) => `ohcommodore-${fleetId}`;
