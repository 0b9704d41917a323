/**
 * Sails voyages from the flagship's daemon: for each ship of a voyage, take
 * the next task from the queue (atomically), send it with the voyage tip to
 * the ship, land the commit it returns in the voyage branch, and only then
 * mark the task done. When nothing is left, run verify.sh on the result.
 */
import { OhcError } from "../errors.ts";
import type { Provider } from "../providers/types.ts";
import { call } from "../rpc/client.ts";
import type { ShipRecord } from "../state/fleet.ts";
import { download, upload } from "../transport/run.ts";
import type { RunTaskArgs, RunTaskResult } from "../../roles/captain.ts";
import { shipVoyageDir } from "../../roles/captain.ts";
import type { Task, Voyage, VoyageQueue } from "./queue.ts";

export interface DriverDeps {
  queue: VoyageQueue;
  provider: Provider;
  ships: () => Promise<ShipRecord[]>;
  /** Secrets for agents (e.g. CLAUDE_CODE_OAUTH_TOKEN), kept in memory only. */
  secrets: (voyage: string) => Record<string, string>;
  log: (m: string) => void;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class VoyageDriver {
  private active = new Map<string, Set<string>>();
  private finishing = new Set<string>();
  private wakers = new Set<() => void>();

  constructor(private d: DriverDeps) {}

  /** Picks up every voyage that was running when the daemon stopped. */
  async resume(): Promise<void> {
    for (const v of await this.d.queue.list()) {
      if (v.state === "running") await this.start(v.id);
    }
  }

  async start(voyage: string): Promise<void> {
    const ships = (await this.d.queue.ships(voyage)).map((s) => s.ship);
    const running = this.active.get(voyage) ?? new Set();
    this.active.set(voyage, running);
    for (const s of ships) {
      if (running.has(s)) continue;
      running.add(s);
      void this.shipLoop(voyage, s).finally(() => running.delete(s));
    }
  }

  /** Something changed (a task finished): idle ships look again. */
  private wake() {
    for (const w of this.wakers) w();
  }

  private waitForChange(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(t);
        this.wakers.delete(done);
        resolve();
      };
      const t = setTimeout(done, ms);
      this.wakers.add(done);
    });
  }

  private async shipRecord(name: string): Promise<ShipRecord | null> {
    const s = (await this.d.ships()).find((x) => x.name === name);
    return s && s.status === "running" && s.ssh_dest ? s : null;
  }

  private async shipLoop(voyage: string, name: string): Promise<void> {
    const log = (m: string) => this.d.log(`voyage ${voyage} ${name}: ${m}`);
    // The ship may still be provisioning.
    let ship: ShipRecord | null = null;
    for (let i = 0; !ship; i++) {
      const v = await this.d.queue.get(voyage);
      if (!v || v.state !== "running") return;
      ship = await this.shipRecord(name);
      if (!ship) await sleep(Math.min(250 * 2 ** Math.min(i, 4), 2_000));
      if (i > 1_800) return log("never became ready");
    }
    await this.d.queue.setShipState(voyage, name, "idle");
    while (true) {
      const v = await this.d.queue.get(voyage);
      if (!v || v.state !== "running") return;
      if (!(await this.shipRecord(name))) {
        await this.d.queue.setShipState(voyage, name, "gone");
        return log("left the fleet");
      }
      const task = await this.d.queue.claim(voyage, name);
      if (!task) {
        const s = await this.d.queue.settled(voyage);
        if (s.settled) return await this.complete(v, s.allDone);
        await this.waitForChange(1_000);
        continue;
      }
      const lost = await this.runTask(v, ship, task, log);
      this.wake();
      if (lost) await sleep(2_000); // an unreachable ship: the lease decides
    }
  }

  /** Runs one task on the ship. True when the ship could not be reached. */
  private async runTask(
    v: Voyage,
    ship: ShipRecord,
    task: Task,
    log: (m: string) => void,
  ): Promise<boolean> {
    const git = await import("./git.ts");
    const t = this.d.provider.transport(ship);
    const work = `${v.plan_dir}/../work`;
    try {
      log(`task ${task.id}: start (attempt ${task.attempts})`);
      const baseFile = `${work}/base-${task.id}-${
        crypto.randomUUID().slice(0, 8)
      }.bundle`;
      await Deno.mkdir(work, { recursive: true });
      await git.bundleVoyage({ bare: v.bare, file: baseFile });
      await upload(
        t,
        await Deno.readFile(baseFile),
        `${shipVoyageDir(v.id)}/base.bundle`,
        "600",
      );
      await Deno.remove(baseFile).catch(() => {});

      const args: RunTaskArgs = {
        voyage_id: v.id,
        branch: v.branch,
        objective: v.objective,
        agent: v.agent as RunTaskArgs["agent"],
        agent_command: v.agent_command,
        task: {
          id: task.id,
          subject: task.subject,
          description: task.description,
          acceptance: task.acceptance,
          command: task.command,
        },
      };
      const res = await call<RunTaskResult>(
        t,
        "captain.run_task",
        { ...args },
        {
          secrets: this.d.secrets(v.id),
          onEvent: (e) => {
            if (e.type === "progress") {
              void this.d.queue.heartbeat(v.id, ship.name, task.id);
            }
          },
        },
      );
      if (!res.commit || !res.bundle) {
        await this.d.queue.finish(v.id, task.id, ship.name, {
          ok: true,
          commit: null,
        });
        log(`task ${task.id}: done (no changes)`);
        return false;
      }
      const local = `${work}/task-${task.id}-${
        crypto.randomUUID().slice(0, 8)
      }.bundle`;
      await Deno.writeFile(local, await download(t, res.bundle));
      const landed = await git.integrateTask({
        bare: v.bare,
        branch: v.branch,
        taskId: task.id,
        source: local,
        commit: res.commit,
        worktreeDir: `${work}/worktrees`,
      });
      await Deno.remove(local).catch(() => {});
      if (landed.ok) {
        await this.d.queue.finish(v.id, task.id, ship.name, {
          ok: true,
          commit: landed.tip,
        });
        log(`task ${task.id}: done, landed at ${landed.tip.slice(0, 12)}`);
      } else {
        await this.d.queue.finish(v.id, task.id, ship.name, {
          ok: false,
          final: true,
          error: `merge conflict in ${
            landed.conflict.join(", ")
          }; the work is kept on ${landed.sideBranch}`,
          conflict: landed.conflict,
          side_branch: landed.sideBranch,
          commit: res.commit,
        });
        log(`task ${task.id}: conflict in ${landed.conflict.join(", ")}`);
      }
      return false;
    } catch (e) {
      const err = e as Error;
      if (e instanceof OhcError && e.code === "unreachable") {
        log(
          `task ${task.id}: ship unreachable (${err.message}); its lease will expire`,
        );
        return true;
      }
      log(`task ${task.id}: failed: ${err.message}`);
      await this.d.queue.finish(v.id, task.id, ship.name, {
        ok: false,
        error: err.message,
      });
      return false;
    }
  }

  /** All tasks settled: verify the result once. */
  private async complete(v: Voyage, allDone: boolean): Promise<void> {
    if (this.finishing.has(v.id)) return;
    this.finishing.add(v.id);
    try {
      if (!allDone) {
        await this.d.queue.setVoyageState(v.id, "failed");
        return this.d.log(`voyage ${v.id}: failed (tasks failed)`);
      }
      await this.d.queue.setVoyageState(v.id, "complete");
      const git = await import("./git.ts");
      this.d.log(`voyage ${v.id}: complete; running verify.sh`);
      const r = await git.runVerify({
        bare: v.bare,
        branch: v.branch,
        dir: `${v.plan_dir}/../verify`,
        script: `${v.plan_dir}/verify.sh`,
      });
      await this.d.queue.setVoyageState(v.id, r.ok ? "verified" : "failed", {
        verify_code: r.code,
        verify_output: r.output,
      });
      this.d.log(
        `voyage ${v.id}: verify ${r.ok ? "passed" : `failed (${r.code})`}`,
      );
    } catch (e) {
      this.d.log(
        `voyage ${v.id}: verify could not run: ${(e as Error).message}`,
      );
      await this.d.queue.setVoyageState(v.id, "failed", {
        verify_code: -1,
        verify_output: (e as Error).message,
      });
    }
  }
}
