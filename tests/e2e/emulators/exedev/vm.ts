/**
 * An emulated exe.dev VM: a real sshd on its own loopback address, inside
 * its own mount, UTS and pid namespaces
 * (`unshare --mount --uts --pid --fork --kill-child --mount-proc`):
 *
 * - hostname = the VM's name;
 * - a private directory bind-mounted on /home/exedev;
 * - a private /etc/passwd (the host's plus a `vm+<name>` alias of exedev, so
 *   the `vm+<name>@vm.exe.xyz` login works);
 * - the emulator's `ssh_config.d` bind-mounted on /etc/ssh/ssh_config.d, so
 *   `ssh exe.dev` and `ssh <other>.exe.xyz` resolve inside the VM as they do
 *   on exe.dev;
 * - sshd accepts exactly the account's registered keys (AuthorizedKeysCommand
 *   `cat <emulator>/authorized_keys`), only for user exedev (or the alias).
 *
 * Everything else is the host's filesystem, seen as user exedev, unless
 * the knob `bareVms` is on: then sshd puts every session in the VM's own
 * bare root (tests/helpers/bare_root.ts, ChrootDirectory), which holds the
 * OS and nothing of the host's development tools, checkout or caches, as a
 * fresh exe.dev VM holds nothing but what we upload.
 * Processes started in the VM outlive their SSH session (setsid/nohup) and
 * die with the pid namespace when the VM is removed.
 */

import { bareRootScript } from "../../../helpers/bare_root.ts";
import type { Machines, StartedVm } from "./lobby.ts";
import type { Knobs, VmRecord } from "./model.ts";
import { paths } from "./store.ts";

export const SSHD = "/usr/sbin/sshd";
const UNSHARE = "/usr/bin/unshare";
const SETSID = "/usr/bin/setsid";
export const VM_USER = "exedev";
export const VM_HOME = "/home/exedev";
/**
 * Where a bare VM's root is mounted in its own namespace, for sshd's
 * ChrootDirectory (every component root's and not group/world-writable,
 * which the emulator's directory under /tmp is not).
 */
const BARE_MOUNT = "/run/ohc-exedev-bare-root";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export function vmDir(emuDir: string, vm: Pick<VmRecord, "name" | "index">) {
  return `${paths(emuDir).vms}/${vm.name}-${vm.index}`;
}

/** A port nobody listens on right now at `hostname` (racy; callers retry). */
function freePort(hostname: string): number {
  const l = Deno.listen({ hostname, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function readLinkOr(path: string): string | null {
  try {
    return Deno.readLinkSync(path);
  } catch {
    return null;
  }
}

function cmdline(pid: number): string {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/cmdline`).replaceAll("\0", " ");
  } catch {
    return "";
  }
}

function pids(): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (/^\d+$/.test(e.name)) out.push(Number(e.name));
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

/** Processes in pid namespace `ns` (`pid:[inode]`). */
export function processesInPidNs(ns: string): number[] {
  // Never the namespace we run in: that would be every process we can see.
  if (ns === readLinkOr("/proc/self/ns/pid")) return [];
  return pids().filter((p) => readLinkOr(`/proc/${p}/ns/pid`) === ns);
}

/** Processes whose command line mentions `needle` (e.g. a VM's directory). */
export function processesMentioning(needle: string): number[] {
  return pids().filter((p) => p !== Deno.pid && cmdline(p).includes(needle));
}

/** SIGKILLs these pids and waits (bounded) until they are gone. */
export async function killAll(list: number[], timeoutMs = 5000): Promise<void> {
  for (const pid of list) {
    try {
      Deno.kill(pid, "SIGKILL");
    } catch { /* gone */ }
  }
  const deadline = Date.now() + timeoutMs;
  while (list.some(alive) && Date.now() < deadline) await sleep(20);
}

interface Ids {
  uid: number;
  gid: number;
}

function exedevIds(): Ids {
  for (const line of Deno.readTextFileSync("/etc/passwd").split("\n")) {
    const f = line.split(":");
    if (f[0] === VM_USER) return { uid: Number(f[2]), gid: Number(f[3]) };
  }
  throw new Error(`user ${VM_USER} does not exist`);
}

async function copySkel(home: string, ids: Ids): Promise<void> {
  await Deno.mkdir(home, { recursive: true, mode: 0o755 });
  try {
    for await (const e of Deno.readDir("/etc/skel")) {
      if (!e.isFile) continue;
      await Deno.copyFile(`/etc/skel/${e.name}`, `${home}/${e.name}`);
      await Deno.chown(`${home}/${e.name}`, ids.uid, ids.gid);
    }
  } catch { /* no skel */ }
  await Deno.chown(home, ids.uid, ids.gid);
  await Deno.chmod(home, 0o755);
}

const shq = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

function sshdConfig(
  emuDir: string,
  vm: VmRecord,
  port: number,
  knobs: Knobs,
): string {
  const p = paths(emuDir);
  if (/\s/.test(p.authorizedKeys)) {
    throw new Error(`emulator dir must not contain spaces: ${emuDir}`);
  }
  const lines = [
    `# exe.dev emulator: VM ${vm.name}`,
    `Port ${port}`,
    `ListenAddress ${vm.address}`,
    `HostKey ${p.vmHostKey}`,
    "PidFile none",
    "AuthorizedKeysFile none",
    `AuthorizedKeysCommand /usr/bin/cat ${p.authorizedKeys}`,
    "AuthorizedKeysCommandUser root",
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PermitRootLogin no",
    `AllowUsers ${VM_USER} vm+${vm.name}`,
    "StrictModes no",
    "UsePAM no",
    "UseDNS no",
    "PrintMotd no",
    "PrintLastLog no",
    "X11Forwarding no",
    "AllowTcpForwarding yes",
    "AcceptEnv LANG LC_*",
    "LogLevel VERBOSE",
    "LoginGraceTime 30",
    "MaxStartups 200",
    "MaxSessions 100",
    "Subsystem sftp internal-sftp",
  ];
  const env = { ...knobs.vmEnv };
  for (const e of vm.env) {
    const i = e.indexOf("=");
    env[e.slice(0, i)] = e.slice(i + 1);
  }
  const setEnv = Object.entries(env).map(([k, v]) => {
    if (/["\n]/.test(v)) throw new Error(`unsupported env value for ${k}`);
    return `"${k}=${v}"`;
  });
  if (setEnv.length > 0) lines.push(`SetEnv ${setEnv.join(" ")}`);
  if (knobs.bareVms) lines.push(`ChrootDirectory ${BARE_MOUNT}`);
  return lines.join("\n") + "\n";
}

function initScript(
  emuDir: string,
  dir: string,
  vm: VmRecord,
  knobs: Knobs,
): string {
  const p = paths(emuDir);
  const pendingMs = knobs.pendingMs;
  return [
    "#!/bin/sh",
    "# exe.dev emulator: pid 1 of the VM's namespaces, then its sshd.",
    "set -e",
    `mount --bind ${shq(`${dir}/home`)} ${VM_HOME}`,
    `mount --bind ${shq(`${dir}/passwd`)} /etc/passwd`,
    `if [ -d /etc/ssh/ssh_config.d ]; then mount --bind ${
      shq(p.sshConfigDir)
    } /etc/ssh/ssh_config.d; fi`,
    knobs.bareVms
      ? bareRootScript(`${dir}/root`, {
        binds: [
          [`${dir}/home`, VM_HOME],
          [p.sshConfigDir, "/etc/ssh/ssh_config.d"],
        ],
      }) + `mount --rbind "$R" ${BARE_MOUNT}`
      : "",
    `hostname ${shq(vm.name)}`,
    pendingMs > 0 ? pendingWait(pendingMs, p.knobs) : "",
    `exec ${SSHD} -D -f ${shq(`${dir}/sshd_config`)} -E ${
      shq(`${dir}/sshd.log`)
    }`,
    "",
  ].join("\n");
}

/**
 * The VM stays pending for `ms`, or until the knob is set back to 0,
 * whichever comes first: a test holds a VM pending with a long one and
 * lets it go when it has seen what it wanted, however loaded the machine.
 */
function pendingWait(ms: number, knobsFile: string): string {
  return [
    `end=$(( $(date +%s%3N) + ${Math.round(ms)} ))`,
    `while [ "$(date +%s%3N)" -lt "$end" ] && grep -Eq '"pendingMs": *[1-9]' ${
      shq(knobsFile)
    }; do sleep 0.05; done`,
  ].join("\n");
}

export class RealMachines implements Machines {
  constructor(readonly emuDir: string) {}

  log(message: string): void {
    try {
      Deno.writeTextFileSync(
        paths(this.emuDir).log,
        `${new Date().toISOString()} ${message}\n`,
        { append: true },
      );
    } catch { /* best effort */ }
  }

  async start(vm: VmRecord, knobs: Knobs): Promise<StartedVm> {
    const dir = vmDir(this.emuDir, vm);
    await Deno.mkdir(dir, { recursive: true, mode: 0o755 });
    const ids = exedevIds();
    if (knobs.bareVms) {
      await Deno.mkdir(BARE_MOUNT, { mode: 0o755 }).catch(() => {});
    }
    const home = `${dir}/home`;
    try {
      await Deno.stat(home);
    } catch {
      await copySkel(home, ids);
    }
    const hostPasswd = await Deno.readTextFile("/etc/passwd");
    await Deno.writeTextFile(
      `${dir}/passwd`,
      hostPasswd.replace(/\n?$/, "\n") +
        `vm+${vm.name}:*:${ids.uid}:${ids.gid}:exe.dev login alias:${VM_HOME}:/bin/bash\n`,
    );
    await Deno.chmod(`${dir}/passwd`, 0o644);
    await Deno.writeTextFile(
      `${dir}/init.sh`,
      initScript(this.emuDir, dir, vm, knobs),
    );

    let lastLog = "";
    for (let attempt = 0; attempt < 4; attempt++) {
      const port = freePort(vm.address);
      await Deno.writeTextFile(
        `${dir}/sshd_config`,
        sshdConfig(this.emuDir, vm, port, knobs),
      );
      await Deno.writeTextFile(`${dir}/sshd.log`, "");
      const child = new Deno.Command(SETSID, {
        args: [
          UNSHARE,
          "--mount",
          "--uts",
          "--pid",
          "--fork",
          "--kill-child",
          "--mount-proc",
          "--propagation",
          "private",
          "/bin/sh",
          `${dir}/init.sh`,
        ],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
      await Deno.writeTextFile(`${dir}/unshare.pid`, `${child.pid}\n`);
      let exited = false;
      child.status.then(() => exited = true);

      // The new pid namespace, seen from outside: unshare's children's ns.
      const ownNs = readLinkOr(`/proc/self/ns/pid`);
      let pidNs: string | null = null;
      for (let i = 0; i < 200 && !exited; i++) {
        const ns = readLinkOr(`/proc/${child.pid}/ns/pid_for_children`);
        if (ns !== null && ns !== ownNs) {
          pidNs = ns;
          break;
        }
        await sleep(10);
      }

      if (knobs.pendingMs > 0 && pidNs !== null) {
        child.unref();
        return { port, pid: child.pid, pidNs };
      }
      const ready = `Server listening on ${vm.address} port ${port}`;
      const deadline = Date.now() + 15_000;
      let log = "";
      while (Date.now() < deadline && !exited) {
        log = await Deno.readTextFile(`${dir}/sshd.log`).catch(() => "");
        if (log.includes(ready)) break;
        await sleep(15);
      }
      if (log.includes(ready) && !exited && pidNs !== null) {
        child.unref();
        return { port, pid: child.pid, pidNs };
      }
      lastLog = log || (exited ? "VM init exited without output" : "timed out");
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }
      await child.status;
      if (pidNs) await killAll(processesInPidNs(pidNs));
      if (!/Address already in use|Cannot bind any address/.test(log)) break;
    }
    throw new Error(`VM ${vm.name}: sshd did not start: ${lastLog.trim()}`);
  }

  async halt(vm: VmRecord): Promise<void> {
    const dir = vmDir(this.emuDir, vm);
    const victims = new Set<number>();
    if (vm.pidNs) {
      for (const p of processesInPidNs(vm.pidNs)) {
        victims.add(p);
      }
    }
    for (const p of processesMentioning(`${dir}/`)) victims.add(p);
    if (vm.pid && cmdline(vm.pid).includes(dir)) victims.add(vm.pid);
    await killAll([...victims]);
    // Anything that slipped in meanwhile (bounded second pass).
    if (vm.pidNs) await killAll(processesInPidNs(vm.pidNs));
  }

  async destroy(vm: VmRecord): Promise<void> {
    await this.halt(vm);
    await Deno.remove(vmDir(this.emuDir, vm), { recursive: true }).catch(
      () => {},
    );
  }

  async isUp(vm: VmRecord): Promise<boolean> {
    if (vm.port === 0) return false;
    try {
      const log = await Deno.readTextFile(`${vmDir(this.emuDir, vm)}/sshd.log`);
      return log.includes(`Server listening on ${vm.address} port ${vm.port}`);
    } catch {
      return false;
    }
  }
}
