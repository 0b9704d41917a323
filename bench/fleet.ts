/**
 * exe.dev fleet costs over the exe.dev emulator (real OpenSSH, one sshd per
 * VM), as ratios to baselines measured in the same run. Goals from the
 * exe.dev/sprites issue. Prints, never asserts.
 *
 * (a) `ohcommodore fleet status --json` with 20 ships, as a ratio to one
 *     fresh `ssh <flagship> true` (a new connection, no master):
 *     - cold: the first call after the laptop's ssh masters are closed;
 *     - warm: later calls, multiplexed over the master (goal ≤ 1.0).
 * (b) `ship create` of 8 ships in one command, with the emulator's 2 s
 *     provisioning delay in every `new`, as a ratio to `ship create` of one
 *     ship with the same delay (goal ≤ 1.3).
 *
 *   deno run -A bench/fleet.ts [runs=7]
 *
 * Needs what the emulator needs: Linux, root, openssh-server, util-linux.
 * VMs share one writable Deno cache (DENO_DIR), as a compiled binary needs
 * none: the dev artifact would otherwise transpile the whole program once
 * per VM, which the product does not do. Everything is scuttled and the
 * emulator stopped at the end, also on failure.
 */
import { sshKeyPaths } from "../lib/providers/ssh_keys.ts";
import {
  closeMasters,
  type ExeDevFleet,
  exeDevFleet,
} from "../tests/helpers/exedev_fleet.ts";

const runs = Number(Deno.args[0] ?? 7);
const STATUS_SHIPS = 20;
const BATCH = 8;
const DELAY_MS = 2000;
const GOAL_WARM = 1.0;
const GOAL_BATCH = 1.3;

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
};

async function timed(fn: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await fn();
  return performance.now() - t0;
}

/** One new ssh connection from the laptop to the flagship running `true`. */
async function freshSsh(f: ExeDevFleet): Promise<void> {
  const p = sshKeyPaths(f.home);
  const out = await new Deno.Command("ssh", {
    args: [
      "-F",
      f.userSsh.config,
      "-o",
      "BatchMode=yes",
      "-o",
      "ControlMaster=no",
      "-o",
      "ControlPath=none",
      "-o",
      `UserKnownHostsFile=${p.knownHostsFile}`,
      "-o",
      "StrictHostKeyChecking=accept-new",
      "-o",
      "LogLevel=ERROR",
      `${await f.vmName(f.flagship)}.exe.xyz`,
      "true",
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(`ssh true: ${new TextDecoder().decode(out.stderr)}`);
  }
}

async function status(f: ExeDevFleet, ships: number): Promise<void> {
  const r = await f.ok(["fleet", "status", "--json"]);
  const n = JSON.parse(r.stdout).ships.length;
  if (n !== ships) throw new Error(`fleet status shows ${n} ships`);
}

const names = (prefix: string, n: number) =>
  Array.from({ length: n }, (_, i) => `${prefix}-${i + 1}`);

const denoDir = await Deno.makeTempDir({ prefix: "ohc-bench-deno-" });
await Deno.chmod(denoDir, 0o1777);
const f = await exeDevFleet({
  env: { OHC_OFFLINE: "1" },
  vmEnv: { DENO_DIR: denoDir },
});
try {
  // ---- (b) ship create: 1 vs 8, each `new` sleeping 2 s.
  // A first ship warms the flagship's and the VMs' shared module cache.
  await f.ok(["ship", "create", "warmup"]);
  await f.ok(["ship", "destroy", "warmup"]);
  await f.emu.setKnobs({ delayMs: DELAY_MS });
  const one = await timed(() => f.ok(["ship", "create", "single"]));
  const eight = await timed(() =>
    f.ok(["ship", "create", ...names("batch", BATCH)])
  );
  await f.ok(["fleet", "sink", "--force"]);
  await f.emu.setKnobs({ delayMs: 0 });

  // ---- (a) fleet status with 20 ships.
  await f.ok(["ship", "create", ...names("ship", STATUS_SHIPS)]);
  await f.waitLinksUp(names("ship", STATUS_SHIPS), 120_000);
  await freshSsh(f); // known_hosts entry, caches
  const sshMs: number[] = [];
  for (let i = 0; i < runs; i++) sshMs.push(await timed(() => freshSsh(f)));
  const cold: number[] = [];
  for (let i = 0; i < runs; i++) {
    await closeMasters(f.home);
    cold.push(await timed(() => status(f, STATUS_SHIPS)));
  }
  await status(f, STATUS_SHIPS); // the master is up
  const warm: number[] = [];
  for (let i = 0; i < runs; i++) {
    warm.push(await timed(() => status(f, STATUS_SHIPS)));
  }

  const base = median(sshMs);
  const row = (name: string, ms: number, ratio: number, goal?: number) =>
    `${name.padEnd(44)} ${ms.toFixed(0).padStart(7)} ms  ratio ${
      ratio.toFixed(2)
    }${goal === undefined ? "" : `  (goal <= ${goal.toFixed(1)})`}`;
  const load = Deno.readTextFileSync("/proc/loadavg").split(" ")[0];
  console.log(
    `exe.dev emulator, median of ${runs}; ${Deno.build.target}, ${navigator.hardwareConcurrency} CPUs, load average ${load}`,
  );
  console.log(row("fresh `ssh flagship true` (baseline)", base, 1));
  console.log(
    row(
      `fleet status --json, ${STATUS_SHIPS} ships, cold`,
      median(cold),
      median(cold) / base,
    ),
  );
  console.log(
    row(
      `fleet status --json, ${STATUS_SHIPS} ships, warm`,
      median(warm),
      median(warm) / base,
      GOAL_WARM,
    ),
  );
  console.log(
    row(`ship create, 1 ship, ${DELAY_MS} ms delay (baseline)`, one, 1),
  );
  console.log(
    row(
      `ship create, ${BATCH} ships in one command`,
      eight,
      eight / one,
      GOAL_BATCH,
    ),
  );
} finally {
  const left = await (async () => {
    try {
      return await f.scuttle();
    } catch (e) {
      console.error(`scuttle failed: ${(e as Error).message}`);
      return null;
    }
  })();
  if (left && left.length > 0) console.error(`VMs left: ${left.join(" ")}`);
  await f.stop();
  await Deno.remove(denoDir, { recursive: true }).catch(() => {});
}
