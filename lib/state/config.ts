import type { ProviderSettings } from "../providers/types.ts";
import { parseProviderSettings } from "./identity.ts";
import { readJsonFile, writeJsonAtomic } from "./atomic.ts";
import { paths } from "./paths.ts";
import { expectObject, optionalString, requireString } from "./schema.ts";

/** `~/.ohcommodore/config.json` on the laptop: which flagship, where. */
export interface Config {
  version: 1;
  /** The fleet's random id; its VMs' names derive from it (fleet/naming.ts). */
  fleet_id?: string;
  flagship: {
    name: string;
    /** The flagship's VM name at the provider, when not `name`. */
    vm?: string;
    ssh_dest: string;
    provider: ProviderSettings;
    created_at: string;
  };
  /**
   * exedev: the private key the laptop offers (`init --identity`); without
   * it, the laptop's own OpenSSH setup (config, agent, default keys).
   */
  identity_file?: string;
}

export function parseConfig(v: unknown, file: string): Config {
  const o = expectObject(v, file);
  const f = expectObject(o.flagship, `${file} (flagship)`);
  const fleetId = optionalString(o, "fleet_id", file);
  const vm = optionalString(f, "vm", file);
  const identityFile = optionalString(o, "identity_file", file);
  return {
    version: 1,
    ...(fleetId ? { fleet_id: fleetId } : {}),
    flagship: {
      name: requireString(f, "name", file),
      ...(vm ? { vm } : {}),
      ssh_dest: requireString(f, "ssh_dest", file),
      provider: parseProviderSettings(f.provider, file),
      created_at: requireString(f, "created_at", file),
    },
    ...(identityFile ? { identity_file: identityFile } : {}),
  };
}

export async function readConfig(home: string): Promise<Config | null> {
  const file = paths.config(home);
  return await readJsonFile(
    file,
    parseConfig,
    `fix or remove ${file}; if the flagship still exists, run 'ohcommodore init' again after removing it`,
  );
}

export async function writeConfig(c: Config, home: string) {
  await writeJsonAtomic(paths.config(home), c);
}
