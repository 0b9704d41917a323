/**
 * What the driver does on one ship of a voyage: learn what it holds, check
 * it has the agent, warm its checkout while idle, run a task there and land
 * its commit. The voyage tip travels with as little as the ship needs (see
 * driver.ts).
 */
import { OhcError } from "../../errors.ts";
import { base64ToBytes, bytesToBase64 } from "../../inbox/types.ts";
import type { ShipRecord } from "../../state/fleet.ts";
import { download, upload } from "../../transport/run.ts";
import type { Transport } from "../../transport/types.ts";
import {
  type BaseArgs,
  type HoldResult,
  INLINE_BUNDLE_MAX,
  type RunTaskArgs,
  type RunTaskResult,
  shipVoyageDir,
  type SyncResult,
  type TaskKey,
} from "../protocol.ts";
import { isAgentKind } from "../ship/agents/kinds.ts";
import { agentProgram } from "../ship/agents/registry.ts";
import type { FinishOutcome, Task, Voyage, VoyageQueue } from "./queue.ts";
import { taskSlug } from "../plan/plan_rules.ts";
import type { Provider } from "../../providers/types.ts";
import { CaptainSession } from "./session.ts";

/** What the driver needs (the daemon gives it). */
export interface DriverDeps {
  queue: VoyageQueue;
  provider: Provider;
  ships: () => Promise<ShipRecord[]>;
  /** Secrets for agents (e.g. CLAUDE_CODE_OAUTH_TOKEN), kept in memory only. */
  secrets: (voyage: string) => Record<string, string>;
  log: (m: string) => void;
}

/** What the driver keeps per ship of a voyage while its loop runs. */
export interface ShipState {
  session: CaptainSession | null;
  /** Commits the ship is known to hold (all of them exist in the bare repo). */
  known: string[];
  /** The checkout was prepared while the ship was idle (or that was tried). */
  warmed: boolean;
  /**
   * The run the ship holds, finished, whose outcome the queue has: released
   * with the next request.
   */
  holds: TaskKey | null;
}

/** How a task's base travelled: what the logs say. */
type BaseSent = "no bundle" | "thin bundle" | "full bundle";

export class ShipHand {
  constructor(
    private d: DriverDeps,
    /** Something changed (idle ships look again). */
    private wake: () => void,
    /** Work not waited for: its failure is logged. */
    private detach: (what: string, p: Promise<unknown>) => void,
  ) {}

  /**
   * Opens a session and learns what the ship holds; reconciles it with the
   * queue. The task to resume on this ship (its run held there, or given
   * to it but never sent), null when it is free, "lost" when it could not
   * be reached.
   */
  async relearn(
    v: Voyage,
    ship: ShipRecord,
    st: ShipState,
    log: (m: string) => void,
  ): Promise<Task | null | "lost"> {
    const t = this.d.provider.transport(ship);
    try {
      const s = this.session(v, t, st);
      const { held } = await s.request<HoldResult>("hold", {
        voyage_id: v.id,
      });
      st.holds = null;
      const mine = (await this.d.queue.tasks(v.id, "running")).filter((x) =>
        x.ship === ship.name
      );
      if (held) {
        const same = mine.find((x) =>
          x.id === held.task && x.attempts === held.attempt
        );
        if (same) {
          log(
            `holds task ${held.task} (attempt ${held.attempt}, ${held.state}): resuming it`,
          );
          return same;
        }
        log(
          `holds task ${held.task} (attempt ${held.attempt}, ${held.state}), no longer its: releasing it`,
        );
        await s.request("release", {
          voyage_id: v.id,
          task: held.task,
          attempt: held.attempt,
        });
      }
      if (mine.length) {
        log(`task ${mine[0].id} was given to it and never reached it`);
        return mine[0];
      }
      return null;
    } catch (e) {
      log(`could not learn what it holds: ${(e as Error).message}`);
      return "lost";
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
  async baseFor(
    v: Voyage,
    t: Transport,
    st: ShipState,
  ): Promise<{ base: Omit<BaseArgs, "voyage_id" | "branch">; sent: BaseSent }> {
    const git = {
      ...await import("../../git/repo.ts"),
      ...await import("../../git/bundle.ts"),
    };
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
  async withBase<T>(
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
  async preflight(
    v: Voyage,
    ship: ShipRecord,
    st: ShipState,
    log: (m: string) => void,
  ): Promise<boolean> {
    if (!isAgentKind(v.agent) || !agentProgram(v.agent)) return true;
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
  async warm(
    v: Voyage,
    ship: ShipRecord,
    st: ShipState,
    log: (m: string) => void,
  ): Promise<void> {
    st.warmed = true;
    const t = this.d.provider.transport(ship);
    try {
      const s = this.session(v, t, st);
      const release = st.holds ?? undefined;
      const r = await this.withBase(
        v,
        t,
        st,
        (base) => s.request<SyncResult>("sync", { ...base, release }),
        log,
        "warm-up",
      );
      st.holds = null;
      st.known = [r.base];
      log(`warm-up: checkout at ${r.base.slice(0, 12)}`);
    } catch (e) {
      log(`warm-up failed: ${(e as Error).message}`);
    }
  }

  /**
   * Runs one task on the ship (or, `resumed`, finds its run there again)
   * and lands its commit: what to record; "lost" when the ship could not
   * be reached, "busy" when it holds another run (learn again what it
   * holds).
   */
  async runTask(
    v: Voyage,
    ship: ShipRecord,
    task: Task,
    log: (m: string) => void,
    st: ShipState,
    resumed: boolean,
  ): Promise<{ outcome: FinishOutcome; note: string } | "lost" | "busy"> {
    const git = {
      ...await import("../../git/commit.ts"),
      ...await import("../../git/land.ts"),
    };
    const t = this.d.provider.transport(ship);
    const work = `${v.plan_dir}/../work`;
    try {
      log(
        `task ${task.id}: ${
          resumed ? "resume" : "start"
        } (attempt ${task.attempts})`,
      );
      const s = this.session(v, t, st);
      const stamp = { voyage: v.id, task: task.id, attempt: task.attempts };
      const args: Omit<RunTaskArgs, keyof BaseArgs> = {
        objective: v.objective,
        agent: v.agent as RunTaskArgs["agent"],
        agent_command: v.agent_command,
        model: v.model,
        attempt: task.attempts,
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
        this.detach(
          `task ${task.id}: heartbeat`,
          this.d.queue.heartbeat(v.id, ship.name, task.id),
        );
      };
      const release = st.holds ?? undefined;
      let res: RunTaskResult;
      try {
        res = await this.withBase(
          v,
          t,
          st,
          (base) =>
            s.request<RunTaskResult>(
              "task",
              { ...base, ...args, release },
              beat,
            ),
          log,
          `task ${task.id}`,
        );
      } finally {
        // Released, or the ship now holds this run instead.
        st.holds = null;
      }
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
      let before: string | null = null;
      let landed: Awaited<ReturnType<typeof git.integrateTask>> | null = null;
      try {
        await Deno.writeFile(
          local,
          res.bundle_data !== undefined
            ? base64ToBytes(res.bundle_data)
            : await download(t, res.bundle),
        );
        // A flagship that stopped mid-landing may have landed it already.
        before = resumed ? await git.findLanded(v.bare, v.branch, stamp) : null;
        if (!before) {
          landed = await git.integrateTask({
            bare: v.bare,
            branch: v.branch,
            taskId: task.id,
            source: local,
            commit: res.commit,
            worktreeDir: `${work}/worktrees`,
            expect: stamp,
          });
        }
      } finally {
        // Landed, or not landable (the task's failure, below): either way
        // the bundle has served.
        await Deno.remove(local).catch(() => {});
      }
      // The ship holds its commit, now in the bare repo too: the next base
      // for it is at most a thin bundle, or nothing after a fast-forward.
      st.known = [res.base, res.commit];
      if (before) {
        return {
          outcome: { ok: true, commit: before },
          note: `task ${task.id}: done, landed before at ${
            before.slice(0, 12)
          }`,
        };
      }
      landed = landed!;
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
        log(`task ${task.id}: ship unreachable (${err.message})`);
        return "lost";
      }
      if (e instanceof OhcError && e.code === "busy") {
        log(`task ${task.id}: not started: ${err.message}`);
        return "busy";
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
}
