/**
 * cloudinit/init.sh on every new VM, with the seeds' environment contract.
 * The laptop gathers the settings (INIT_PATH's script and DOTFILES_PATH's
 * folder travel inside the setup request; they are the laptop's files), the
 * VM runs the copy of init.sh bundled with this binary. GH_TOKEN reaches it
 * only as GH_TOKEN_FILE, a 0600 file.
 */
import { OhcError, UsageError } from "./errors.ts";
import { readLines } from "./lines.ts";
import { paths } from "./state/paths.ts";

export interface Bootstrap {
  /** Plain settings passed through: INIT_URL, DOTFILES_URL, OHC_SKIP, ... */
  env: Record<string, string>;
  /** INIT_PATH's content, run as the hook. */
  init_script?: string;
  /** DOTFILES_PATH as a gzip tarball, base64. */
  dotfiles_tgz?: string;
}

const PASSED = [
  "INIT_URL",
  "DOTFILES_URL",
  "OHC_SKIP",
  "OHC_OFFLINE",
  "OHC_SYSTEM",
  "GH_HOST",
];
const MAX_DOTFILES = 16 << 20;

/** Reads the bootstrap settings from the laptop's environment. */
export async function bootstrapFromEnv(
  env: Record<string, string> = Deno.env.toObject(),
): Promise<Bootstrap> {
  const b: Bootstrap = { env: {} };
  for (const k of PASSED) if (env[k]) b.env[k] = env[k];
  if (env.INIT_PATH) {
    try {
      b.init_script = await Deno.readTextFile(env.INIT_PATH);
    } catch {
      throw new UsageError(`INIT_PATH ${env.INIT_PATH}: no such file`);
    }
  }
  if (env.DOTFILES_PATH) {
    try {
      if (!(await Deno.stat(env.DOTFILES_PATH)).isDirectory) throw new Error();
    } catch {
      throw new UsageError(
        `DOTFILES_PATH ${env.DOTFILES_PATH}: not a directory`,
      );
    }
    const r = await new Deno.Command("tar", {
      args: ["-czf", "-", "-C", env.DOTFILES_PATH, "."],
      stdout: "piped",
      stderr: "piped",
    }).output();
    if (!r.success) {
      throw new OhcError("bootstrap", `cannot pack ${env.DOTFILES_PATH}`);
    }
    if (r.stdout.length > MAX_DOTFILES) {
      throw new UsageError(
        `DOTFILES_PATH ${env.DOTFILES_PATH} is over 16 MiB packed`,
      );
    }
    const { bytesToBase64 } = await import("./inbox/types.ts");
    b.dotfiles_tgz = bytesToBase64(r.stdout);
  }
  return b;
}

export function isEmpty(b: Bootstrap | null | undefined): boolean {
  return !b ||
    (Object.keys(b.env).length === 0 && !b.init_script && !b.dotfiles_tgz);
}

/** Runs init.sh on this machine (the VM side of vm.setup). */
export async function runBootstrap(o: {
  home: string;
  bootstrap: Bootstrap;
  role: "commodore" | "captain";
  targetRepo: string | null;
  tokenFile: string | null;
  /** Local VMs share the laptop: no network installs unless asked. */
  offlineByDefault: boolean;
  onLine: (line: string) => void;
}): Promise<void> {
  const dir = paths.initDir(o.home);
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const script = `${dir}/init.sh`;
  await Deno.writeTextFile(
    script,
    await Deno.readTextFile(new URL("../cloudinit/init.sh", import.meta.url)),
    { mode: 0o700 },
  );
  const env: Record<string, string> = {
    HOME: o.home,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    ROLE: o.role,
    ...o.bootstrap.env,
  };
  if (o.offlineByDefault && env.OHC_OFFLINE === undefined) {
    env.OHC_OFFLINE = "1";
  }
  if (o.targetRepo) env.TARGET_REPO = o.targetRepo;
  if (o.tokenFile) env.GH_TOKEN_FILE = o.tokenFile;
  if (o.bootstrap.init_script !== undefined) {
    env.INIT_PATH = `${dir}/user-init.sh`;
    await Deno.writeTextFile(env.INIT_PATH, o.bootstrap.init_script, {
      mode: 0o700,
    });
  }
  if (o.bootstrap.dotfiles_tgz) {
    const target = `${o.home}/.dotfiles`;
    await Deno.remove(target, { recursive: true }).catch(() => {});
    await Deno.mkdir(target, { recursive: true });
    const tar = new Deno.Command("tar", {
      args: ["-xzf", "-", "-C", target],
      stdin: "piped",
      stderr: "piped",
    }).spawn();
    const { base64ToBytes } = await import("./inbox/types.ts");
    const w = tar.stdin.getWriter();
    await w.write(base64ToBytes(o.bootstrap.dotfiles_tgz));
    await w.close();
    if (!(await tar.output()).success) {
      throw new OhcError("bootstrap", "cannot unpack the dotfiles");
    }
    env.DOTFILES_PATH = target;
  }
  const child = new Deno.Command("bash", {
    args: [script],
    cwd: o.home,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let last = "";
  const pump = async (s: ReadableStream<Uint8Array>) => {
    for await (const line of readLines(s)) {
      if (!line.trim()) continue;
      last = line;
      o.onLine(line);
    }
  };
  await Promise.all([pump(child.stdout), pump(child.stderr)]);
  const status = await child.status;
  if (!status.success) {
    throw new OhcError(
      "bootstrap_failed",
      `cloudinit/init.sh failed (exit ${status.code}): ${last}`,
      `see ${paths.initLog(o.home)} on the VM`,
    );
  }
}
