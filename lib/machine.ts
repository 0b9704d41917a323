/**
 * This machine as code sees it: its home, what it is (the identity; none
 * on the user's own machine) and its settings, read once and passed down,
 * so nothing below needs the process's HOME.
 */
import { Settings } from "./settings.ts";
import { type Identity, readIdentity, type Role } from "./state/identity.ts";

export interface Machine {
  home: string;
  identity: Identity | null;
  role: Role;
  settings: Settings;
}

export async function readMachine(
  home: string,
  env: (k: string) => string | undefined = (k) => Deno.env.get(k),
): Promise<Machine> {
  const identity = await readIdentity(home);
  return {
    home,
    identity,
    role: identity?.role ?? "local",
    settings: identity ? await Settings.load(home, env) : new Settings({}, env),
  };
}
