/**
 * The home of this process, from its environment. Read only where a process
 * starts (main.ts, lib/cli/run.ts); everything below takes the home it
 * is given (lib/machine.ts), so a test gives each machine its own without
 * touching the process's HOME. scripts/check_imports.ts holds that line.
 */
export function processHome(): string {
  const h = Deno.env.get("HOME");
  if (!h) throw new Error("HOME is not set");
  return h;
}
