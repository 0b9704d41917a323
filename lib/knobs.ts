/**
 * Knobs of one process, taken from its environment only (they are not the
 * fleet's settings and never travel to VMs): where things are, and what
 * tests and developers turn off. Declared here so every one is found in
 * one place; read through `knob`/`knobOn`.
 */
export const KNOBS = {
  OHCOMMODORE_BINARY:
    "the ohcommodore executable installed on VMs and run as the daemon (the dev artifact sets it to itself)",
  OHCOMMODORE_NO_SYSTEMD:
    "set: the daemon is never a systemd user unit (its own supervisor runs it)",
  OHCOMMODORE_NO_DOTENV: "set: no .env file is read",
  OHCOMMODORE_LOCAL_ROOT:
    "init --provider local: the folder holding the VMs (default ~/.ohcommodore/local)",
  OHCOMMODORE_SSH_CONFIG:
    "init --provider exedev: an OpenSSH config for every connection",
  OHCOMMODORE_GITHUB_URL:
    "GitHub's base URL for owner/repo clones (default https://github.com)",
  OHCOMMODORE_GITHUB_API:
    "GitHub's API base for access checks (default https://api.github.com)",
} as const;

export type KnobName = keyof typeof KNOBS;

/** Where a process's environment is read: the real one, or a test's. */
export type Env = (k: string) => string | undefined;

/** The knob's value, or undefined when it is unset or empty. */
export function knob(
  name: KnobName,
  env: Env = (k) => Deno.env.get(k),
): string | undefined {
  return env(name) || undefined;
}

/** Whether a set/unset knob (OHCOMMODORE_NO_*) is set. */
export function knobOn(name: KnobName, env: Env = (k) => Deno.env.get(k)) {
  return knob(name, env) !== undefined;
}
