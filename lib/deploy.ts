import { compiledSelf } from "./compiled.ts";
import { OhcError } from "./errors.ts";
import { type Env, knob } from "./knobs.ts";
import { Settings } from "./settings.ts";
import { paths, remotePaths } from "./state/paths.ts";
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
  env?: Env,
): string {
  const set = knob("OHCOMMODORE_BINARY", env);
  if (set) return set;
  const self = compiledSelf(build);
  if (self) return self;
  throw new OhcError(
    "no_binary",
    "no ohcommodore binary to install on VMs: set OHCOMMODORE_BINARY, or run a compiled ohcommodore",
    "for development: deno task artifact, then run dist/dev/ohcommodore (it sets OHCOMMODORE_BINARY to itself)",
  );
}

/** How a deploy moves the binary (VM settings, lib/settings.ts). */
export interface DeployOptions {
  /** gzip on the wire (the VM unpacks it with its own gzip). */
  compress: boolean;
  /** Skip the upload when the VM already holds the same build (sha256). */
  reuse: boolean;
  /**
   * A published release (lib/release.ts): the VM downloads its platform's
   * binary from there itself, and nothing is sent.
   */
  releaseUrl: string | null;
  /** This machine's cache of the gzip'd build (paths.deployCache). */
  cacheDir: string;
  /** The file to install; default binaryToDeploy(). */
  binary?: string;
}

/** What one deploy did, for progress lines and bench/deploy.ts. */
export interface DeployReport {
  /**
   * "reused": the VM had this build; "uploaded": it was sent;
   * "downloaded": the VM fetched it from the release.
   */
  action: "reused" | "uploaded" | "downloaded";
  sha256: string;
  /** Bytes of the binary, and bytes of it written to the transport. */
  size: number;
  sent: number;
}

/** The deploy settings of a fleet: its settings file's values, then env. */
export function deployOptions(
  home: string,
  settings: Settings = new Settings({}),
): DeployOptions {
  return {
    cacheDir: paths.deployCache(home),
    compress: settings.get("OHCOMMODORE_DEPLOY_COMPRESS"),
    reuse: settings.get("OHCOMMODORE_DEPLOY_REUSE"),
    releaseUrl: settings.get("OHCOMMODORE_RELEASE_URL"),
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

/**
 * The build gzip'd: from this machine's deploy cache when it holds it
 * (a flagship keeps what the laptop sent it), else compressed now and
 * kept there, one build at a time.
 */
function gzipped(b: Build, cacheDir: string): Promise<Uint8Array> {
  return b.gzipped ??= (async () => {
    const file = `${cacheDir}/${b.sha256}.gz`;
    try {
      return await Deno.readFile(file);
    } catch { /* not cached */ }
    const gz = new Uint8Array(
      await new Response(
        new Blob([b.bytes as BlobPart]).stream().pipeThrough(
          new CompressionStream("gzip"),
        ),
      ).arrayBuffer(),
    );
    await keepCompressed(file, gz).catch(() => {}); // a cache: best effort
    return gz;
  })();
}

async function keepCompressed(file: string, gz: Uint8Array): Promise<void> {
  const dir = file.slice(0, file.lastIndexOf("/"));
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${file}.tmp.${Deno.pid}`;
  await Deno.writeFile(tmp, gz, { mode: 0o600 });
  await Deno.rename(tmp, file);
  for await (const e of Deno.readDir(dir)) {
    if (`${dir}/${e.name}` !== file) {
      await Deno.remove(`${dir}/${e.name}`).catch(() => {});
    }
  }
}

async function forgetCompressed(b: Build, cacheDir: string): Promise<void> {
  b.gzipped = undefined;
  await Deno.remove(`${cacheDir}/${b.sha256}.gz`).catch(() => {});
}

/**
 * Prints the sha256 of the installed binary (or "-") and whether gzip is
 * there. Constant; the path is fixed.
 */
const PROBE_SCRIPT = [
  `f="$HOME/${remotePaths.bin}"`,
  'h=-; [ -f "$f" ] && h=$(sha256sum < "$f" 2>/dev/null | cut -d" " -f1)',
  "g=plain; command -v gzip >/dev/null 2>&1 && g=gzip",
  'echo "${h:--} $g"',
].join("; ");

/**
 * Writes stdin (gzip'd when `$3` says so) to `$1` beside the target,
 * checks its sha256 against `$2`, then renames it into place: a VM never
 * runs a half-sent or corrupted binary. With `$4` a directory, the gzip'd
 * stream (`$5` bytes) is also kept there as `<sha256>.gz`, the VM's deploy
 * cache, so a flagship passes on what it got without compressing again.
 * Temp files whose writer is gone (killed mid-upload: a sprite's cold
 * pause) are removed first. Constant; values arrive as arguments.
 */
const INSTALL_SCRIPT = [
  'set -e; umask 077; cd "$HOME"',
  'd=$(dirname -- "$1"); mkdir -p -- "$d"',
  'stale() { for o in "$@"; do p=${o##*.tmp.}; if [ -f "$o" ] && ! kill -0 "$p" 2>/dev/null; then rm -f -- "$o"; fi; done; }',
  'stale "$1".tmp.*; if [ -d "$4" ]; then stale "$4"/*.gz.tmp.*; fi',
  't="$1.tmp.$$"; g=; trap \'rm -f -- "$t" $g\' EXIT',
  'if [ "$3" = gzip ] && [ "$4" != - ]; then mkdir -p -- "$4"; g="$4/$2.gz.tmp.$$"; tee "$g" | gzip -dc > "$t"; elif [ "$3" = gzip ]; then gzip -dc > "$t"; else cat > "$t"; fi',
  'h=$(sha256sum < "$t" | cut -d" " -f1)',
  'if [ "$h" != "$2" ]; then echo "the received binary has sha256 $h, not $2" >&2; exit 1; fi',
  'chmod 755 "$t"',
  'sync "$t" 2>/dev/null || true',
  'mv -f -- "$t" "$1"',
  'if [ -n "$g" ] && [ $(wc -c < "$g") -eq "$5" ]; then for x in "$4"/*.gz; do rm -f -- "$x"; done; mv -f -- "$g" "$4/$2.gz"; fi',
  "trap - EXIT; rm -f -- $g",
].join("; ");

/**
 * Downloads this machine's binary from the release at `$2` (curl, else
 * wget), checks it against SHA256SUMS and installs it at `$1`: nothing is
 * fetched when the installed file already has that sha256 and `$3` is
 * "reuse". Prints "reused <sha256>" or "downloaded <sha256> <size>".
 * Constant; values arrive as arguments. Its targets are RELEASE_TARGETS.
 */
export const DOWNLOAD_SCRIPT = [
  'set -e; umask 077; cd "$HOME"',
  'case "$(uname -s)-$(uname -m)" in Linux-x86_64) t=x86_64-unknown-linux-gnu ;; Linux-aarch64|Linux-arm64) t=aarch64-unknown-linux-gnu ;; Darwin-x86_64) t=x86_64-apple-darwin ;; Darwin-arm64) t=aarch64-apple-darwin ;; *) echo "the release has no binary for $(uname -s) $(uname -m)" >&2; exit 1 ;; esac',
  'f="ohcommodore-$t"',
  'get() { if command -v curl >/dev/null 2>&1; then curl -fsSL --retry 3 -o "$2" -- "$1"; elif command -v wget >/dev/null 2>&1; then wget -q -O "$2" -- "$1"; else echo "neither curl nor wget is installed" >&2; return 1; fi; }',
  'd=$(dirname -- "$1"); mkdir -p -- "$d"',
  'tmp="$1.tmp.$$"; trap \'rm -f -- "$tmp" "$tmp.sums"\' EXIT',
  'get "$2/SHA256SUMS" "$tmp.sums" || { echo "cannot download $2/SHA256SUMS" >&2; exit 1; }',
  'want=; while read -r h n || [ -n "$h" ]; do if [ "${n#\\*}" = "$f" ]; then want=$h; fi; done < "$tmp.sums"',
  '[ -n "$want" ] || { echo "$2/SHA256SUMS names no $f" >&2; exit 1; }',
  'if [ "$3" = reuse ] && [ -f "$1" ] && [ "$(sha256sum < "$1" | cut -d" " -f1)" = "$want" ]; then echo reused "$want"; exit 0; fi',
  'get "$2/$f" "$tmp" || { echo "cannot download $2/$f" >&2; exit 1; }',
  'h=$(sha256sum < "$tmp" | cut -d" " -f1)',
  'if [ "$h" != "$want" ]; then echo "$2/$f has sha256 $h, not $want as SHA256SUMS says" >&2; exit 1; fi',
  'chmod 755 "$tmp"',
  'sync "$tmp" 2>/dev/null || true',
  'mv -f -- "$tmp" "$1"; trap - EXIT',
  'echo downloaded "$want" "$(wc -c < "$1")"',
].join("; ");

/**
 * Installs the binary at ~/.ohcommodore/bin/ohcommodore. From a release
 * URL the VM downloads it itself. Else this machine's binary is skipped
 * when the VM already holds the same build, or sent gzip'd, checked
 * against its sha256 and renamed into place. Then it must answer
 * `--version` with ours.
 */
export async function deploy(
  t: Transport,
  opts: DeployOptions,
  /** Keep the gzip'd binary on the VM too (a flagship, which passes it on). */
  how: { keepCompressed?: boolean } = {},
): Promise<DeployReport> {
  if (opts.releaseUrl) return await download(t, opts);
  const build = await readBuild(opts.binary ?? binaryToDeploy());
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
  const payload = gzip ? await gzipped(build, opts.cacheDir) : build.bytes;
  const res = await runRetryingLost(
    t,
    heldOnSprite([
      "sh",
      "-c",
      INSTALL_SCRIPT,
      "install",
      remotePaths.bin,
      build.sha256,
      gzip ? "gzip" : "plain",
      how.keepCompressed ? remotePaths.deployCache : "-",
      String(payload.length),
    ]),
    payload,
  );
  if (res.code !== 0) {
    if (gzip) await forgetCompressed(build, opts.cacheDir); // in case the cache was bad
    throw new OhcError(
      "deploy_failed",
      `installing ohcommodore on ${t.dest} failed: ${lastLine(res)}`,
    );
  }
  await checkVersion(t);
  return { action: "uploaded", sent: payload.length, ...report };
}

async function download(
  t: Transport,
  opts: DeployOptions,
): Promise<DeployReport> {
  const res = await runRetryingLost(
    t,
    heldOnSprite([
      "sh",
      "-c",
      DOWNLOAD_SCRIPT,
      "download",
      remotePaths.bin,
      opts.releaseUrl!,
      opts.reuse ? "reuse" : "always",
    ]),
  );
  const [action, sha256, size] = res.stdout.trim().split("\n").at(-1)!
    .split(" ");
  if (res.code !== 0 || !/^(reused|downloaded)$/.test(action)) {
    throw new OhcError(
      "deploy_failed",
      `${t.dest} could not install ohcommodore from the release at ${opts.releaseUrl}: ${
        lastLine(res)
      }`,
      "check OHCOMMODORE_RELEASE_URL (a release holds ohcommodore-<target> and SHA256SUMS)",
    );
  }
  if (action === "reused") {
    return { action, sha256, size: 0, sent: 0 };
  }
  await checkVersion(t, opts.releaseUrl ?? undefined);
  return { action: "downloaded", sha256, size: Number(size), sent: 0 };
}

function lastLine(r: { code: number; stdout: string; stderr: string }) {
  return r.stderr.trim().split("\n").at(-1) || `exit ${r.code}`;
}

async function checkVersion(t: Transport, release?: string): Promise<void> {
  const res = await runRetryingLost(t, heldOnSprite(remoteBin("--version")));
  if (res.code !== 0) {
    throw new OhcError(
      "deploy_failed",
      `ohcommodore on ${t.dest} did not start: ${
        (res.stderr || res.stdout).trim().split("\n")[0] || `exit ${res.code}`
      }`,
      "is the binary built for that machine's platform?",
    );
  }
  if (!res.stdout.includes(VERSION)) {
    throw new OhcError(
      "deploy_failed",
      `ohcommodore on ${t.dest} is ${
        res.stdout.trim().split("\n")[0]
      }, not ${VERSION} as here${release ? ` (from ${release})` : ""}`,
      release
        ? "point OHCOMMODORE_RELEASE_URL at the release of this version"
        : "is OHCOMMODORE_BINARY this version's binary?",
    );
  }
}

/**
 * argv run holding the machine awake when it is a sprite (`sprite-env` on
 * PATH: a Tasks API hold of 90 s, deleted when it ends). A sprite pauses
 * after a while without traffic and drops the session of a quiet command:
 * an upload's checks (sha256sum, sync of a large file on a slow disk), a
 * standalone binary's first start (it unpacks itself), a download.
 * Elsewhere argv just runs.
 */
export function heldOnSprite(argv: string[]): string[] {
  return [
    "sh",
    "-c",
    [
      "h=/v1/tasks/ohcommodore-deploy-$$",
      'if command -v sprite-env >/dev/null 2>&1; then sprite-env curl -s -X PUT -d \'{"expire":"90s"}\' "$h" >/dev/null 2>&1 || true; trap \'sprite-env curl -s -X DELETE "$h" >/dev/null 2>&1\' EXIT; fi',
      '"$@"',
    ].join("; "),
    "held",
    ...argv,
  ];
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
