/**
 * Where a root captain keeps the checkouts its agent user works in:
 * `/var/lib/ohcommodore/checkouts/<ship>-<hash of the captain's HOME>/`,
 * every directory on the way root's and passable (0711), nothing listable.
 * The agent user then reaches its work tree without passing through the
 * captain's HOME, or anything above it (a local VM's HOME sits in the
 * laptop user's 0700 home); `~/voyage-<id>` is a link to it. Small and
 * free of other imports: the local provider removes it with the VM.
 */
export const AGENT_WORK_ROOT = "/var/lib/ohcommodore/checkouts";

/** The directory for the checkouts of the captain whose HOME is `home`. */
export async function agentWorkDir(home: string): Promise<string> {
  const h = home.replace(/\/+$/, "") || "/";
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(h)),
  );
  const hex = [...digest.slice(0, 6)].map((b) =>
    b.toString(16).padStart(2, "0")
  ).join("");
  const base = (h.split("/").pop() || "root").replace(/[^A-Za-z0-9._-]/g, "_");
  return `${AGENT_WORK_ROOT}/${base}-${hex}`;
}

/** Removes a captain's agent checkouts (a VM's destroy); quiet when none. */
export async function removeAgentWork(home: string): Promise<void> {
  try {
    await Deno.remove(await agentWorkDir(home), { recursive: true });
  } catch { /* none, or not ours to remove */ }
}
