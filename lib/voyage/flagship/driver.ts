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
import type { ShipRecord } from "../../state/fleet.ts";
import type { Task, Voyage } from "./queue.ts";
import { type DriverDeps, ShipHand, type ShipState } from "./ship_hand.ts";
import { sleep } from "../../sleep.ts";

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
    const hand = new ShipHand(
      this.d,
      () => this.wake(),
      (what, p) => this.detach(what, p),
    );
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
      if (!(await hand.preflight(v!, ship, st, log))) return;
      while (true) {
        let task: Task | null = null;
        let resumed = false;
        if (relearn) {
          const r = await hand.relearn(v!, ship, st, log);
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
          if (!st.warmed) await hand.warm(v!, ship, st, log);
          await this.waitForChange(1_000, seen);
          continue;
        }
        st.warmed = true; // a task prepares the checkout as well
        const r = await hand.runTask(v!, ship, task, log, st, resumed);
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
   * The voyage was given more to do (a retry, added tasks): its ships'
   * loops start again; with nothing left to run (a retry of verify.sh
   * alone), it is verified again at once.
   */
  async reopen(voyage: string): Promise<void> {
    await this.start(voyage);
    const v = await this.d.queue.get(voyage);
    if (v?.state !== "running") return;
    const s = await this.d.queue.settled(voyage);
    if (s.settled) {
      this.detach(`voyage ${v.id}: verify`, this.complete(v, s.allDone));
    }
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
