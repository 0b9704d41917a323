/**
 * Sails voyages from the flagship's daemon: for each ship of a voyage, take
 * the next task from the queue (atomically), send it with the voyage tip to
 * the ship, land the commit it returns in the voyage branch, and only then
 * mark the task done. When nothing is left, run verify.sh on the result.
 *
 * Each ship is reached through one long-lived captain session (see
 * session.ts and protocol.ts). A task's run belongs to the ship:
 * it goes on when the session is cut, and the ship refuses a second task
 * while its checkout holds one. So every session starts by asking the
 * ship what it holds (`hold`) and reconciling that with the queue: the run
 * of a task the queue still gives this ship is resumed (it lands once,
 * never runs twice), any other is released. A restarted daemon renews the
 * leases of running tasks and lets no ship claim until every ship's first
 * answer is in (or it could not be reached).
 *
 * The driver remembers which commits each ship is known to
 * have (the tip it last checked out, the commit it last made): a ship that
 * has the current tip (its own task landed as a fast-forward) gets no
 * bundle, one that has an older tip gets a thin bundle of what it lacks,
 * and only a ship the driver knows nothing about gets the whole repo; if
 * the ship turns out to lack what the driver thought, it says so before
 * anything runs and gets the full bundle. A ship that finishes a task
 * claims its next one before the idle ships are woken, so the task its
 * landing released (whose code it has) usually goes to it.
 */
import { OhcError } from "../../errors.ts";
import { base64ToBytes, bytesToBase64 } from "../../inbox/types.ts";
import type { Provider } from "../../providers/types.ts";
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
import type { FinishOutcome, Task, Voyage, VoyageQueue } from "../queue.ts";
import { taskSlug } from "../plan/plan_rules.ts";
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
  /**
   * The run the ship holds, finished, whose outcome the queue has: released
   * with the next request.
   */
  holds: TaskKey | null;
}

/** How a task's base travelled: what the logs say. */
type BaseSent = "no bundle" | "thin bundle" | "full bundle";

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The longest a voyage's claims wait for its ships' first answers. */
const LEARN_WAIT_MS = 30_000;

/** A ship's loop that failed (a database call threw) starts again after this. */
const RESTART_MS = [250, 1_000, 5_000, 15_000];

/** Settles when `p` does, or after `ms`, whichever is first. */
function within(p: Promise<unknown>, ms: number): Promise<unknown> {
  let t: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([p, new Promise((r) => t = setTimeout(r, ms))])
    .finally(() => clearTimeout(t));
}

export class VoyageDriver {
  private active = new Map<string, Set<string>>();
  private finishing = new Set<string>();
  private wakers = new Set<() => void>();
  /** Counts wake-ups, so a loop that was busy when one came doesn't wait. */
  private changes = 0;
  /**
   * Per voyage: settles once every ship's loop has learnt what its ship
   * holds (or found it unreachable, or not created yet). No claim before.
   */
  private learnt = new Map<string, Promise<unknown>>();

  constructor(private d: DriverDeps) {}

  /** Picks up every voyage that was running when the daemon stopped. */
  async resume(): Promise<void> {
    for (const v of await this.d.queue.list()) {
      if (v.state === "running") {
        const n = await this.d.queue.renewLeases(v.id);
        if (n) this.d.log(`voyage ${v.id}: ${n} running task(s) resumed`);
        await this.start(v.id);
      } else if (v.state === "complete") {
        // verify.sh was running when the daemon stopped: once more.
        this.detach(`voyage ${v.id}: verify`, this.complete(v, true));
      }
    }
  }

  async start(voyage: string): Promise<void> {
    const ships = (await this.d.queue.ships(voyage))
      .filter((s) => s.state !== "gone").map((s) => s.ship);
    const running = this.active.get(voyage) ?? new Set();
    this.active.set(voyage, running);
    const firsts: Promise<void>[] = [];
    for (const s of ships) {
      if (running.has(s)) continue;
      running.add(s);
      let learnt!: () => void;
      firsts.push(new Promise((r) => learnt = r));
      this.detach(
        `voyage ${voyage} ${s}`,
        this.superviseShip(voyage, s, learnt).finally(() => {
          learnt();
          running.delete(s);
        }),
      );
    }
    // Bounded: a ship that neither answers nor fails holds up no one for
    // long (claims are safe without it; waiting is only for order).
    this.learnt.set(
      voyage,
      within(
        Promise.all([this.learnt.get(voyage), ...firsts]),
        LEARN_WAIT_MS,
      ),
    );
  }

  /**
   * Work the daemon does not wait for: a failure is logged, never left
   * unhandled (Deno ends a process on an unhandled rejection, and the
   * daemon with it).
   */
  private detach(what: string, p: Promise<unknown>): void {
    p.catch((e) => this.d.log(`${what}: ${(e as Error)?.message ?? e}`));
  }

  /**
   * Runs a ship's loop until it ends by itself. One that fails (a database
   * call threw) starts again after a pause: a new loop first learns what
   * the ship holds, so the task it ran is taken up again (resumed where it
   * is held, landed once) rather than lost until its lease ends.
   */
  private async superviseShip(
    voyage: string,
    name: string,
    learnt: () => void,
  ): Promise<void> {
    for (let failures = 0;; failures++) {
      try {
        return await this.shipLoop(voyage, name, learnt);
      } catch (e) {
        learnt(); // nobody waits on a loop that failed
        const pause = RESTART_MS[Math.min(failures, RESTART_MS.length - 1)];
        this.d.log(
          `voyage ${voyage} ${name}: the ship's loop failed (${
            (e as Error)?.message ?? e
          }); again in ${pause} ms`,
        );
        await sleep(pause);
      }
    }
  }

  /**
   * Ships left the fleet by the flagship's hand: their tasks are back in
   * the queue already (queue.shipsGone); the others look at once.
   */
  shipsGone(): void {
    this.wake();
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

  private async shipLoop(
    voyage: string,
    name: string,
    learnt: () => void,
  ): Promise<void> {
    const log = (m: string) => this.d.log(`voyage ${voyage} ${name}: ${m}`);
    // The ship may still be provisioning (then it holds nothing yet).
    let ship: ShipRecord | null = null;
    let v: Voyage | null = null;
    for (let i = 0; !ship; i++) {
      v = await this.d.queue.get(voyage);
      if (!v || v.state !== "running") return;
      ship = await this.shipRecord(name);
      if (!ship) {
        learnt();
        // One that could not be created left the voyage: nothing to wait for.
        const row = (await this.d.queue.ships(voyage)).find((s) =>
          s.ship === name
        );
        if (!row || row.state === "gone") return log("never came");
        await sleep(Math.min(250 * 2 ** Math.min(i, 4), 2_000));
      }
      if (i > 1_800) return log("never became ready");
    }
    const st: ShipState = {
      session: null,
      known: [],
      warmed: false,
      holds: null,
    };
    // The claim made with the last task's outcome, when there was one.
    let claimed: { task: Task | null } | null = null;
    let seen = this.changes;
    // Every session begins by learning what the ship holds.
    let relearn = true;
    try {
      if (!(await this.preflight(v!, ship, st, log))) return;
      while (true) {
        let task: Task | null = null;
        let resumed = false;
        if (relearn) {
          const r = await this.relearn(v!, ship, st, log);
          learnt();
          if (r === "lost") {
            if (!(await this.shipRecord(name))) {
              return await this.left(name, log);
            }
            v = await this.d.queue.get(voyage);
            if (!v || v.state !== "running") return;
            await sleep(2_000);
            continue;
          }
          relearn = false;
          task = r;
          resumed = r !== null;
        }
        if (task) {
          claimed = null;
        } else if (claimed) {
          task = claimed.task;
          claimed = null;
        } else {
          if (!(await this.shipRecord(name))) return await this.left(name, log);
          await this.learnt.get(voyage); // every ship heard from first
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
        const r = await this.runTask(v!, ship, task, log, st, resumed);
        if (r === "lost" || r === "busy") {
          // What does the ship hold now? (It may run the task still.)
          relearn = true;
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
        st.holds = { task: task.id, attempt: task.attempts };
        log(r.note);
        this.wake(); // only now: the others look after this ship has chosen
      }
    } finally {
      await st.session?.close();
    }
  }

  /**
   * The ship left the fleet: nobody drives it any more, so the task it ran
   * goes back to the queue now rather than after the lease.
   */
  private async left(name: string, log: (m: string) => void): Promise<void> {
    await this.d.queue.shipsGone([name], "left the fleet");
    this.wake();
    log("left the fleet");
  }

  /**
   * Opens a session and learns what the ship holds; reconciles it with the
   * queue. The task to resume on this ship (its run held there, or given
   * to it but never sent), null when it is free, "lost" when it could not
   * be reached.
   */
  private async relearn(
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
  private async baseFor(
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
  private async runTask(
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

  /**
   * The voyage was given more to do (a retry, added tasks): its ships'
   * loops start again; with nothing left to run (a retry of verify.sh
   * alone), it is verified again at once.
   */
  async reopen(voyage: string): Promise<void> {
    await this.start(voyage);
    const v = await this.d.queue.get(voyage);
    if (v?.state !== "running") return;
    const s = await this.d.queue.settled(voyage);
    if (s.settled) void this.complete(v, s.allDone);
    this.wake();
  }

  /**
   * All tasks settled: verify the result once. Each step changes only the
   * state it expects, so a sink or a retry meanwhile is never undone.
   */
  private async complete(v: Voyage, allDone: boolean): Promise<void> {
    if (this.finishing.has(v.id)) return;
    this.finishing.add(v.id);
    try {
      if (!allDone) {
        if (
          await this.d.queue.setVoyageState(v.id, "failed", {}, ["running"])
        ) {
          this.d.log(`voyage ${v.id}: failed (tasks failed)`);
        }
        return;
      }
      // "complete" already: the daemon stopped while verify.sh ran.
      const verifying = await this.d.queue.setVoyageState(
        v.id,
        "complete",
        {},
        ["running", "complete"],
      );
      if (!verifying) return;
      const git = await import("../../git/verify.ts");
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
      }, ["complete"]);
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
      }, ["complete"]);
    } finally {
      this.finishing.delete(v.id);
    }
  }
}
