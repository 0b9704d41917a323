import { paths } from "../state/paths.ts";
/**
 * This machine's SSH identity for the fleet: the key that reaches the
 * provider account (exe.dev's lobby) and the ships. Only the laptop (for
 * its flagship) and the flagship (for its ships) hold one; ships never do.
 *
 * Layout, relative to the machine's home:
 *
 *   ~/.ohcommodore/ssh/              0700
 *   ~/.ohcommodore/ssh/id_ed25519    0600  (no passphrase: daemons use it)
 *   ~/.ohcommodore/ssh/id_ed25519.pub
 *   ~/.ohcommodore/ssh/known_hosts   hosts are added on first use
 *
 * ControlMaster sockets live in a short per-user directory under /tmp
 * (`/tmp/ohc-<uid>-<hash of home>`, 0700): a socket path holds at most 107
 * bytes and ssh appends 58 of its own, which a deep home would exceed.
 */

const enc = new TextEncoder();

export interface SshKeyPaths {
  /** `~/.ohcommodore/ssh` */
  dir: string;
  privatePath: string;
  publicPath: string;
  knownHostsFile: string;
  /** Directory for ssh master sockets (created 0700 by SshTransport). */
  controlDir: string;
}

/** FNV-1a of a string, as 8 hex digits. */
function shortHash(s: string): string {
  let h = 0x811c9dc5;
  for (const b of enc.encode(s)) {
    h ^= b;
    h = Math.imul(h, 0x01000193) >>> 0;
  }
  return h.toString(16).padStart(8, "0");
}

/** Where the key, known_hosts and master sockets of a home live. */
export function sshKeyPaths(home: string): SshKeyPaths {
  const dir = paths.sshDir(home);
  const uid = Deno.uid() ?? 0;
  return {
    dir,
    privatePath: `${dir}/id_ed25519`,
    publicPath: `${dir}/id_ed25519.pub`,
    knownHostsFile: `${dir}/known_hosts`,
    controlDir: `/tmp/ohc-${uid}-${shortHash(home)}`,
  };
}

export interface FleetKey {
  privatePath: string;
  /** One line: `ssh-ed25519 AAAA… ohcommodore-<name>`, no newline. */
  publicKey: string;
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

async function keygen(args: string[]): Promise<string> {
  let out: Deno.CommandOutput;
  try {
    out = await new Deno.Command("ssh-keygen", {
      args,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new Error(
        "ssh-keygen not found: install the OpenSSH client (openssh-client)",
      );
    }
    throw e;
  }
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `ssh-keygen ${args[0]} failed: ${
        dec.decode(out.stderr).trim() || `exit ${out.code}`
      }`,
    );
  }
  return dec.decode(out.stdout);
}

/** A key comment from a machine name: `ohcommodore-<name>`, safe chars only. */
export function keyComment(name: string): string {
  const clean = name.replace(/[^A-Za-z0-9._-]+/g, "-").replace(/^-+|-+$/g, "");
  return `ohcommodore-${clean || "machine"}`;
}

const inProcess = new Map<string, Promise<FleetKey>>();

/**
 * Returns this home's fleet key, generating it on first use
 * (`ssh-keygen -t ed25519 -N "" -C ohcommodore-<name>`). Idempotent and
 * safe to call concurrently, in one process or several (a lock file
 * serialises generation). Repairs modes (dir 0700, key 0600) and a missing
 * `.pub`. `name` defaults to this machine's hostname.
 */
export function ensureKey(
  home: string,
  opts: { name?: string } = {},
): Promise<FleetKey> {
  const p = sshKeyPaths(home);
  let pending = inProcess.get(p.privatePath);
  if (pending === undefined) {
    pending = ensureKeyLocked(p, opts.name ?? Deno.hostname());
    inProcess.set(p.privatePath, pending);
    pending.catch(() => inProcess.delete(p.privatePath));
  }
  return pending;
}

async function ensureKeyLocked(
  p: SshKeyPaths,
  name: string,
): Promise<FleetKey> {
  await Deno.mkdir(p.dir, { recursive: true, mode: 0o700 });
  await Deno.chmod(p.dir, 0o700);
  const lock = await Deno.open(`${p.dir}/.keygen.lock`, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  try {
    await lock.lock(true);
    if (!(await exists(p.privatePath))) {
      // Generate beside the target, then rename: nobody ever sees half a key.
      const tmp = `${p.privatePath}.tmp.${Deno.pid}`;
      for (const f of [tmp, `${tmp}.pub`]) {
        await Deno.remove(f).catch(() => {});
      }
      await keygen([
        "-q",
        "-t",
        "ed25519",
        "-N",
        "",
        "-C",
        keyComment(name),
        "-f",
        tmp,
      ]);
      await Deno.chmod(tmp, 0o600);
      await Deno.rename(`${tmp}.pub`, p.publicPath);
      await Deno.rename(tmp, p.privatePath);
    }
    const st = await Deno.stat(p.privatePath);
    if (!st.isFile) throw new Error(`${p.privatePath} is not a file`);
    if (st.mode !== null && (st.mode & 0o077) !== 0) {
      await Deno.chmod(p.privatePath, 0o600);
    }
    let publicKey: string;
    try {
      publicKey = (await Deno.readTextFile(p.publicPath)).trim();
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      publicKey = "";
    }
    if (publicKey === "") {
      publicKey = (await keygen(["-y", "-f", p.privatePath])).trim();
      if (!publicKey.includes(" ohcommodore-")) {
        publicKey += ` ${keyComment(name)}`;
      }
      await Deno.writeTextFile(p.publicPath, publicKey + "\n", { mode: 0o644 });
    }
    return { privatePath: p.privatePath, publicKey };
  } finally {
    lock.close();
  }
}
