/**
 * The flagship's end of a `captain.session` (see ship/session.ts): one
 * `_rpc` process on the ship, opened through the ship's transport and kept
 * for the voyage, so a task costs a JSON line instead of a process start.
 * Requests go one at a time; each resolves with its reply. When the
 * session's process ends (ship gone, killed, unreachable), the pending
 * request and every later one fail with `unreachable`, and the driver opens
 * a new session, which first asks the ship what it holds: a task that was
 * running goes on without the session (see protocol.ts).
 */
import { fromErrorInfo, OhcError } from "../../errors.ts";
import { call } from "../../rpc/client.ts";
import type { Transport } from "../../transport/types.ts";
import type { SessionRequest } from "../protocol.ts";

export class CaptainSession {
  #writer: WritableStreamDefaultWriter<Uint8Array>;
  #n = 0;
  #pending: {
    n: number;
    resolve: (v: unknown) => void;
    reject: (e: Error) => void;
    progress?: (m: string) => void;
  } | null = null;
  #ended: Error | null = null;
  #kill = new AbortController();
  /** Settles when the ship's process has ended. */
  readonly closed: Promise<void>;

  constructor(
    t: Transport,
    voyage: string,
    secrets: Record<string, string>,
  ) {
    const pipe = new TransformStream<Uint8Array, Uint8Array>();
    this.#writer = pipe.writable.getWriter();
    this.closed = call(t, "captain.session", { voyage_id: voyage }, {
      secrets,
      signal: this.#kill.signal,
      input: pipe.readable,
      onEvent: (e) => {
        const p = this.#pending;
        if (!p) return;
        if (e.type === "progress" && e.subject === String(p.n)) {
          p.progress?.(e.message);
        } else if (e.type === "reply" && e.n === p.n) {
          this.#pending = null;
          if (e.error) p.reject(fromErrorInfo(e.error));
          else p.resolve(e.data);
        }
      },
    }).then(
      () => this.#end(new OhcError("unreachable", "the session ended")),
      (e) => this.#end(e as Error),
    );
  }

  get alive(): boolean {
    return this.#ended === null;
  }

  #end(e: Error) {
    this.#ended = e instanceof OhcError && e.code === "unreachable"
      ? e
      : new OhcError("unreachable", e.message);
    const p = this.#pending;
    this.#pending = null;
    p?.reject(this.#ended);
  }

  /** Sends one request and waits for its reply. */
  request<T>(
    op: SessionRequest["op"],
    args: SessionRequest["args"],
    progress?: (m: string) => void,
  ): Promise<T> {
    if (this.#ended) return Promise.reject(this.#ended);
    if (this.#pending) {
      return Promise.reject(
        new Error("captain session: one request at a time"),
      );
    }
    const n = ++this.#n;
    const line: SessionRequest = { n, op, args };
    return new Promise<T>((resolve, reject) => {
      this.#pending = {
        n,
        resolve: resolve as (v: unknown) => void,
        reject,
        progress,
      };
      this.#writer.write(
        new TextEncoder().encode(JSON.stringify(line) + "\n"),
      ).catch((e) => this.#end(e as Error));
    });
  }

  /**
   * Ends the session: the ship's process exits when its input closes (a
   * task still running there goes on); one that does not within `graceMs`
   * is killed.
   */
  async close(graceMs = 10_000): Promise<void> {
    await this.#writer.close().catch(() => {});
    let timer: ReturnType<typeof setTimeout> | undefined;
    await Promise.race([
      this.closed,
      new Promise((r) => timer = setTimeout(r, graceMs)),
    ]);
    clearTimeout(timer);
    this.#kill.abort();
    await this.closed;
  }
}
