import { compiledSelf } from "./compiled.ts";
import { OhcError } from "./errors.ts";
import { remotePaths } from "./state/paths.ts";
import { lostConnection, remoteBin, run, upload } from "./transport/run.ts";
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

/**
 * Installs the binary at ~/.ohcommodore/bin/ohcommodore atomically and
 * checks that it answers `--version` with ours.
 */
export async function deploy(t: Transport): Promise<void> {
  const src = binaryToDeploy();
  let bytes: Uint8Array;
  try {
    bytes = await Deno.readFile(src);
  } catch (e) {
    throw new OhcError(
      "no_binary",
      `cannot read ${src}: ${(e as Error).message}`,
      "point OHCOMMODORE_BINARY at an ohcommodore executable",
    );
  }
  await upload(t, bytes, remotePaths.bin, "755");
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
async function runRetryingLost(t: Transport, argv: string[]) {
  for (let i = 1;; i++) {
    const r = await run(t, argv);
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
