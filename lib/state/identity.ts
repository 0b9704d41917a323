import type { ProviderSettings } from "../providers/types.ts";
import { expectObject, optionalString, requireString } from "./schema.ts";
import { readJsonFile } from "./atomic.ts";
import { paths } from "./paths.ts";

export type Role = "local" | "commodore" | "captain";

/**
 * `~/.ohcommodore/identity.json`: what this machine is. No file means the
 * user's own machine (role `local`).
 */
export interface Identity {
  role: "commodore" | "captain";
  /** This machine's name in the fleet. */
  name: string;
  /** The flagship this machine belongs to (its own name for the commodore). */
  flagship: string;
  /** The fleet's id (fleet/naming.ts); absent in fleets made before ids. */
  fleet_id?: string | null;
  /** This machine's VM name at the provider, when not `name`. */
  vm?: string | null;
  provider: ProviderSettings;
  /** How the laptop reaches this machine (set for the commodore). */
  ssh_dest?: string | null;
  /** Captains: the repo spec they were created from, or null. */
  repo?: string | null;
  /** Captains: the checkout directory relative to home, or null. */
  repo_dir?: string | null;
  created_at: string;
}

export function parseIdentity(v: unknown, file: string): Identity {
  const o = expectObject(v, file);
  const role = requireString(o, "role", file);
  if (role !== "commodore" && role !== "captain") {
    throw new TypeError(`"role" must be commodore or captain, not "${role}"`);
  }
  return {
    role,
    name: requireString(o, "name", file),
    flagship: requireString(o, "flagship", file),
    fleet_id: optionalString(o, "fleet_id", file) ?? null,
    vm: optionalString(o, "vm", file) ?? null,
    provider: parseProviderSettings(o.provider, file),
    ssh_dest: optionalString(o, "ssh_dest", file) ?? null,
    repo: optionalString(o, "repo", file) ?? null,
    repo_dir: optionalString(o, "repo_dir", file) ?? null,
    created_at: requireString(o, "created_at", file),
  };
}

export function parseProviderSettings(
  v: unknown,
  file: string,
): ProviderSettings {
  const o = expectObject(v, `${file} (provider)`);
  const kind = requireString(o, "kind", file);
  switch (kind) {
    case "local":
      return { kind, root: requireString(o, "root", file) };
    case "exedev":
      return {
        kind,
        lobby: optionalString(o, "lobby", file),
        ssh_config: optionalString(o, "ssh_config", file),
      };
    case "sprites":
      return {
        kind,
        org: optionalString(o, "org", file),
        api_url: optionalString(o, "api_url", file),
      };
    default:
      throw new TypeError(`unknown provider kind "${kind}"`);
  }
}

export async function readIdentity(
  home: string,
): Promise<Identity | null> {
  return await readJsonFile(paths.identity(home), parseIdentity);
}

export async function readRole(home: string): Promise<Role> {
  return (await readIdentity(home))?.role ?? "local";
}
