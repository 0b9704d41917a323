/**
 * A fleet on the exe.dev emulator, driven through the real CLI and real
 * OpenSSH, for e2e tests and benchmarks:
 *
 * ```ts
 * await using f = await exeDevFleet();          // laptop HOME + emulator + init
 * await f.ok(["ship", "create", "alpha", "bravo"]);
 * const s = await f.status();                    // fleet status --json
 * await f.assertNoStrays();                      // emulator ⊆ fleet status
 * ```
 *
 * VMs run programs as the system user `exedev`, so the program installed on
 * them (the dev artifact: a script that runs main.ts with Deno) must be
 * readable by that user. When this checkout or the deno binary is not (CI
 * may keep the checkout under /root and deno in /root/.npm), `vmArtifact`
 * builds a world-readable copy once per test process: the deno binary and
 * what main.ts needs, in a 0755 temp dir, with an artifact written by that
 * copy's scripts/artifact.ts (which takes its paths from its own location
 * and Deno.execPath()). `OHC_TEST_VM_COPY=1` forces the copy (to test it).
 */
import { runOk } from "./prereq.ts";
import assert from "node:assert/strict";
import type { FleetStatus } from "../../lib/fleet/api.ts";
import { sshKeyPaths } from "../../lib/providers/ssh_keys.ts";
import { makeClientKey } from "./sshd.ts";
import {
  type ExeDev,
  type ExeDevOptions,
  startExeDev,
} from "../e2e/emulators/exedev.ts";
import {
  ARTIFACT,
  type CliOptions,
  type CliResult,
  ensureArtifact,
  exists,
  ohc,
  ohcOk,
} from "./cli.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** What a VM needs of the checkout to run main.ts. */
const RUNTIME_FILES = [
  "main.ts",
  "deno.json",
  "deno.lock",
  "lib",
  "roles",
  "cloudinit",
  "node_modules",
  "scripts/artifact.ts",
];

/** Whether user `exedev` passes `test <flag> <path>`. */
async function exedevCan(flag: "-r" | "-x", path: string): Promise<boolean> {
  const out = await new Deno.Command("setpriv", {
    args: [
      "--reuid",
      "exedev",
      "--regid",
      "exedev",
      "--clear-groups",
      "test",
      flag,
      path,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).output();
  return out.success;
}

/** Why the VM user cannot run this checkout's artifact, or null. */
async function unreadableByVm(): Promise<string | null> {
  const deno = Deno.execPath();
  if (!(await exedevCan("-x", deno))) return `${deno} is not executable`;
  const need = [
    ...RUNTIME_FILES.filter((f) => !f.includes("/") && f.includes(".")),
    "lib/version.ts",
    "roles/mod.ts",
    "node_modules/commander/package.json",
    "dist/dev/ohcommodore",
  ];
  for (const f of need) {
    if (!(await exedevCan("-r", `${root}/${f}`))) {
      return `${root}/${f} is not readable`;
    }
  }
  return null;
}

let vmArtifactP: Promise<string> | undefined;

/**
 * An artifact user `exedev` can run: this checkout's dist/dev/ohcommodore
 * when it can, else a world-readable copy (built once per test process,
 * removed at exit). Needs the `exedev` user (startExeDev creates it).
 */
export function vmArtifact(): Promise<string> {
  vmArtifactP ??= (async () => {
    await ensureArtifact();
    const why = Deno.env.get("OHC_TEST_VM_COPY") === "1"
      ? "OHC_TEST_VM_COPY=1"
      : await unreadableByVm();
    if (why === null) return ARTIFACT;
    const dir = await Deno.makeTempDir({ prefix: "ohc-vmcopy-" });
    globalThis.addEventListener("unload", () => {
      try {
        Deno.removeSync(dir, { recursive: true });
      } catch { /* best effort */ }
    });
    const tree = `${dir}/ohcommodore`;
    await Deno.mkdir(`${tree}/scripts`, { recursive: true });
    await Deno.mkdir(`${dir}/bin`);
    await Deno.copyFile(Deno.execPath(), `${dir}/bin/deno`);
    for (const f of RUNTIME_FILES) {
      const dest = `${tree}/${f}`;
      await runOk("cp", ["-a", `${root}/${f}`, dest]);
    }
    await runOk("chmod", ["-R", "a+rX", dir]);
    await Deno.chmod(`${dir}/bin/deno`, 0o755);
    const out = `${tree}/dist/dev/ohcommodore`;
    await runOk(`${dir}/bin/deno`, [
      "run",
      "-A",
      "--quiet",
      "--no-config",
      `${tree}/scripts/artifact.ts`,
      out,
    ]);
    await runOk("chmod", ["-R", "a+rX", dir]);
    for (const f of [`${dir}/bin/deno`, out]) {
      if (!(await exedevCan(f.endsWith("deno") ? "-x" : "-r", f))) {
        throw new Error(`the VM copy is still not usable by exedev: ${f}`);
      }
    }
    console.error(`NOTICE: VMs run a readable copy (${why}): ${out}`);
    return out;
  })();
  vmArtifactP.catch(() => vmArtifactP = undefined);
  return vmArtifactP;
}

export interface ExeDevFleet extends AsyncDisposable {
  tmp: string;
  /** The laptop's HOME. */
  home: string;
  emu: ExeDev;
  /** Environment every CLI call gets (OHCOMMODORE_BINARY, …). */
  env: Record<string, string>;
  /** The flagship's name in the fleet (`fleet status`). */
  flagship: string;
  /**
   * The user's own ssh setup: an ssh_config (the emulator's hosts, and the
   * user's key as IdentityFile) passed as `--ssh-config`, and that key.
   */
  userSsh: { config: string; key: string };
  /** The VM name of a fleet machine ("flagship", "alpha"), from config.json. */
  vmName(name: string): Promise<string>;
  run(args: string[], opts?: CliOptions): Promise<CliResult>;
  ok(args: string[], opts?: CliOptions): Promise<CliResult>;
  /** `fleet status --json`. */
  status(): Promise<FleetStatus>;
  /** Host path of a VM's /home/exedev. */
  vmHome(name: string): Promise<string>;
  /**
   * Asserts that every VM the emulator has is the flagship or a ship that
   * `fleet status` knows (none at all once the flagship is scuttled).
   */
  assertNoStrays(): Promise<void>;
  /** Polls fleet status until every listed ship's link is `up`. */
  waitLinksUp(ships: string[], timeoutMs?: number): Promise<FleetStatus>;
  /**
   * `fleet sink --scuttle --force` (must succeed); returns the VMs the
   * emulator still lists afterwards (should be none).
   */
  scuttle(): Promise<string[]>;
  /** Sinks and scuttles (if still there), stops the emulator, cleans up. */
  stop(): Promise<void>;
}

export interface ExeDevFleetOptions
  extends Partial<Omit<ExeDevOptions, "dir">> {
  /**
   * `init --name` (the flagship's VM gets exactly it); default: none, so
   * the flagship is "flagship" and its VM `<fleet id>-flagship`.
   */
  flagship?: string;
  /** More environment for every CLI call. */
  env?: Record<string, string>;
  /** Skip `init` (the caller runs it). */
  noInit?: boolean;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * A laptop HOME whose user has `ssh exe.dev` working with a key of their
 * own (registered on a fresh emulated exe.dev account, offered through
 * their ssh config), and (unless `noInit`) `init --provider exedev` done.
 * Common words are held by other accounts, as on the real service.
 */
export async function exeDevFleet(
  opts: ExeDevFleetOptions = {},
): Promise<ExeDevFleet> {
  const tmp = await Deno.makeTempDir({ prefix: "ohc-exe-" });
  await Deno.chmod(tmp, 0o755);
  const home = `${tmp}/laptop`;
  await Deno.mkdir(home);
  const userDir = `${tmp}/user-ssh`;
  await Deno.mkdir(userDir, { mode: 0o700 });
  const key = await makeClientKey(userDir);
  const { flagship: flagshipOpt, env: extraEnv, noInit, ...knobs } = opts;
  const emu = await startExeDev({
    ...knobs,
    dir: `${tmp}/emu`,
    keys: [key.publicKey],
  });
  const userSsh = { config: `${userDir}/config`, key: key.privatePath };
  await Deno.writeTextFile(
    userSsh.config,
    `Include ${emu.sshConfig}\nHost exe.dev *.exe.xyz\n  IdentityFile ${key.privatePath}\n`,
  );
  const flagship = flagshipOpt ?? "flagship";
  let f: ExeDevFleet;
  try {
    const env = {
      OHCOMMODORE_BINARY: extraEnv?.OHCOMMODORE_BINARY ?? await vmArtifact(),
      ...extraEnv,
    };
    const withEnv = (o: CliOptions = {}) => ({
      ...o,
      env: { ...env, ...o.env },
    });
    const vmByName = async (name: string) => {
      const vm = (await emu.listVms()).find((v) => v.name === name);
      if (!vm) throw new Error(`the emulator has no VM ${name}`);
      return vm;
    };
    let stopped = false;
    f = {
      tmp,
      home,
      emu,
      env,
      flagship,
      userSsh,
      async vmName(name) {
        const c = JSON.parse(
          await Deno.readTextFile(`${home}/.ohcommodore/config.json`),
        );
        if (name === c.flagship.name) return c.flagship.vm ?? name;
        return c.fleet_id ? `${c.fleet_id}-${name}` : name;
      },
      run: (args, o) => ohc(home, args, withEnv(o)),
      ok: (args, o) => ohcOk(home, args, withEnv(o)),
      async status() {
        const r = await ohcOk(home, ["fleet", "status", "--json"], withEnv());
        return JSON.parse(r.stdout) as FleetStatus;
      },
      vmHome: async (name) => (await vmByName(await f.vmName(name))).home,
      async assertNoStrays() {
        const vms = (await emu.listVms()).map((v) => v.name).sort();
        if (!(await exists(`${home}/.ohcommodore/config.json`))) {
          assert.deepEqual(vms, [], "VMs left after the flagship is gone");
          return;
        }
        const s = await f.status();
        const known = new Set(
          await Promise.all(
            [s.flagship.name, ...s.ships.map((x) => x.name)].map(f.vmName),
          ),
        );
        const strays = vms.filter((v) => !known.has(v));
        assert.deepEqual(strays, [], "VMs ohcommodore does not know of");
      },
      async waitLinksUp(ships, timeoutMs = 30_000) {
        const deadline = Date.now() + timeoutMs;
        for (;;) {
          const s = await f.status();
          const up = ships.every((n) =>
            s.ships.find((x) => x.name === n)?.link.state === "up"
          );
          if (up) return s;
          if (Date.now() > deadline) {
            throw new Error(
              `links not up within ${timeoutMs} ms: ${
                JSON.stringify(s.ships.map((x) => [x.name, x.link]))
              }`,
            );
          }
          await sleep(250);
        }
      },
      async scuttle() {
        await ohcOk(home, ["fleet", "sink", "--scuttle", "--force"], withEnv());
        return (await emu.listVms()).map((v) => v.name);
      },
      async stop() {
        if (stopped) return;
        stopped = true;
        try {
          if (await exists(`${home}/.ohcommodore/config.json`)) {
            await ohc(
              home,
              ["fleet", "sink", "--scuttle", "--force"],
              withEnv(),
            );
          }
        } finally {
          await closeMasters(home);
          await emu.stop();
          await Deno.remove(tmp, { recursive: true }).catch(() => {});
        }
      },
      [Symbol.asyncDispose]: () => f.stop(),
    };
    if (!noInit) {
      await f.ok([
        "init",
        "--provider",
        "exedev",
        ...(flagshipOpt ? ["--name", flagshipOpt] : []),
        "--ssh-config",
        userSsh.config,
      ]);
    }
  } catch (e) {
    await closeMasters(home);
    await emu.stop();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw e;
  }
  return f;
}

/** Ends every ssh master connection a home's CLI left (`ssh -O exit`). */
export async function closeMasters(home: string): Promise<void> {
  const dir = sshKeyPaths(home).controlDir;
  const socks: string[] = [];
  try {
    for await (const e of Deno.readDir(dir)) socks.push(`${dir}/${e.name}`);
  } catch {
    return;
  }
  await Promise.all(socks.map((s) =>
    new Deno.Command("ssh", {
      args: ["-O", "exit", "-o", `ControlPath=${s}`, "ohc-master"],
      stdin: "null",
      stdout: "null",
      stderr: "null",
    }).output().catch(() => {})
  ));
  await Deno.remove(dir, { recursive: true }).catch(() => {});
}

/** Processes whose command line contains `needle` (host-wide). */
export function processesMatching(needle: string): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (cmd.replaceAll("\0", " ").includes(needle)) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

/** `a.b.c.d:port` of a /proc/net/tcp address (`0100007F:1F90`). */
function tcpAddr(hex: string): string {
  const [ip, port] = hex.split(":");
  const b = [0, 1, 2, 3].map((i) => parseInt(ip.slice(i * 2, i * 2 + 2), 16));
  return `${b.reverse().join(".")}:${parseInt(port, 16)}`;
}

/**
 * Processes holding a TCP connection to `address:port` as the client: for
 * a VM of the emulator, the ssh master connections to it (the flagship's,
 * since only the flagship connects to ships). VMs share the host network.
 */
export function tcpClientsOf(address: string, port: number): number[] {
  const inodes = new Set<string>();
  for (const file of ["/proc/net/tcp"]) {
    let text = "";
    try {
      text = Deno.readTextFileSync(file);
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const f = line.trim().split(/\s+/);
      if (f.length < 10) continue;
      // st 01 = ESTABLISHED
      if (tcpAddr(f[2]) === `${address}:${port}` && f[3] === "01") {
        inodes.add(f[9]);
      }
    }
  }
  const pids = new Set<number>();
  if (inodes.size === 0) return [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    let fds: Deno.DirEntry[] = [];
    try {
      fds = [...Deno.readDirSync(`/proc/${e.name}/fd`)];
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const m = /^socket:\[(\d+)\]$/.exec(
          Deno.readLinkSync(`/proc/${e.name}/fd/${fd.name}`),
        );
        if (m && inodes.has(m[1])) pids.add(Number(e.name));
      } catch { /* gone */ }
    }
  }
  return [...pids];
}

/** The command line of a process ("" when gone). */
export function cmdlineOf(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ")
      .trim();
  } catch {
    return "";
  }
}
