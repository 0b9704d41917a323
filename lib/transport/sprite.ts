/**
 * A sprite (sprites.dev) reached through the HTTP API's exec WebSocket
 * (`WSS /v1/sprites/{name}/exec?cmd=…&cmd=…`), with no CLI: the flagship
 * has none. Non-TTY frames carry a stream byte first: 0 stdin, 1 stdout,
 * 2 stderr, 3 exit (then the code), 4 end of stdin; text frames are notices
 * (ports opened, …) and control (`{"type":"signal"}`, `{"type":"resize"}`).
 * The exec API forwards no ports (the CLI does that on its side), so ships'
 * ports never land on the flagship.
 *
 * The argv is passed as separate words, so nothing is quoted or spliced
 * into a shell line. The command starts in the sprite user's home.
 *
 * A connection that fails before the command starts ran nothing, so it is
 * tried again with backoff (TLS handshake timeouts, resets, 5xx); the
 * answer that the plan's running limit is reached is not. A connection lost
 * after the start ends the process with exit 255 and a line on stderr that
 * starts with LOST, as ssh does.
 */
import type { ExecParams, SpritesApi } from "../providers/sprites_api.ts";
import type { RemoteProcess, SpawnOptions, Transport } from "./types.ts";
import { sleep } from "../sleep.ts";

/** Begins the stderr line of an exec whose connection was lost. */
export const LOST = "sprites.dev: connection to";

const enum Stream {
  Stdin = 0,
  Stdout = 1,
  Stderr = 2,
  Exit = 3,
  StdinEof = 4,
}

const SIGNALS: Partial<Record<Deno.Signal, number>> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGKILL: 9,
  SIGTERM: 15,
};

/** Sprite names: one DNS label (the URL is `<name>-<org>.sprites.app`). */
const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export interface SpriteTransportOptions {
  name: string;
  api: SpritesApi;
  /** How long a failing connect is retried. Default 60 s. */
  connectForMs?: number;
}

export class SpriteTransport implements Transport {
  readonly dest: string;
  readonly name: string;
  private readonly api: SpritesApi;
  private readonly connectForMs: number;

  constructor(o: SpriteTransportOptions) {
    if (!NAME_RE.test(o.name)) {
      throw new Error(`invalid sprite name: ${JSON.stringify(o.name)}`);
    }
    this.name = o.name;
    this.dest = o.name;
    this.api = o.api;
    this.connectForMs = o.connectForMs ?? 60_000;
  }

  /**
   * Opens the exec socket, trying again while the failure is one where
   * nothing ran; rejects with the reason (one line) otherwise. `wire` sets
   * the socket's handlers inside its open event: frames can follow at once,
   * before any promise continuation would run.
   */
  private async open(
    p: ExecParams,
    wire: (ws: WebSocket) => void,
    signal?: AbortSignal,
  ): Promise<WebSocket> {
    const deadline = Date.now() + this.connectForMs;
    let delay = 250;
    for (;;) {
      const ws = await this.api.execSocket(this.name, p);
      const failure = await new Promise<string | null>((resolve) => {
        ws.onopen = () => {
          wire(ws);
          resolve(null);
        };
        ws.onerror = (e) => resolve((e as ErrorEvent).message || "error");
        signal?.addEventListener("abort", () => resolve("aborted"), {
          once: true,
        });
      });
      if (failure === null) return ws;
      try {
        ws.close();
      } catch { /* never opened */ }
      if (signal?.aborted) throw new Error("aborted");
      const status = Number(/status code:? (\d{3})/i.exec(failure)?.[1]);
      let why = failure.replace(/^NetworkError: /, "");
      let again = !status || status >= 500 || status === 429;
      if (status) {
        // The handshake's status hides the API's reason: ask for it.
        const e = await this.api.whyExecFails(this.name);
        if (e) {
          why = e.message;
          again = e.status >= 500 ||
            (e.status === 429 && e.code !== "sprites_running_limit");
        }
      }
      if (!again || Date.now() + delay > deadline) {
        throw new Error(`${LOST} ${this.name} could not be opened: ${why}`);
      }
      await sleep(delay);
      delay = Math.min(delay * 2, 5_000);
    }
  }

  spawn(argv: string[], opts: SpawnOptions = {}): RemoteProcess {
    if (argv.length === 0) throw new Error("spawn needs a command");
    return this.exec({ argv, stdin: opts.stdin === "piped" }, opts);
  }

  private exec(p: ExecParams, opts: SpawnOptions): RemoteProcess {
    const enc = new TextEncoder();
    let exit: number | null = null;
    let killedBy: Deno.Signal | null = null;
    let out!: ReadableStreamDefaultController<Uint8Array>;
    let err!: ReadableStreamDefaultController<Uint8Array>;
    const stdout = new ReadableStream<Uint8Array>({ start: (c) => out = c });
    const stderr = new ReadableStream<Uint8Array>({ start: (c) => err = c });
    let settle!: (s: { code: number; signal: string | null }) => void;
    const status = new Promise<{ code: number; signal: string | null }>(
      (r) => settle = r,
    );
    const finish = (code: number, lostWhy?: string) => {
      if (lostWhy !== undefined && killedBy === null) {
        try {
          err.enqueue(enc.encode(`${lostWhy}\n`));
        } catch { /* closed */ }
      }
      for (const c of [out, err]) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      settle(
        killedBy !== null
          ? { code: 128 + (SIGNALS[killedBy] ?? 15), signal: killedBy }
          : { code, signal: null },
      );
    };
    const wire = (s: WebSocket) => {
      s.onmessage = (e) => {
        if (typeof e.data === "string") return; // a notice
        const b = new Uint8Array(e.data as ArrayBuffer);
        if (b.length === 0) return;
        if (b[0] === Stream.Stdout) out.enqueue(b.slice(1));
        else if (b[0] === Stream.Stderr) err.enqueue(b.slice(1));
        else if (b[0] === Stream.Exit) exit = b.length > 1 ? b[1] : 0;
      };
      s.onclose = () => {
        if (exit !== null) finish(exit);
        else finish(255, `${LOST} ${this.name} was lost`);
      };
      if (!p.stdin) s.send(new Uint8Array([Stream.StdinEof]));
    };
    const opened = this.open(p, wire, opts.signal).then((s) => s, (e) => {
      finish(255, (e as Error).message);
      return null;
    });
    const kill = (sig: Deno.Signal = "SIGTERM") => {
      if (killedBy !== null || exit !== null) return;
      killedBy = sig;
      void opened.then((s) => {
        if (!s || s.readyState !== WebSocket.OPEN) return;
        s.send(JSON.stringify({ type: "signal", signal: sig }));
        s.close(1000);
      });
    };
    opts.signal?.addEventListener("abort", () => kill("SIGTERM"), {
      once: true,
    });
    const stdin = new WritableStream<Uint8Array>({
      async write(chunk) {
        const s = await opened;
        if (!s || s.readyState !== WebSocket.OPEN) {
          throw new Error("the sprite's process has ended");
        }
        // 1 MiB frames, and no more than a few MiB in flight: a WebSocket
        // has no backpressure of its own.
        for (let i = 0; i < chunk.length; i += 1 << 20) {
          const part = chunk.subarray(i, i + (1 << 20));
          const frame = new Uint8Array(part.length + 1);
          frame[0] = Stream.Stdin;
          frame.set(part, 1);
          s.send(frame);
          while (
            s.bufferedAmount > 4 << 20 && s.readyState === WebSocket.OPEN
          ) {
            await sleep(5);
          }
        }
      },
      async close() {
        const s = await opened;
        if (s?.readyState === WebSocket.OPEN) {
          s.send(new Uint8Array([Stream.StdinEof]));
        }
      },
      abort() {
        void opened.then((s) => {
          if (s?.readyState === WebSocket.OPEN) {
            s.send(new Uint8Array([Stream.StdinEof]));
          }
        });
      },
    });
    return { stdin, stdout, stderr, status, kill };
  }

  async interactive(
    argv: string[],
    opts: { tty?: boolean } = {},
  ): Promise<number> {
    const tty = (opts.tty ?? false) && Deno.stdin.isTerminal();
    const cmd = argv.length > 0 ? argv : ["bash", "-l"];
    if (!tty) {
      const child = this.spawn(cmd, { stdin: "piped" });
      void Deno.stdin.readable.pipeTo(child.stdin).catch(() => {});
      await Promise.all([
        child.stdout.pipeTo(Deno.stdout.writable, { preventClose: true }),
        child.stderr.pipeTo(Deno.stderr.writable, { preventClose: true }),
      ]).catch(() => {});
      return (await child.status).code;
    }
    return await this.terminal(cmd);
  }

  /**
   * A terminal session: raw bytes both ways (no stream bytes in TTY mode),
   * the local terminal in raw mode, its size sent on start.
   */
  private async terminal(argv: string[]): Promise<number> {
    const { columns, rows } = Deno.consoleSize();
    let code = 0;
    let resolveDone!: () => void;
    const done = new Promise<void>((r) => resolveDone = r);
    const ws = await this.open({
      argv,
      stdin: true,
      tty: true,
      env: { TERM: Deno.env.get("TERM") ?? "xterm-256color" },
    }, (ws) => {
      ws.onmessage = (e) => {
        if (typeof e.data === "string") {
          try {
            const m = JSON.parse(e.data);
            if (m?.type === "exit" && typeof m.exit_code === "number") {
              code = m.exit_code;
            }
          } catch { /* a notice */ }
          return;
        }
        Deno.stdout.writeSync(new Uint8Array(e.data as ArrayBuffer));
      };
      ws.onclose = (e) => {
        if (code === 0 && e.code !== 1000) code = 1;
        resolveDone();
      };
    });
    ws.send(JSON.stringify({ type: "resize", cols: columns, rows }));
    Deno.stdin.setRaw(true);
    try {
      void (async () => {
        for await (const chunk of Deno.stdin.readable) {
          if (ws.readyState !== WebSocket.OPEN) break;
          ws.send(chunk);
        }
      })().catch(() => {});
      await done;
    } finally {
      Deno.stdin.setRaw(false);
    }
    return code;
  }
}
