/**
 * Sails voyages from the flagship's daemon: for each ship of a voyage, take
 * the next task from the queue (atomically), send it with the voyage tip to
 * the ship, land the commit it returns in the voyage branch, and only then
 * mark the task done. When nothing is left, run verify.sh on the result.
 *
 * Each ship is reached through one long-lived captain session (see
 * session.ts). The driver remembers which commits each ship is known to
 * have (the tip it last checked out, the commit it last made): a ship that
 * has the current tip (its own task landed as a fast-forward) gets no
 * bundle, one that has an older tip gets a thin bundle of what it lacks,
 * and only a ship the driver knows nothing about gets the whole repo; if
 * the ship turns out to lack what the driver thought, it says so before
 * anything runs and gets the full bundle. A ship that finishes a task
 * claims its next one before the idle ships are woken, so the task its
 * landing released (whose code it has) usually goes to it.
 */
import { OhcError } from "../errors.ts";
import { base64ToBytes, bytesToBase64 } from "../inbox/types.ts";
import type { Provider } from "../providers/types.ts";
import type { ShipRecord } from "../state/fleet.ts";
import { download, upload } from "../transport/run.ts";
import type { Transport } from "../transport/types.ts";
import type {
  BaseArgs,
  RunTaskArgs,
  RunTaskResult,
  SyncResult,
} from "../../roles/captain.ts";
import { INLINE_BUNDLE_MAX, shipVoyageDir } from "../../roles/captain.ts";
import type { FinishOutcome, Task, Voyage, VoyageQueue } from "./queue.ts";
import { taskSlug } from "./plan_rules.ts";
import { CaptainSession } from "./session.ts";

export interface DriverDeps {
  queue: VoyageQueue;
  provider: Provider;
  ships: () => Promise<ShipRecord[]>;
  /** Secrets for agents (e.g. CLAUDE_CODE_OAUTH_TOKEN), kept in memory only. */
  secrets: (voyage: string) => Record<string, string>;
  log: (m: string) => void;
}

/** What the driver keeps per ship of a voyage while its loop runs. */
interface ShipState {
  session: CaptainSession | null;
  /** Commits the ship is known to hold (all of them exist in the bare repo). */
  known: string[];
  /** The checkout was prepared while the ship was idle (or that was tried). */
  warmed: boolean;
}

/** How a task's base travelled: what the logs say. */
type BaseSent = "no bundle" | "thin bundle" | "full bundle";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

export class VoyageDriver {
  private active = new Map<string, Set<string>>();
  private finishing = new Set<string>();
  private wakers = new Set<() => void>();
  /** Counts wake-ups, so a loop that was busy when one came doesn't wait. */
  private changes = 0;

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
    this.changes++;
    for (const w of this.wakers) w();
  }

  /** Waits up to `ms` for a wake-up, none if one came since `seen`. */
  private waitForChange(ms: number, seen: number): Promise<void> {
    if (this.changes !== seen) return Promise.resolve();
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
    let v: Voyage | null = null;
    for (let i = 0; !ship; i++) {
      v = await this.d.queue.get(voyage);
      if (!v || v.state !== "running") return;
      ship = await this.shipRecord(name);
      if (!ship) await sleep(Math.min(250 * 2 ** Math.min(i, 4), 2_000));
      if (i > 1_800) return log("never became ready");
    }
    await this.d.queue.setShipState(voyage, name, "idle");
    const st: ShipState = { session: null, known: [], warmed: false };
    // The claim made with the last task's outcome, when there was one.
    let claimed: { task: Task | null } | null = null;
    let seen = this.changes;
    try {
      if (!(await this.preflight(v!, ship, st, log))) return;
      while (true) {
        let task: Task | null;
        if (claimed) {
          task = claimed.task;
          claimed = null;
        } else {
          if (!(await this.shipRecord(name))) {
            await this.d.queue.setShipState(voyage, name, "gone");
            return log("left the fleet");
          }
          seen = this.changes;
          task = await this.d.queue.claim(voyage, name);
        }
        if (!task) {
          v = await this.d.queue.get(voyage);
          if (!v || v.state !== "running") return;
          const s = await this.d.queue.settled(voyage);
          if (s.settled) return await this.complete(v, s.allDone);
          if (!st.warmed) await this.warm(v!, ship, st, log);
          await this.waitForChange(1_000, seen);
          continue;
        }
        st.warmed = true; // a task prepares the checkout as well
        const r = await this.runTask(v!, ship, task, log, st);
        if (r === "lost") {
          await sleep(2_000);
          continue;
        }
        // A ship that left the fleet meanwhile takes nothing more.
        const stays = (await this.shipRecord(name)) !== null;
        seen = this.changes;
        if (stays) {
          claimed = {
            task: (await this.d.queue.finishAndClaim(
              v!.id,
              task.id,
              name,
              r.outcome,
            )).next,
          };
        } else {
          await this.d.queue.finish(v!.id, task.id, name, r.outcome);
        }
        log(r.note);
        this.wake(); // only now: the others look after this ship has chosen
      }
    } finally {
      await st.session?.close();
    }
  }

  private session(v: Voyage, t: Transport, st: ShipState): CaptainSession {
    if (!st.session?.alive) {
      st.session = new CaptainSession(t, v.id, this.d.secrets(v.id));
    }
    return st.session;
  }

  /**
   * The voyage tip for a ship, with as little as it needs: nothing when it
   * has the tip, a thin bundle when the driver knows some of what it has,
   * else the whole repo. Small bundles ride in the request; large ones are
   * uploaded as a file.
   */
  private async baseFor(
    v: Voyage,
    t: Transport,
    st: ShipState,
  ): Promise<{ base: Omit<BaseArgs, "voyage_id" | "branch">; sent: BaseSent }> {
    const git = await import("./git.ts");
    const tip = await git.branchTip(v.bare, v.branch);
    if (st.known.includes(tip)) return { base: { tip }, sent: "no bundle" };
    const work = `${v.plan_dir}/../work`;
    await Deno.mkdir(work, { recursive: true });
    const file = `${work}/base-${crypto.randomUUID().slice(0, 8)}.bundle`;
    try {
      const thin = st.known.length > 0 &&
        await git.bundleVoyage({ bare: v.bare, file, exclude: st.known });
      if (!thin) await git.bundleVoyage({ bare: v.bare, file });
      const bytes = await Deno.readFile(file);
      const sent = thin ? "thin bundle" : "full bundle";
      if (bytes.length <= INLINE_BUNDLE_MAX) {
        return { base: { bundle_data: bytesToBase64(bytes), thin }, sent };
      }
      const remote = `${shipVoyageDir(v.id)}/base.bundle`;
      await upload(t, bytes, remote, "600");
      return { base: { bundle_file: remote, thin }, sent };
    } finally {
      await Deno.remove(file).catch(() => {});
    }
  }

  /**
   * Sends `op` with the voyage tip; when the ship lacks what the driver
   * believed it had (`need_base`, nothing ran), once more with the full
   * bundle.
   */
  private async withBase<T>(
    v: Voyage,
    t: Transport,
    st: ShipState,
    send: (base: BaseArgs) => Promise<T>,
    log: (m: string) => void,
    what: string,
  ): Promise<T> {
    const common = { voyage_id: v.id, branch: v.branch };
    const first = await this.baseFor(v, t, st);
    log(`${what}: ${first.sent}`);
    try {
      return await send({ ...common, ...first.base });
    } catch (e) {
      if (!(e instanceof OhcError && e.code === "need_base")) throw e;
      if (first.sent === "full bundle") throw e;
      log(`${what}: the ship lacks its base (${e.message}); full bundle`);
      st.known = [];
      const full = await this.baseFor(v, t, st);
      return await send({ ...common, ...full.base });
    }
  }

  /**
   * Before its first claim: the ship has the agent's program. A ship that
   * lacks it fails the voyage at once, with one reason, instead of failing
   * every task it would claim. Anything else (unreachable, a ship too old
   * to know `check`) is left to the tasks.
   */
  private async preflight(
    v: Voyage,
    ship: ShipRecord,
    st: ShipState,
    log: (m: string) => void,
  ): Promise<boolean> {
    if (v.agent !== "claude" && v.agent !== "codex") return true;
    try {
      const s = this.session(v, this.d.provider.transport(ship), st);
      const r = await s.request<{ program: string | null }>("check", {
        voyage_id: v.id,
        agent: v.agent,
      });
      log(`pre-flight: ${v.agent} is ${r.program}`);
      return true;
    } catch (e) {
      if (!(e instanceof OhcError && e.code === "agent_missing")) {
        log(`pre-flight could not run: ${(e as Error).message}`);
        return true;
      }
      log(`pre-flight failed: ${e.message}`);
      await this.d.queue.failVoyage(v.id, e.message);
      this.wake();
      return false;
    }
  }

  /** While idle: open the session and bring the checkout to the tip. */
  private async warm(
    v: Voyage,
    ship: ShipRecord,
    st: ShipState,
    log: (m: string) => void,
  ): Promise<void> {
    st.warmed = true;
    const t = this.d.provider.transport(ship);
    try {
      const s = this.session(v, t, st);
      const r = await this.withBase(
        v,
        t,
        st,
        (base) => s.request<SyncResult>("sync", base),
        log,
        "warm-up",
      );
      st.known = [r.base];
      log(`warm-up: checkout at ${r.base.slice(0, 12)}`);
    } catch (e) {
      log(`warm-up failed: ${(e as Error).message}`);
    }
  }

  /**
   * Runs one task on the ship and lands its commit: what to record, or
   * "lost" when the ship could not be reached (its lease decides).
   */
  private async runTask(
    v: Voyage,
    ship: ShipRecord,
    task: Task,
    log: (m: string) => void,
    st: ShipState,
  ): Promise<{ outcome: FinishOutcome; note: string } | "lost"> {
    const git = await import("./git.ts");
    const t = this.d.provider.transport(ship);
    const work = `${v.plan_dir}/../work`;
    try {
      log(`task ${task.id}: start (attempt ${task.attempts})`);
      const s = this.session(v, t, st);
      const args: Omit<RunTaskArgs, keyof BaseArgs> = {
        objective: v.objective,
        agent: v.agent as RunTaskArgs["agent"],
        agent_command: v.agent_command,
        model: v.model,
        task: {
          id: task.id,
          subject: task.subject,
          description: task.description,
          acceptance: task.acceptance,
          command: task.command,
        },
      };
      // The claim set the lease; a ship reports progress several times a
      // task, and each extension is a transaction on the daemon's database,
      // which the next landing and claim wait behind. Extending it once a
      // third of the lease (at most 5 s) has passed keeps it just as alive.
      let lastBeat = Date.now();
      const beatEvery = Math.min(v.lease_s * 1000 / 3, 5_000);
      const beat = () => {
        if (Date.now() - lastBeat < beatEvery) return;
        lastBeat = Date.now();
        void this.d.queue.heartbeat(v.id, ship.name, task.id);
      };
      const res = await this.withBase(
        v,
        t,
        st,
        (base) => s.request<RunTaskResult>("task", { ...base, ...args }, beat),
        log,
        `task ${task.id}`,
      );
      st.known = [res.base];
      if (!res.commit || !res.bundle) {
        return {
          outcome: { ok: true, commit: null, agent: res.agent },
          note: `task ${task.id}: done (no changes)`,
        };
      }
      await Deno.mkdir(work, { recursive: true });
      const local = `${work}/task-${taskSlug(task.id)}-${
        crypto.randomUUID().slice(0, 8)
      }.bundle`;
      await Deno.writeFile(
        local,
        res.bundle_data !== undefined
          ? base64ToBytes(res.bundle_data)
          : await download(t, res.bundle),
      );
      const landed = await git.integrateTask({
        bare: v.bare,
        branch: v.branch,
        taskId: task.id,
        source: local,
        commit: res.commit,
        worktreeDir: `${work}/worktrees`,
      });
      await Deno.remove(local).catch(() => {});
      // The ship holds its commit, now in the bare repo too: the next base
      // for it is at most a thin bundle, or nothing after a fast-forward.
      st.known = [res.base, res.commit];
      if (landed.ok) {
        return {
          outcome: { ok: true, commit: landed.tip, agent: res.agent },
          note: `task ${task.id}: done, landed at ${landed.tip.slice(0, 12)}`,
        };
      }
      return {
        outcome: {
          ok: false,
          final: true,
          error: `merge conflict in ${
            landed.conflict.join(", ")
          }; the work is kept on ${landed.sideBranch}`,
          conflict: landed.conflict,
          side_branch: landed.sideBranch,
          commit: res.commit,
          agent: res.agent,
        },
        note: `task ${task.id}: conflict in ${landed.conflict.join(", ")}`,
      };
    } catch (e) {
      const err = e as Error;
      if (e instanceof OhcError && e.code === "unreachable") {
        log(
          `task ${task.id}: ship unreachable (${err.message}); its lease will expire`,
        );
        return "lost";
      }
      const data = e instanceof OhcError ? e.data : undefined;
      return {
        outcome: {
          ok: false,
          error: err.message,
          agent: (data?.agent ?? null) as FinishOutcome["agent"],
        },
        note: `task ${task.id}: failed: ${err.message}`,
      };
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
