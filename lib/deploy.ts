import { compiledSelf } from "./compiled.ts";
import { OhcError } from "./errors.ts";
import { remotePaths } from "./state/paths.ts";
import { lostConnection, remoteBin, run } from "./transport/run.ts";
import type { Transport } from "./transport/types.ts";
import { VERSION } from "./version.ts";

/**
 * The file installed on every VM: OHCOMMODORE_BINARY if set (the dev
 * artifact sets it to itself), else this executable when it is a compiled
 * ohcommodore. Running plain source has neither.
 */
export function binaryToDeploy(
  build: { standalone?: boolean } = Deno.build,
): string {
  const env = Deno.env.get("OHCOMMODORE_BINARY");
  if (env) return env;
  const self = compiledSelf(build);
  if (self) return self;
  throw new OhcError(
    "no_binary",
    "no ohcommodore binary to install on VMs: set OHCOMMODORE_BINARY, or run a compiled ohcommodore",
    "for development: deno task artifact, then run dist/dev/ohcommodore (it sets OHCOMMODORE_BINARY to itself)",
  );
}

/** How a deploy moves the binary; both on unless a setting turns them off. */
export interface DeployOptions {
  /** gzip on the wire (the VM unpacks it with its own gzip). */
  compress: boolean;
  /** Skip the upload when the VM already holds the same build (sha256). */
  reuse: boolean;
}

/** What one deploy did, for progress lines and bench/deploy.ts. */
export interface DeployReport {
  /** "reused": the VM had this build; "uploaded": it was sent. */
  action: "reused" | "uploaded";
  sha256: string;
  /** Bytes of the binary, and bytes written to the transport. */
  size: number;
  sent: number;
}

/** A "0"/"1" setting (default on); anything else is a clear error. */
function flag(name: string): boolean {
  const v = Deno.env.get(name);
  if (v === undefined || v === "" || v === "1") return true;
  if (v === "0") return false;
  throw new OhcError("bad_setting", `${name} must be 0 or 1, not "${v}"`);
}

export function deployOptions(): DeployOptions {
  return {
    compress: flag("OHCOMMODORE_DEPLOY_COMPRESS"),
    reuse: flag("OHCOMMODORE_DEPLOY_REUSE"),
  };
}

interface Build {
  bytes: Uint8Array;
  sha256: string;
  gzipped?: Promise<Uint8Array>;
}

/**
 * The binary read once per process: a flagship creating many ships reads,
 * hashes and compresses it once. Keyed by path, size and mtime, so a
 * rebuilt file is read again.
 */
const builds = new Map<string, Promise<Build>>();

async function readBuild(src: string): Promise<Build> {
  let key: string;
  try {
    const st = await Deno.stat(src);
    key = `${src}\0${st.size}\0${st.mtime?.getTime()}`;
  } catch (e) {
    throw unreadable(src, e);
  }
  let b = builds.get(key);
  if (!b) {
    b = (async () => {
      const bytes = await Deno.readFile(src).catch((e) => {
        throw unreadable(src, e);
      });
      return { bytes, sha256: await sha256Hex(bytes) };
    })();
    b.catch(() => builds.delete(key));
    builds.set(key, b);
  }
  return await b;
}

function unreadable(src: string, e: unknown): OhcError {
  return new OhcError(
    "no_binary",
    `cannot read ${src}: ${(e as Error).message}`,
    "point OHCOMMODORE_BINARY at an ohcommodore executable",
  );
}

export async function sha256Hex(bytes: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", bytes as BufferSource);
  return Array.from(new Uint8Array(d), (x) => x.toString(16).padStart(2, "0"))
    .join("");
}

function gzipped(b: Build): Promise<Uint8Array> {
  return b.gzipped ??= new Response(
    new Blob([b.bytes as BlobPart]).stream().pipeThrough(
      new CompressionStream("gzip"),
    ),
  ).arrayBuffer().then((a) => new Uint8Array(a));
}

/**
 * Prints the sha256 of the installed binary (or "-") and whether gzip is
 * there. Constant; the path is fixed.
 */
const PROBE_SCRIPT = [
  'f="$HOME/.ohcommodore/bin/ohcommodore"',
  'h=-; [ -f "$f" ] && h=$(sha256sum < "$f" 2>/dev/null | cut -d" " -f1)',
  "g=plain; command -v gzip >/dev/null 2>&1 && g=gzip",
  'echo "${h:--} $g"',
].join("; ");

/**
 * Writes stdin (gzip'd when `$3` says so) to `$1` beside the target,
 * checks its sha256 against `$2`, then renames it into place: a VM never
 * runs a half-sent or corrupted binary. Constant; values arrive as arguments.
 */
const INSTALL_SCRIPT = [
  'set -e; umask 077; cd "$HOME"',
  'd=$(dirname -- "$1"); mkdir -p -- "$d"',
  't="$1.tmp.$$"; trap \'rm -f -- "$t"\' EXIT',
  'if [ "$3" = gzip ]; then gzip -dc > "$t"; else cat > "$t"; fi',
  'h=$(sha256sum < "$t" | cut -d" " -f1)',
  'if [ "$h" != "$2" ]; then echo "the received binary has sha256 $h, not $2" >&2; exit 1; fi',
  'chmod 755 "$t"',
  'sync "$t" 2>/dev/null || true',
  'mv -f -- "$t" "$1"; trap - EXIT',
].join("; ");

/**
 * Installs the binary at ~/.ohcommodore/bin/ohcommodore: skipped when the
 * VM already holds the same build, else sent gzip'd, checked against its
 * sha256 and renamed into place, then asked for `--version`.
 */
export async function deploy(
  t: Transport,
  opts: DeployOptions = deployOptions(),
): Promise<DeployReport> {
  const build = await readBuild(binaryToDeploy());
  const probe = await runRetryingLost(t, ["sh", "-c", PROBE_SCRIPT]);
  const [have, unpack] = probe.code === 0
    ? probe.stdout.trim().split(" ")
    : ["-", "plain"];
  const report = {
    sha256: build.sha256,
    size: build.bytes.length,
  };
  if (opts.reuse && have === build.sha256) {
    return { action: "reused", sent: 0, ...report };
  }
  const gzip = opts.compress && unpack === "gzip";
  const payload = gzip ? await gzipped(build) : build.bytes;
  const res = await runRetryingLost(
    t,
    [
      "sh",
      "-c",
      INSTALL_SCRIPT,
      "install",
      remotePaths.bin,
      build.sha256,
      gzip ? "gzip" : "plain",
    ],
    payload,
  );
  if (res.code !== 0) {
    throw new OhcError(
      "deploy_failed",
      `installing ohcommodore on ${t.dest} failed: ${
        res.stderr.trim().split("\n").at(-1) || `exit ${res.code}`
      }`,
    );
  }
  await checkVersion(t);
  return { action: "uploaded", sent: payload.length, ...report };
}

async function checkVersion(t: Transport): Promise<void> {
  const res = await runRetryingLost(t, remoteBin("--version"));
  if (res.code !== 0 || !res.stdout.includes(VERSION)) {
    throw new OhcError(
      "deploy_failed",
      `ohcommodore on ${t.dest} did not start: ${
        (res.stderr || res.stdout).trim().split("\n")[0] || `exit ${res.code}`
      }`,
      "is the binary built for that machine's platform?",
    );
  }
}

/** `run` again while only the connection was lost (idempotent steps). */
async function runRetryingLost(
  t: Transport,
  argv: string[],
  stdin?: Uint8Array,
) {
  for (let i = 1;; i++) {
    const r = await run(t, argv, stdin === undefined ? {} : { stdin });
    if (i >= 3 || !lostConnection(r.code, r.stderr)) return r;
    await new Promise((res) => setTimeout(res, 500 * i));
  }
}

/** Starts (or confirms) the daemon on a machine that has its identity. */
export async function startRemoteDaemon(t: Transport): Promise<void> {
  const res = await runRetryingLost(t, remoteBin("daemon", "start"));
  if (res.code !== 0) {
    throw new OhcError(
      "daemon_start",
      `the daemon on ${t.dest} did not start: ${
        (res.stderr || res.stdout).trim().split("\n")[0] || `exit ${res.code}`
      }`,
    );
  }
}
