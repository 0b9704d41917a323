/**
 * The emulator's state on disk, under its directory:
 *
 * - `state.json`: account, keys, VMs; every change is a read-modify-write
 *   under an exclusive flock on `state.lock`, written to a temp file,
 *   fsynced and renamed, so concurrent lobby sessions never lose an update;
 * - `knobs.json`: behaviour switches (see model.ts), read per command;
 * - derived after every change: `authorized_keys` (all registered keys: what
 *   every VM's sshd accepts) and `ssh_config.d/exe.conf` (the client config
 *   that maps `exe.dev` and `<vm>.exe.xyz` to loopback addresses).
 */

import type { Store } from "./lobby.ts";
import { DEFAULT_KNOBS, emptyState, type Knobs, type State } from "./model.ts";

export interface EmulatorInfo {
  lobbyHost: string;
  lobbyPort: number;
}

export const paths = (dir: string) => ({
  state: `${dir}/state.json`,
  lock: `${dir}/state.lock`,
  knobs: `${dir}/knobs.json`,
  info: `${dir}/emulator.json`,
  authorizedKeys: `${dir}/authorized_keys`,
  sshConfigDir: `${dir}/ssh_config.d`,
  sshConfig: `${dir}/ssh_config.d/exe.conf`,
  vmHostKey: `${dir}/vm_host_ed25519_key`,
  vms: `${dir}/vms`,
  lobby: `${dir}/lobby`,
  log: `${dir}/emulator.log`,
});

export async function writeAtomic(
  path: string,
  text: string,
  mode = 0o644,
): Promise<void> {
  const tmp = `${path}.tmp.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}`;
  const f = await Deno.open(tmp, {
    write: true,
    create: true,
    truncate: true,
    mode,
  });
  try {
    const bytes = new TextEncoder().encode(text);
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    await f.sync();
  } finally {
    f.close();
  }
  await Deno.chmod(tmp, mode);
  await Deno.rename(tmp, path);
}

export function renderSshConfig(
  info: EmulatorInfo,
  state: State,
): string {
  const lines = [
    "# Written by the exe.dev emulator (tests/e2e/emulators/exedev).",
    "# exe.dev is the lobby; <vm>.exe.xyz and vm+<vm>@vm.exe.xyz are VMs.",
    "Host exe.dev",
    `  HostName ${info.lobbyHost}`,
    `  Port ${info.lobbyPort}`,
    "  User root",
  ];
  const vms = state.vms.filter((v) => v.port > 0);
  for (const vm of vms) {
    lines.push(
      `Match originalhost vm.exe.xyz user vm+${vm.name}`,
      `  HostName ${vm.address}`,
      `  Port ${vm.port}`,
    );
  }
  for (const vm of vms) {
    lines.push(
      `Host ${vm.name}.exe.xyz`,
      `  HostName ${vm.address}`,
      `  Port ${vm.port}`,
      "  User exedev",
    );
  }
  lines.push(
    "Host exe.dev *.exe.xyz",
    "  StrictHostKeyChecking no",
    "  UserKnownHostsFile /dev/null",
    "  LogLevel ERROR",
    "  ConnectTimeout 10",
    "",
  );
  return lines.join("\n");
}

export class FileStore implements Store {
  readonly p: ReturnType<typeof paths>;
  constructor(readonly dir: string) {
    this.p = paths(dir);
  }

  async read(): Promise<State> {
    try {
      return JSON.parse(await Deno.readTextFile(this.p.state)) as State;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return emptyState();
      throw e;
    }
  }

  async knobs(): Promise<Knobs> {
    try {
      return {
        ...DEFAULT_KNOBS,
        ...JSON.parse(await Deno.readTextFile(this.p.knobs)),
      };
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return { ...DEFAULT_KNOBS };
      throw e;
    }
  }

  async setKnobs(k: Partial<Knobs>): Promise<void> {
    await this.withLock(async () => {
      const next = { ...(await this.knobs()), ...k };
      await writeAtomic(this.p.knobs, JSON.stringify(next, null, 2) + "\n");
    });
  }

  async info(): Promise<EmulatorInfo> {
    return JSON.parse(await Deno.readTextFile(this.p.info));
  }

  private async withLock<T>(fn: () => Promise<T>): Promise<T> {
    const lock = await Deno.open(this.p.lock, {
      read: true,
      write: true,
      create: true,
    });
    try {
      await lock.lock(true);
      return await fn();
    } finally {
      lock.close();
    }
  }

  transact<T>(fn: (s: State) => T | Promise<T>): Promise<T> {
    return this.withLock(async () => {
      const state = await this.read();
      const result = await fn(state);
      await writeAtomic(this.p.state, JSON.stringify(state, null, 2) + "\n");
      await this.writeDerived(state);
      return result;
    });
  }

  /** authorized_keys and the ssh config, from the state. */
  async writeDerived(state: State): Promise<void> {
    await writeAtomic(
      this.p.authorizedKeys,
      state.keys.map((k) => `${k.publicKey} ${k.name}\n`).join(""),
    );
    await Deno.mkdir(this.p.sshConfigDir, { recursive: true, mode: 0o755 });
    await writeAtomic(
      this.p.sshConfig,
      renderSshConfig(await this.info(), state),
    );
  }
}
