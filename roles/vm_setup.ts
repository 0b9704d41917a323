/**
 * `vm.setup`: makes a fresh VM a commodore or a captain (its settings, the
 * token, cloudinit, the clone, the flagship's key, its identity).
 */
import { parseAssignments, writeSettingsFile } from "../lib/settings.ts";
import { OhcError, UsageError } from "../lib/errors.ts";
import type { RpcHandlers } from "../lib/rpc/server.ts";
import { writeFileAtomic, writeJsonAtomic } from "../lib/state/atomic.ts";
import { type Identity, readIdentity } from "../lib/state/identity.ts";
import { paths } from "../lib/state/paths.ts";
import { type Bootstrap, runBootstrap } from "../lib/bootstrap.ts";
import { gitCredentialArgs } from "../lib/git/credential.ts";
import { git } from "../lib/git/exec.ts";

/** A settings object from a request: every entry checked (exit 2 if bad). */
export function settingsArg(v: unknown): Record<string, string> {
  if (v === undefined || v === null) return {};
  if (typeof v !== "object" || Array.isArray(v)) {
    throw new UsageError("settings must be an object");
  }
  return parseAssignments(
    Object.entries(v).map(([k, x]) => `${k}=${String(x)}`),
  );
}

export async function setup(
  home: string,
  { args, secrets, emit }: Parameters<RpcHandlers[string]>[0],
  wanted: Identity,
): Promise<{ identity: Identity; public_key: string | null }> {
  const current = await readIdentity(home);
  if (
    current &&
    (current.role !== wanted.role || current.name !== wanted.name)
  ) {
    throw new OhcError(
      "already_setup",
      `this machine is already ${current.role} "${current.name}"`,
      "destroy it first, or choose another name",
    );
  }
  if (secrets.SPRITE_TOKEN && wanted.role === "commodore") {
    await writeFileAtomic(
      `${paths.secrets(home)}/sprite_token`,
      secrets.SPRITE_TOKEN,
    );
  }
  let tokenFile: string | null = null;
  if (secrets.GH_TOKEN) {
    tokenFile = `${paths.secrets(home)}/gh_token`;
    await writeFileAtomic(tokenFile, secrets.GH_TOKEN);
  }
  await writeSettingsFile(settingsArg(args.settings), home);
  const bootstrap = args.bootstrap as Bootstrap | null | undefined;
  if (bootstrap) {
    emit({ type: "progress", message: "running cloudinit/init.sh" });
    await runBootstrap({
      home,
      bootstrap,
      role: wanted.role,
      targetRepo: wanted.repo ?? null,
      tokenFile,
      offlineByDefault: wanted.provider.kind === "local",
      onLine: (line) => {
        if (/^==> (step \S+ failed|init\.sh finished)/.test(line)) {
          emit({ type: "progress", message: line.slice(4) });
        }
      },
    });
  }
  const clone = args.clone as { url: string; dir: string } | null | undefined;
  if (clone) {
    if (!/^[A-Za-z0-9._-]+$/.test(clone.dir) || clone.dir.startsWith(".")) {
      throw new UsageError(`bad checkout directory "${clone.dir}"`);
    }
    await cloneRepo(home, clone.url, clone.dir, emit);
  }
  // The flagship holds the one key that reaches the provider account and
  // the ships; it is made here, on the flagship, and never leaves it (the
  // laptop registers its public half). Ships get no key at all.
  let publicKey: string | null = null;
  if (wanted.role === "commodore" && wanted.provider.kind === "exedev") {
    const { ensureKey } = await import("../lib/providers/ssh_keys.ts");
    publicKey = (await ensureKey(home, { name: wanted.name })).publicKey;
  }
  // The flagship passes the laptop's bootstrap settings on to its ships.
  if (wanted.role === "commodore" && bootstrap) {
    await writeJsonAtomic(paths.bootstrap(home), bootstrap);
  }
  await writeJsonAtomic(paths.identity(home), wanted);
  return { identity: wanted, public_key: publicKey };
}

async function cloneRepo(
  home: string,
  url: string,
  dir: string,
  emit: Parameters<RpcHandlers[string]>[0]["emit"],
): Promise<void> {
  const target = `${home}/${dir}`;
  try {
    await Deno.stat(`${target}/.git`);
    return; // already cloned: setup is idempotent
  } catch { /* clone it */ }
  emit({ type: "progress", message: `cloning ${url}` });
  // The hardened runner (lib/git/exec.ts): no hooks, no ext:: transport,
  // no prompt; the machine's global config (its HOME's) still says how to
  // reach the URL, and the credential helper reads the machine's token.
  const res = await git(
    [...gitCredentialArgs(), "clone", "--quiet", "--", url, target],
    { cwd: home, isolated: false, allowFail: true, env: { HOME: home } },
  );
  if (res.code !== 0) {
    await Deno.remove(target, { recursive: true }).catch(() => {});
    const why = res.stderr.trim().split("\n").pop();
    throw new OhcError(
      "clone_failed",
      `git clone ${url} failed: ${why}`,
      "check the repository URL and that GH_TOKEN can read it",
    );
  }
}
