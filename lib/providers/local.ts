import { readPidfile, stillOurs } from "../daemon/pidfile.ts";
import { OhcError } from "../errors.ts";
import { paths } from "../state/paths.ts";
import { LocalTransport } from "../transport/local.ts";
import { agentWorkDir, removeAgentWork } from "../voyage/ship/agent_workdir.ts";
import type { Provider, VmRecord } from "./types.ts";

/** Marks a folder as a local VM; `list()` reads it back. */
const MARKER = ".ohcommodore-vm.json";

/**
 * The embedded provider: a VM is a folder under `root` used as HOME, and its
 * processes are local processes. No account, no root, no network.
 */
export class LocalProvider implements Provider {
  readonly kind = "local" as const;
  constructor(readonly root: string) {}

  private dir(name: string): string {
    return `${this.root}/${name}`;
  }

  async create(name: string): Promise<VmRecord> {
    await Deno.mkdir(this.root, { recursive: true, mode: 0o700 });
    try {
      await Deno.mkdir(this.dir(name), { mode: 0o700 }); // atomic claim
    } catch (e) {
      if (e instanceof Deno.errors.AlreadyExists) {
        throw new OhcError(
          "name_taken",
          `VM name "${name}" is not available`,
          "pick another name",
        );
      }
      throw e;
    }
    await Deno.writeTextFile(
      `${this.dir(name)}/${MARKER}`,
      JSON.stringify({ name, created_at: new Date().toISOString() }) + "\n",
    );
    return this.record(name);
  }

  async destroy(name: string): Promise<void> {
    // A process that was still writing there can refill the folder while it
    // is removed; stop again and retry until it is gone.
    const { commandCgroups, sweepCommandCgroups } = await import(
      "../daemon/containment.ts"
    );
    for (let attempt = 0;; attempt++) {
      await stopVmProcesses(this.dir(name));
      await sweepCommandCgroups(commandCgroups(this.dir(name)));
      try {
        await Deno.remove(this.dir(name), { recursive: true });
        await removeAgentWork(this.dir(name));
        return;
      } catch (e) {
        if (e instanceof Deno.errors.NotFound) return;
        if (attempt >= 10) throw e;
        await new Promise((r) => setTimeout(r, 100 * (attempt + 1)));
      }
    }
  }

  async list(): Promise<VmRecord[]> {
    const out: VmRecord[] = [];
    try {
      for await (const e of Deno.readDir(this.root)) {
        if (!e.isDirectory) continue;
        try {
          await Deno.stat(`${this.dir(e.name)}/${MARKER}`);
          out.push(this.record(e.name));
        } catch { /* not a VM folder */ }
      }
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  transport(vm: Pick<VmRecord, "ssh_dest">): LocalTransport {
    return new LocalTransport(vm.ssh_dest);
  }

  private record(name: string): VmRecord {
    return {
      name,
      ssh_dest: this.dir(name),
      status: "running",
      provider: "local",
    };
  }
}

/**
 * Destroying a real VM ends everything on it; a local VM's processes are
 * found by their pidfiles (daemon), their tmux server, and (where /proc
 * exists) by running with HOME or cwd inside the VM's folder, or inside
 * the checkouts its agent user works in (agent_workdir.ts).
 */
async function stopVmProcesses(home: string): Promise<void> {
  await stopPidfiles(home);
  const work = await agentWorkDir(home);
  // A process killed in one round may have forked before it died (a captain
  // starting a tmux server, which daemonizes): look again until none is left.
  for (let round = 0; round < 5; round++) {
    await new Deno.Command("tmux", {
      args: ["-S", paths.tmuxSocket(home), "kill-server"],
      stdout: "null",
      stderr: "null",
    }).output().catch(() => {});
    const left = await processesIn(home, work);
    if (left.length === 0) return;
    for (const pid of left) {
      try {
        Deno.kill(pid, "SIGKILL");
      } catch { /* gone */ }
    }
    await new Promise((r) => setTimeout(r, 50));
  }
}

/** Pids of processes whose HOME or cwd is inside `home`, or cwd inside `work` (Linux /proc). */
async function processesIn(home: string, work: string): Promise<number[]> {
  const out: number[] = [];
  try {
    for await (const e of Deno.readDir("/proc")) {
      const pid = Number(e.name);
      if (!Number.isInteger(pid) || pid === Deno.pid) continue;
      try {
        const cwd = await Deno.readLink(`/proc/${pid}/cwd`);
        const env = await Deno.readTextFile(`/proc/${pid}/environ`);
        if (
          cwd === home || cwd.startsWith(`${home}/`) ||
          cwd === work || cwd.startsWith(`${work}/`) ||
          env.split("\0").includes(`HOME=${home}`)
        ) out.push(pid);
      } catch { /* gone, or not ours to read */ }
    }
  } catch { /* no /proc */ }
  return out;
}

async function stopPidfiles(home: string): Promise<void> {
  const runDir = paths.runDir(home);
  try {
    for await (const e of Deno.readDir(runDir)) {
      if (!e.name.endsWith(".pid")) continue;
      // Only while the pid is still the process that wrote the file
      // (daemon/pidfile.ts): a reused pid's group is somebody else's.
      const rec = await readPidfile(`${runDir}/${e.name}`);
      if (rec && (rec.start === null || await stillOurs(rec))) {
        const pid = rec.pid;
        try {
          Deno.kill(-pid, "SIGTERM"); // its process group
        } catch {
          try {
            Deno.kill(pid, "SIGTERM");
          } catch { /* already gone */ }
        }
      }
    }
  } catch { /* no run dir: nothing running */ }
}
