/**
 * Runs inbox messages: each as `bash -c <command>` in the machine's
 * checkout, in arrival order, at most `limit` at a time, each with a
 * timeout and bounded output. It reacts to `kick()` at once; there is no
 * polling delay.
 */
import type { InboxStore } from "../inbox/store.ts";
import type { Message } from "../inbox/types.ts";

export interface SchedulerOptions {
  cwd: string;
  limit: number;
  defaultTimeoutS: number;
  maxOutputBytes: number;
  /** Environment for commands. */
  env: Record<string, string>;
  onFinished: (m: Message) => void | Promise<void>;
  log: (msg: string) => void;
}

interface Running {
  pid: number;
  kill(reason: string): void;
  done: Promise<void>;
}

export class Scheduler {
  private running = new Map<string, Running>();
  private pumping = false;
  private again = false;
  private stopped = false;

  constructor(private store: InboxStore, private o: SchedulerOptions) {}

  /** Something may be runnable: look now. */
  kick(): void {
    if (this.stopped) return;
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

  private async pump(): Promise<void> {
    while (!this.stopped && this.running.size < this.o.limit) {
      const batch = await this.store.claim(this.o.limit - this.running.size);
      if (batch.length === 0) return;
      for (const m of batch) this.start(m);
    }
  }

  private start(m: Message): void {
    const timeoutS = m.timeout_s ?? this.o.defaultTimeoutS;
    // setsid: the command gets its own process group, so a timeout kills
    // everything it started.
    const child = new Deno.Command("setsid", {
      args: ["bash", "-c", m.command],
      cwd: this.o.cwd,
      env: { ...this.o.env, OHC_MESSAGE_ID: m.id, OHC_SENDER: m.sender },
      clearEnv: true,
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    let killedFor: string | null = null;
    const kill = (reason: string) => {
      if (killedFor) return;
      killedFor = reason;
      signal(child.pid, "SIGTERM");
      setTimeout(() => signal(child.pid, "SIGKILL"), 2_000);
    };
    const timer = setTimeout(
      () => kill(`timed out after ${timeoutS}s`),
      timeoutS * 1000,
    );
    const done = (async () => {
      const [out, err, status] = await Promise.all([
        capture(child.stdout, this.o.maxOutputBytes),
        capture(child.stderr, this.o.maxOutputBytes),
        child.status,
      ]);
      clearTimeout(timer);
      signal(child.pid, "SIGKILL"); // leftovers of the group, if any
      const ok = status.code === 0 && !killedFor;
      const error = killedFor ??
        (ok
          ? null
          : status.signal
          ? `killed by ${status.signal}`
          : `exit ${status.code}`);
      try {
        await this.store.finish(m.id, {
          status: ok ? "done" : "error",
          exit_code: killedFor || status.signal ? null : status.code,
          stdout: out.bytes,
          stderr: err.bytes,
          stdout_truncated: out.truncated,
          stderr_truncated: err.truncated,
          error,
        });
        const finished = await this.store.get(m.id);
        if (finished) await this.o.onFinished(finished);
      } catch (e) {
        this.o.log(`finishing ${m.id}: ${(e as Error).message}`);
      }
    })().finally(() => {
      this.running.delete(m.id);
      this.kick();
    });
    this.running.set(m.id, { pid: child.pid, kill, done });
  }

  /** Stops running commands (they end as error) and takes no more. */
  async stop(reason = "interrupted"): Promise<void> {
    this.stopped = true;
    const all = [...this.running.values()];
    for (const r of all) r.kill(reason);
    await Promise.all(all.map((r) => r.done));
  }
}

function signal(pid: number, sig: Deno.Signal) {
  try {
    Deno.kill(-pid, sig);
  } catch { /* the group is gone */ }
}

/** Keeps the first `max` bytes and drains the rest. */
async function capture(
  stream: ReadableStream<Uint8Array>,
  max: number,
): Promise<{ bytes: Uint8Array; truncated: boolean }> {
  const keep = new Uint8Array(max);
  let n = 0;
  let truncated = false;
  for await (const chunk of stream) {
    const room = max - n;
    if (chunk.length > room) truncated = true;
    if (room > 0) {
      const part = chunk.subarray(0, room);
      keep.set(part, n);
      n += part.length;
    }
  }
  return { bytes: keep.slice(0, n), truncated };
}
