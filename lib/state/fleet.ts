import type { VmStatus } from "../providers/types.ts";
import { readJsonFile, updateJsonFile } from "./atomic.ts";
import { paths } from "./paths.ts";
import { expectObject, optionalString, requireString } from "./schema.ts";

/** A ship's registry entry. `creating` reserves the name while provisioning. */
export interface ShipRecord {
  name: string;
  /** The VM's name at the provider, when not `name` (fleet/naming.ts). */
  vm?: string;
  repo: string | null;
  repo_dir: string | null;
  ssh_dest: string;
  status: VmStatus | "creating";
  created_at: string;
  error?: string;
}

/** The ship's VM as its provider names it. */
export const shipVm = (s: Pick<ShipRecord, "name" | "vm" | "ssh_dest">) => ({
  name: s.vm ?? s.name,
  ssh_dest: s.ssh_dest,
});

/** `~/.ohcommodore/fleet.json` on the flagship. Rebuildable: `fleet recover`. */
export interface Fleet {
  version: 1;
  ships: Record<string, ShipRecord>;
  updated_at: string;
}

const STATUSES = new Set([
  "creating",
  "pending",
  "running",
  "stopped",
  "failed",
  "building",
  "unknown",
]);

export function parseFleet(v: unknown, file: string): Fleet {
  const o = expectObject(v, file);
  const ships = expectObject(o.ships ?? {}, `${file} (ships)`);
  const out: Fleet = {
    version: 1,
    ships: {},
    updated_at: optionalString(o, "updated_at", file) ?? "",
  };
  for (const [name, raw] of Object.entries(ships)) {
    const s = expectObject(raw, `${file} (ships.${name})`);
    const status = requireString(s, "status", file);
    if (!STATUSES.has(status)) {
      throw new TypeError(`ships.${name}.status "${status}" is not a status`);
    }
    const vm = optionalString(s, "vm", file);
    out.ships[name] = {
      name,
      ...(vm ? { vm } : {}),
      repo: optionalString(s, "repo", file) ?? null,
      repo_dir: optionalString(s, "repo_dir", file) ?? null,
      ssh_dest: optionalString(s, "ssh_dest", file) ?? "",
      status: status as ShipRecord["status"],
      created_at: requireString(s, "created_at", file),
      error: optionalString(s, "error", file),
    };
  }
  return out;
}

const emptyFleet = (): Fleet => ({ version: 1, ships: {}, updated_at: "" });
const RECOVER = "rebuild it with: ohcommodore fleet recover";

export async function readFleet(home: string): Promise<Fleet> {
  return (await readJsonFile(paths.fleet(home), parseFleet, RECOVER)) ??
    emptyFleet();
}

/** Read-modify-write of fleet.json under its lock. */
export async function updateFleet<R>(
  home: string,
  fn: (f: Fleet) => R | Promise<R>,
): Promise<R> {
  return await updateJsonFile(
    paths.fleet(home),
    parseFleet,
    emptyFleet,
    async (f) => {
      const r = await fn(f);
      f.updated_at = new Date().toISOString();
      return r;
    },
    RECOVER,
  );
}
