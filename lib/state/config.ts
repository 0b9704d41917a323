import type { ProviderSettings } from "../providers/types.ts";
import { parseProviderSettings } from "./identity.ts";
import { readJsonFile, writeJsonAtomic } from "./atomic.ts";
import { paths } from "./paths.ts";
import { expectObject, requireString } from "./schema.ts";

/** `~/.ohcommodore/config.json` on the laptop: which flagship, where. */
export interface Config {
  version: 1;
  flagship: {
    name: string;
    ssh_dest: string;
    provider: ProviderSettings;
    created_at: string;
  };
}

export function parseConfig(v: unknown, file: string): Config {
  const o = expectObject(v, file);
  const f = expectObject(o.flagship, `${file} (flagship)`);
  return {
    version: 1,
    flagship: {
      name: requireString(f, "name", file),
      ssh_dest: requireString(f, "ssh_dest", file),
      provider: parseProviderSettings(f.provider, file),
      created_at: requireString(f, "created_at", file),
    },
  };
}

export async function readConfig(home = paths.home()): Promise<Config | null> {
  const file = paths.config(home);
  return await readJsonFile(
    file,
    parseConfig,
    `fix or remove ${file}; if the flagship still exists, run 'ohcommodore init' again after removing it`,
  );
}

export async function writeConfig(c: Config, home = paths.home()) {
  await writeJsonAtomic(paths.config(home), c);
}
