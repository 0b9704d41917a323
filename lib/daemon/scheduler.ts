/**
 * Runs inbox messages: each as `bash -c <command>` in the machine's
 * checkout, in arrival order, at most `limit` at a time, each with a
 * timeout and bounded output. It reacts to `kick()` at once; there is no
 * polling delay.
 *
 * The unread messages are kept here in arrival order (loaded at start, then
 * handed over by `kick(msgs)` as they are stored), so taking the next one
 * is one update by id rather than a scan and a read. The database stays the
 * truth: a claim only takes a message that is still unread, so one read,
 * done or deleted by hand meanwhile is skipped.
 *
 * The hand-over from one message to the next is kept short, since with one
 * at a time it bounds the throughput: the next message's bash is started
 * while the current one runs and waits for "go" (hold); with a start
 * journal, the slot passes after one fsynced append instead of a database
 * commit, and the database records the finish and the start just after
 * (messages someone handles by hand meanwhile start only through a claim).
 */
import { concatBytes } from "../bytes.ts";
import type { FinishArgs } from "../inbox/finishing.ts";
import {
  type CommandCgroups,
  contain,
  type Containment,
} from "./containment.ts";
import type { StartJournal } from "./start_journal.ts";
import { MAX_TIMEOUT_S, type Message } from "../inbox/types.ts";

/** Where the scheduler takes messages from and leaves their outcomes. */
export interface SchedulerQueue {
  /** Every unread message, oldest first. */
  unread(): Promise<Message[]>;
  /** Those of `msgs` still unread, moved to running, in order. */
  claim(msgs: Message[]): Promise<Message[]>;
  /**
   * Stores the outcome of `m` (and sends its result on) and claims `next` if
   * still unread, in the same step.
   */
  complete(
    m: Message,
    result: FinishArgs,
    next: Message | null,
  ): Promise<Message | null>;
}

export interface SchedulerOptions {
  cwd: string;
  limit: number;
  defaultTimeoutS: number;
  maxOutputBytes: number;
  /** Environment for commands. */
  env: Record<string, string>;
  /**
   * Where this daemon's commands get cgroups (containment.ts
   * commandCgroups), or null/absent to contain them by their marker.
   */
  cgroups?: CommandCgroups | null;
  /** A file holding HOLD_SCRIPT (see hold). */
  holdScript: string;
  /**
   * Lets a finished message hand its slot to the next one without waiting
   * for the database (start_journal.ts). Without it, each claim commits
   * before its command starts.
   */
  journal?: Pick<StartJournal, "note" | "settled">;
  log: (msg: string) => void;
}

/** A command's shell, started and waiting for "go" (see Scheduler.hold). */
interface Held {
  m: Message;
  child: Deno.ChildProcess;
  /** Holds everything the command starts (containment.ts). */
  box: Containment;
}

/** After SIGTERM, what is left of a timed-out command gets SIGKILL. */
const KILL_AFTER_MS = 2_000;
/**
 * After SIGKILL, output is read this much longer: a process that escaped
 * every kill may hold the pipes, and the inbox must move on.
 */
const READ_AFTER_KILL_MS = 1_000;

/**
 * How long a message started ahead of the database may run before it is
 * recorded as running there (most finish sooner: one write for both).
 */
export const CLAIM_AFTER_MS = 200;

/**
 * What bash reads first (as its BASH_ENV) in a held shell: it waits for the
 * line "go", then sets stdin to /dev/null and puts back the caller's own
 * BASH_ENV; then bash runs the command as the `bash -c <command>` it was
 * started as. On anything else, or EOF, it exits without running it.
 */
export const HOLD_SCRIPT =
  `# ohcommodore: holds a command until its start is recorded
IFS= read -r __ohc_go || exit 97
[ "$__ohc_go" = go ] || exit 97
unset __ohc_go
exec </dev/null
if [ -n "\${OHC_BASH_ENV-}" ]; then
  BASH_ENV=$OHC_BASH_ENV
  unset OHC_BASH_ENV
  . "$BASH_ENV"
else
  unset BASH_ENV
fi
`;
const GO = new TextEncoder().encode("go\n");

interface Running {
  pid: number;
  kill(reason: string): void;
  done: Promise<void>;
}

export class Scheduler {
  private running = new Map<string, Running>();
  /** The next in line's shell, held (see hold). */
  private prepared: Held | null = null;
  /** Messages being handled by hand (see handling). */
  private withheld = new Set<string>();
  /** Unread messages not yet offered to a claim, oldest first. */
  private unread: Message[] = [];
  private pumping = false;
  private again = false;
  /** Until begin() has loaded the older unread messages, nothing runs. */
  private begun = false;
  private stopped = false;
  /** Held by `daemon pause`: nothing new starts; running ones finish. */
  private paused = false;

  constructor(private queue: SchedulerQueue, private o: SchedulerOptions) {}

  /** New settings (`fleet config set`): for what starts from now on. */
  configure(o: Pick<SchedulerOptions, "limit" | "defaultTimeoutS">): void {
    this.o = { ...this.o, ...o };
    this.kick();
  }

  /** Loads the unread messages left from before, and starts on them. */
  async begin(): Promise<void> {
    const before = await this.queue.unread();
    // Messages stored while that was read were handed over by kick() already.
    const known = new Set(before.map((m) => m.id));
    this.unread = [...before, ...this.unread.filter((m) => !known.has(m.id))];
    this.begun = true;
    this.kick();
  }

  /** Messages were stored (in arrival order): run what can run. */
  kick(msgs: Message[] = []): void {
    this.unread.push(...msgs);
    if (this.stopped || !this.begun || this.paused) return;
    this.prepareNext();
    if (this.pumping) {
      this.again = true;
      return;
    }
    this.pumping = true;
    void this.pump().finally(() => {
      this.pumping = false;
      if (this.again) {
        this.again = false;
        this.kick();
      }
    });
  }

  get busy(): number {
    return this.running.size;
  }

  get isPaused(): boolean {
    return this.paused;
  }

  /** Starts nothing more until resume(); what runs goes on to its end. */
  pause(): void {
    this.paused = true;
    if (this.prepared) this.discard(this.prepared);
    this.prepared = null;
  }

  resume(): void {
    this.paused = false;
    this.kick();
  }

  /**
   * A person is about to change or delete message `id` by hand: from now
   * on it starts only through a committed claim, which sees the change.
   * False if it has started already.
   */
  handling(id: string): boolean {
    if (this.running.has(id)) return false;
    if (this.unread.some((m) => m.id === id)) this.withheld.add(id);
    return true;
  }

  private async pump(): Promise<void> {
    while (!this.stopped && !this.paused && this.unread.length > 0) {
      const room = this.o.limit - this.running.size;
      if (room <= 0) return;
      const take = this.unread.splice(0, room);
      let batch: Message[];
      try {
        batch = await this.queue.claim(take);
      } catch (e) {
        this.unread.unshift(...take);
        return this.o.log(`claiming: ${(e as Error).message}`);
      }
      for (const m of batch) this.start(m);
    }
  }

  /**
   * `bash -c <command>` for `m`, started now and held by HOLD_SCRIPT: it
   * runs the command only once it reads "go" (release), and exits without
   * running it on anything else or at EOF (discard, or the daemon died).
   * Starting a process costs several milliseconds on a busy VM, so the next
   * message's bash is started while the current one runs: the command
   * itself still starts only once its start is durable.
   */
  private hold(m: Message): Held {
    // setsid: the command gets its own process group, so a timeout kills
    // everything it started. (Deno's `detached` does the same, but forks the
    // whole daemon to do it: twice the CPU per command, measured.)
    const { BASH_ENV: callers, ...env } = this.o.env;
    const child = new Deno.Command("setsid", {
      args: ["bash", "-c", m.command],
      cwd: this.o.cwd,
      env: {
        ...env,
        ...(callers ? { OHC_BASH_ENV: callers } : {}),
        BASH_ENV: this.o.holdScript,
        OHC_MESSAGE_ID: m.id,
        OHC_SENDER: m.sender,
      },
      clearEnv: true,
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    // While it waits for "go", nothing runs yet: contain it now.
    return { m, child, box: contain(m.id, child.pid, this.o.cgroups ?? null) };
  }

  private discard(h: Held): void {
    h.child.stdin.close().catch(() => {});
    h.child.stdout.cancel().catch(() => {});
    h.child.stderr.cancel().catch(() => {});
    void h.child.status.then(() => h.box.end()); // reaped
  }

  /** While messages run, the shell for the next in line waits ready. */
  private prepareNext(): void {
    if (
      this.prepared || this.stopped || this.paused || this.running.size === 0
    ) return;
    const next = this.unread[0];
    if (next) this.prepared = this.hold(next);
  }

  /** The prepared shell if it is m's, else a new one. */
  private shellFor(m: Message): Held {
    const p = this.prepared;
    this.prepared = null;
    if (p?.m.id === m.id) return p;
    if (p) this.discard(p);
    return this.hold(m);
  }

  /** `ahead`: started before the database records it (start journal). */
  private start(m: Message, ahead = false): void {
    const timeoutS = Math.min(
      m.timeout_s ?? this.o.defaultTimeoutS,
      MAX_TIMEOUT_S,
    );
    const started = new Date().toISOString();
    const { child, box } = this.shellFor(m);
    const go = child.stdin.getWriter();
    // The next shell starts once this one is released: starting a process
    // blocks the event loop for a millisecond or more.
    go.write(GO).then(() => go.close()).catch(() => {}).finally(() =>
      this.prepareNext()
    );
    let killedFor: string | null = null;
    const stopReading = new AbortController();
    const timers: ReturnType<typeof setTimeout>[] = [];
    // Everything the command started: TERM, then KILL, then its output is
    // read no longer (containment.ts).
    const kill = (reason: string) => {
      if (killedFor) return;
      killedFor = reason;
      box.kill("SIGTERM");
      timers.push(setTimeout(() => {
        box.kill("SIGKILL");
        timers.push(
          setTimeout(() => stopReading.abort(), READ_AFTER_KILL_MS),
        );
      }, KILL_AFTER_MS));
    };
    timers.push(setTimeout(
      () => kill(`timed out after ${timeoutS}s`),
      timeoutS * 1000,
    ));
    const done = (async () => {
      const [out, err, status] = await Promise.all([
        capture(child.stdout, this.o.maxOutputBytes, stopReading.signal),
        capture(child.stderr, this.o.maxOutputBytes, stopReading.signal),
        child.status,
      ]);
      for (const t of timers) clearTimeout(t);
      box.end(); // leftovers of the group (and cgroup), if any
      const ok = status.code === 0 && !killedFor;
      const error = killedFor ??
        (ok
          ? null
          : status.signal
          ? `killed by ${status.signal}`
          : `exit ${status.code}`);
      const outcome: FinishArgs = {
        status: ok ? "done" : "error",
        exit_code: killedFor || status.signal ? null : status.code,
        stdout: out.bytes,
        stderr: err.bytes,
        stdout_truncated: out.truncated,
        stderr_truncated: err.truncated,
        error,
        at: new Date().toISOString(),
        ...(ahead ? { started } : {}),
      };
      // This message's slot goes to the next one: in the transaction that
      // records this finish, or (start journal) at once.
      const take = this.stopped || this.paused
        ? null
        : this.unread.shift() ?? null;
      const journal = this.o.journal;
      if (take && journal && !this.withheld.delete(take.id)) {
        // The database records this finish just after, and the next one's
        // start with its own finish (or, should it run longer than
        // CLAIM_AFTER_MS, a claim then).
        journal.note(take.id);
        this.start(take, true);
        try {
          await this.queue.complete(m, outcome, null);
          if (ahead) journal.settled(m.id);
        } catch (e) {
          // Left in the journal: the next daemon ends it as interrupted.
          this.o.log(`finishing ${m.id}: ${(e as Error).message}`);
        }
        return;
      }
      let next: Message | null = null;
      try {
        next = await this.queue.complete(m, outcome, take);
        if (ahead) journal?.settled(m.id);
      } catch (e) {
        if (take) this.unread.unshift(take);
        this.o.log(`finishing ${m.id}: ${(e as Error).message}`);
      }
      // Claimed just as the daemon stops: left running, so the next start
      // marks it interrupted rather than running it after the stop.
      if (next && !this.stopped) this.start(next);
      else if (take && this.prepared?.m.id === take.id) {
        this.discard(this.prepared); // handled by hand meanwhile
        this.prepared = null;
      }
    })().finally(() => {
      this.running.delete(m.id);
      this.kick();
    });
    this.running.set(m.id, { pid: child.pid, kill, done });
    if (ahead) {
      // A longer command is shown running before it ends.
      const later = setTimeout(() => {
        if (this.stopped) return;
        this.queue.claim([{ ...m, started_at: started }]).then(
          () => this.o.journal?.settled(m.id),
          (e) => this.o.log(`recording ${m.id} as running: ${e.message}`),
        );
      }, CLAIM_AFTER_MS);
      const clear = () => clearTimeout(later);
      child.status.then(clear, clear); // it ended: its finish records it
    }
  }

  /** Stops running commands (they end as error) and takes no more. */
  async stop(reason = "interrupted"): Promise<void> {
    this.stopped = true;
    if (this.prepared) this.discard(this.prepared);
    this.prepared = null;
    const all = [...this.running.values()];
    for (const r of all) r.kill(reason);
    await Promise.all(all.map((r) => r.done));
  }
}

/**
 * Keeps the first `max` bytes and drains the rest, until the stream ends
 * or `stop` aborts.
 */
async function capture(
  stream: ReadableStream<Uint8Array>,
  max: number,
  stop: AbortSignal,
): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const parts: Uint8Array[] = [];
  let n = 0;
  let truncated = false;
  const reader = stream.getReader();
  const onStop = () => void reader.cancel().catch(() => {});
  stop.addEventListener("abort", onStop, { once: true });
  while (true) {
    const { value: chunk, done } = await reader.read().catch(() => ({
      value: undefined,
      done: true,
    }));
    if (done || !chunk) break;
    const room = max - n;
    if (chunk.length > room) truncated = true;
    if (room > 0) {
      const part = chunk.subarray(0, room);
      parts.push(part);
      n += part.length;
    }
  }
  stop.removeEventListener("abort", onStop);
  return { bytes: concatBytes(parts), truncated };
}
