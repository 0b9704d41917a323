/**
 * exe.dev emulator for end-to-end tests, driven through real OpenSSH.
 *
 * - The lobby (`ssh exe.dev …`) is a real sshd on 127.0.0.1 whose
 *   ForceCommand runs exedev/lobby_main.ts. It accepts any client key
 *   (AuthorizedKeysCommand echoes the offered key) and, like exe.dev, answers
 *   an unregistered key with `Please complete registration by running: ssh
 *   exe.dev` and exit 1. Registered keys get the lobby commands `new`, `ls`,
 *   `rm`, `restart`, `whoami`, `ssh-key list|add|remove|rename`, `help`,
 *   parsed and answered as the reference says (exedev/lobby.ts).
 * - Every VM is a real sshd on its own loopback address (127.0.1.N, a free
 *   port) in its own mount+UTS+pid namespace with a private /home/exedev and
 *   hostname = VM name (exedev/vm.ts). It accepts every key registered on
 *   the account, for user `exedev` (and `vm+<name>`).
 * - `sshConfig` is an ssh_config file mapping `exe.dev` to the lobby and
 *   `<vm>.exe.xyz` (and `vm+<vm>@vm.exe.xyz`) to the VMs; use
 *   `ssh -F <sshConfig> -i <key> …`. Inside VMs the same file is
 *   /etc/ssh/ssh_config.d/exe.conf, so `ssh exe.dev` works there too.
 *
 * Needs root, openssh-server and util-linux (unshare). Use `exeDevSkipReason`
 * for `ignore:`; under CI=true it never skips.
 *
 * VMs see the host's filesystem as user exedev (uid of the system user
 * `exedev`, created if missing): put anything a VM must run in a
 * world-readable place (e.g. a temp dir you chmod 0755); /usr/bin/deno and
 * this checkout (/work/…, 0755) already are. /root is not: set
 * `vmEnv: { DENO_DIR: … }` to a readable cache if a VM runs deno code that
 * needs one.
 */

import {
  isCi,
  namespaceProblem,
  runOk,
  skipCheck,
} from "../../helpers/prereq.ts";
import { type Sshd, startSshd } from "../../helpers/sshd.ts";
import { addKey } from "./exedev/lobby.ts";
import {
  type Account,
  DEFAULT_KNOBS,
  emptyState,
  type Knobs,
  sshDestFor,
  type VmStatus,
} from "./exedev/model.ts";
import { FileStore, paths, writeAtomic } from "./exedev/store.ts";
import {
  killAll,
  processesInPidNs,
  processesMentioning,
  RealMachines,
  SSHD,
  VM_HOME,
  VM_USER,
  vmDir,
} from "./exedev/vm.ts";

export type { Knobs, VmStatus };

export interface ExeDevOptions extends Partial<Knobs> {
  /** Directory for all emulator state (created; no spaces). */
  dir: string;
  /** Keys registered on the account from the start. */
  keys?: string[];
  account?: Partial<Account>;
}

export interface EmulatedVm {
  name: string;
  status: VmStatus;
  /** What `new`/`ls` report as ssh_dest. */
  sshDest: string;
  address: string;
  port: number;
  /** Host path of the directory that is this VM's /home/exedev. */
  home: string;
  tags: string[];
  image: string;
  createdAt: string;
}

export interface ExeDev {
  dir: string;
  /** ssh_config for `ssh -F`: exe.dev → lobby, <vm>.exe.xyz → VMs. */
  sshConfig: string;
  lobbyHost: "exe.dev";
  /** Where the lobby sshd really listens. */
  lobby: { host: string; port: number };
  /** Registers a public key on the account (like finishing `ssh exe.dev`). */
  registerKey(publicKey: string): Promise<void>;
  /** The account's VMs, as the emulator sees them. */
  listVms(): Promise<EmulatedVm[]>;
  /** Changes knobs for the commands that come after. */
  setKnobs(knobs: Partial<Knobs>): Promise<void>;
  /**
   * The next `n` `new`s, whatever their names, find them held by another
   * account (`VM name "…" is not available`).
   */
  holdNextNames(n: number): Promise<void>;
  /** Lobby sshd log plus the emulator's own error log. */
  log(): string;
  /** Kills every VM and the lobby; waits until they are gone. */
  stop(): Promise<void>;
}

const NOTICE_ENV = "_OHC_TEST_EXEDEV_NOTICE_SHOWN";

/** Why the emulator cannot run here, or null. Ignores CI. */
function missingPrerequisite(): string | null {
  if (Deno.build.os !== "linux") return `needs Linux, this is ${Deno.build.os}`;
  for (
    const [bin, pkg] of [
      [SSHD, "openssh-server"],
      ["/usr/bin/ssh", "openssh-client"],
      ["/usr/bin/ssh-keygen", "openssh-client"],
      ["/usr/bin/unshare", "util-linux"],
      ["/usr/bin/setsid", "util-linux"],
    ]
  ) {
    try {
      Deno.statSync(bin);
    } catch {
      return `${bin} not found (apt-get install ${pkg})`;
    }
  }
  if (Deno.uid() !== 0) return "the exe.dev emulator needs root";
  return namespaceProblem(["--mount", "--uts", "--pid"]);
}

/**
 * null when the emulator can run (root, sshd, unshare), else why not, for
 * `Deno.test({ ignore: exeDevSkipReason() !== null, … })`. Prints one
 * NOTICE line the first time it finds a reason. Under CI=true it returns
 * null (the tests then fail in startExeDev with the reason).
 */
export const exeDevSkipReason: () => string | null = skipCheck(
  "exe.dev emulator tests",
  NOTICE_ENV,
  missingPrerequisite,
);

function passwdEntry(user: string): string[] | null {
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const f = line.split(":");
    if (f[0] === user) return f;
  }
  return null;
}

/**
 * The system user `exedev` (home /home/exedev, shell /bin/bash) with a
 * password field of `*`: no password login, but not "locked" (`!`), which
 * sshd without PAM would refuse even for keys.
 */
async function ensureExedevUser(): Promise<void> {
  if (passwdEntry(VM_USER) === null) {
    try {
      await runOk("useradd", [
        "-m",
        "-d",
        VM_HOME,
        "-s",
        "/bin/bash",
        "-p",
        "*",
        VM_USER,
      ]);
    } catch (e) {
      // A parallel test may have created it meanwhile.
      if (passwdEntry(VM_USER) === null) throw e;
    }
  }
  const shadow = await Deno.readTextFile("/etc/shadow").catch(() => "");
  const line = shadow.split("\n").find((l) => l.startsWith(`${VM_USER}:`));
  if (line && line.split(":")[1].startsWith("!")) {
    await runOk("usermod", ["-p", "*", VM_USER]);
  }
  const f = passwdEntry(VM_USER)!;
  try {
    await Deno.stat(VM_HOME);
  } catch {
    await Deno.mkdir(VM_HOME, { recursive: true, mode: 0o755 });
    await Deno.chown(VM_HOME, Number(f[2]), Number(f[3]));
  }
}

const LOBBY_MAIN = new URL("./exedev/lobby_main.ts", import.meta.url).pathname;

const shq = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** Starts the lobby; VMs are started by its `new`. */
export async function startExeDev(opts: ExeDevOptions): Promise<ExeDev> {
  const missing = missingPrerequisite();
  if (missing !== null) {
    throw new Error(
      `cannot start the exe.dev emulator: ${missing}${
        isCi() ? " (CI=true makes these tests mandatory)" : ""
      }`,
    );
  }
  const dir = opts.dir.replace(/\/+$/, "");
  if (/\s/.test(dir)) throw new Error(`dir must not contain spaces: ${dir}`);
  const p = paths(dir);
  await ensureExedevUser();
  await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
  await Deno.chmod(dir, 0o755);
  await Deno.mkdir(p.vms, { recursive: true, mode: 0o755 });
  await Deno.mkdir(p.sshConfigDir, { recursive: true, mode: 0o755 });
  try {
    await Deno.stat(p.vmHostKey);
  } catch {
    await runOk("ssh-keygen", [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      "exe.dev-emulator-vm-host",
      "-f",
      p.vmHostKey,
    ]);
  }
  try {
    await Deno.stat(p.state);
  } catch {
    await writeAtomic(
      p.state,
      JSON.stringify(emptyState(opts.account), null, 2) + "\n",
    );
  }
  const knobs: Knobs = { ...DEFAULT_KNOBS };
  for (const k of Object.keys(DEFAULT_KNOBS) as (keyof Knobs)[]) {
    if (opts[k] !== undefined) {
      (knobs as unknown as Record<string, unknown>)[k] = opts[k];
    }
  }
  await writeAtomic(p.knobs, JSON.stringify(knobs, null, 2) + "\n");

  const extraConfig = [
    "AuthorizedKeysCommand /usr/bin/echo %t %k",
    "AuthorizedKeysCommandUser nobody",
    "ExposeAuthInfo yes",
    "MaxSessions 100",
  ];
  const denoDir = Deno.env.get("DENO_DIR");
  const lobby: Sshd = await startSshd({
    dir: p.lobby,
    authorizedKeys: [],
    forceCommand: [
      Deno.execPath(),
      "run",
      "-A",
      "--quiet",
      "--no-config",
      "--no-lock",
      LOBBY_MAIN,
      dir,
    ].map(shq).join(" "),
    env: denoDir && !/[\s"]/.test(denoDir) ? { DENO_DIR: denoDir } : {},
    extraConfig,
  });

  const store = new FileStore(dir);
  const machines = new RealMachines(dir);
  let stopped = false;
  try {
    await writeAtomic(
      p.info,
      JSON.stringify({ lobbyHost: lobby.host, lobbyPort: lobby.port }) + "\n",
    );
    await store.transact(() => {});
    for (const key of opts.keys ?? []) {
      const r = await addKey(store, key);
      if ("error" in r && !r.error.includes("already")) {
        throw new Error(r.error);
      }
    }
  } catch (e) {
    await lobby.stop();
    throw e;
  }

  // Last resort if the test process exits without stop(): SIGKILL the lobby,
  // every VM init and sshd (their command lines name this directory); the
  // rest of a VM dies with its pid namespace.
  const onUnload = () => {
    if (stopped) return;
    for (const pid of processesMentioning(`${dir}/`)) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
  };
  globalThis.addEventListener("unload", onUnload);

  return {
    dir,
    sshConfig: p.sshConfig,
    lobbyHost: "exe.dev",
    lobby: { host: lobby.host, port: lobby.port },
    async registerKey(publicKey: string) {
      const r = await addKey(store, publicKey);
      if ("error" in r && !r.error.includes("already")) {
        throw new Error(r.error);
      }
    },
    async listVms() {
      const state = await store.read();
      const k = await store.knobs();
      return state.vms.map((vm) => ({
        name: vm.name,
        status: vm.status,
        sshDest: sshDestFor(vm.name, k.vmPlusDest),
        address: vm.address,
        port: vm.port,
        home: `${vmDir(dir, vm)}/home`,
        tags: vm.tags,
        image: vm.image,
        createdAt: vm.createdAt,
      }));
    },
    setKnobs: (k) => store.setKnobs(k),
    async holdNextNames(n: number) {
      await store.transact((s) => {
        s.heldNext = n;
      });
    },
    log() {
      let own = "";
      try {
        own = Deno.readTextFileSync(p.log);
      } catch { /* none */ }
      return lobby.log() + own;
    },
    async stop() {
      if (stopped) return;
      stopped = true;
      globalThis.removeEventListener("unload", onUnload);
      // The lobby first: in-flight `new`s die with their sessions.
      await lobby.stop();
      const state = await store.read();
      for (const vm of state.vms) await machines.halt(vm);
      // Anything left from VMs whose `new` was cut short.
      const ownNs = Deno.readLinkSync("/proc/self/ns/pid");
      const leftovers = processesMentioning(`${p.vms}/`);
      for (const pid of [...leftovers]) {
        let ns: string | null = null;
        try {
          ns = Deno.readLinkSync(`/proc/${pid}/ns/pid_for_children`);
        } catch { /* gone */ }
        // Only a VM's own namespace, never the host's.
        if (ns !== null && ns !== ownNs) {
          leftovers.push(...processesInPidNs(ns));
        }
      }
      await killAll(leftovers);
    },
  };
}
