import { quoteArgv } from "./shell_quote.ts";
import { run } from "./run.ts";
import type { RemoteProcess, SpawnOptions, Transport } from "./types.ts";
import { sleep } from "../sleep.ts";

/**
 * A machine reached with the system OpenSSH client (`ssh` on PATH).
 *
 * Every call shares one master connection per destination (ControlMaster
 * auto, ControlPersist 300 s, sockets in `controlDir`), so after the first
 * call a command costs a channel on an open connection, not a handshake.
 * Calls never prompt (BatchMode), give up connecting after ConnectTimeout,
 * and notice a dead peer after 3 missed keep-alives 15 s apart.
 *
 * The command reaches the far side as one string parsed by the remote
 * user's login shell; `quoteArgv` makes that shell see exactly our argv.
 */
export interface SshTransportOptions {
  /** "host" or "user@host" (names may be mapped by `configFile`). */
  dest: string;
  port?: number;
  /** Private key to offer; only this one is offered (IdentitiesOnly). */
  identityFile?: string;
  /** Our own known_hosts: new hosts are added, changed keys refused. */
  knownHostsFile: string;
  /** Directory for master sockets; created 0700. Keep the path short. */
  controlDir: string;
  /** An ssh_config used instead of ~/.ssh/config and /etc/ssh/ssh_config. */
  configFile?: string;
  /** Seconds to wait for TCP connect and the SSH banner. Default 10. */
  connectTimeoutS?: number;
  /** More ssh arguments; they come first, so they override ours. */
  extraOptions?: string[];
}

/** Exit status the ssh client uses for its own failures. */
export const SSH_FAILURE_CODE = 255;

/**
 * Messages the OpenSSH client writes when it, not the remote command,
 * failed: cannot connect, cannot authenticate, lost the connection, or lost
 * its master connection.
 */
const SSH_ERROR_PATTERNS: RegExp[] = [
  /^ssh: /m, // "ssh: connect to host h port p: Connection refused", DNS errors
  /^kex_exchange_identification: /m,
  /Connection timed out during banner exchange/,
  /^Connection (?:to \S+ )?(?:closed|timed out|reset)/m,
  /^Read from remote host \S+: /m,
  /^client_loop: /m,
  /^Timeout, server \S+ not responding/m,
  /^(?:\S+: )?Permission denied \(/m, // "user@host: Permission denied (publickey)."
  /^Host key verification failed/m,
  /REMOTE HOST IDENTIFICATION HAS CHANGED/,
  /^Unable to negotiate /m,
  /^Bad owner or permissions on /m,
  /: line \d+: Bad configuration option/,
  /terminating, \d+ bad configuration options/,
  /^Control socket connect\(/m,
];

/**
 * True when ssh's exit status and stderr say the ssh client itself failed
 * (connection refused, timed out, lost, authentication refused) rather than
 * the remote command. A remote command may also exit 255 (and ssh exits 255
 * when the remote command dies of a signal), so the status alone is not
 * enough: ssh's own message must be there too. A connection lost under a
 * shared master prints nothing; `SshTransport.spawn` then appends
 * `LOST_MASTER_MESSAGE` to the piped stderr, which this recognises.
 */
export function isSshFailure(code: number, stderr: string): boolean {
  if (code !== SSH_FAILURE_CODE) return false;
  return SSH_ERROR_PATTERNS.some((re) => re.test(stderr));
}

/**
 * One line for people when `isSshFailure` holds, e.g.
 * `connection to root@vm1.exe.xyz failed: ssh: connect to host ... refused`.
 */
export function sshFailureMessage(dest: string, stderr: string): string {
  const lines = stderr.split("\n").map((l) => l.trim()).filter((l) =>
    l !== "" && !/^Warning: Permanently added/.test(l)
  );
  const lost =
    /closed by remote host|connection lost|Broken pipe|client_loop|not responding|reset by peer|mux_client|read header failed/i
      .test(stderr);
  const detail =
    lines.filter((l) => SSH_ERROR_PATTERNS.some((re) => re.test(l))).at(-1) ??
      lines.at(-1) ?? "ssh exited 255";
  return `connection to ${dest} ${lost ? "lost" : "failed"}: ${detail}`;
}

/** An error carrying the ssh client's failure, for callers that throw. */
export class SshConnectionError extends Error {
  constructor(readonly dest: string, readonly stderr: string) {
    super(sshFailureMessage(dest, stderr));
    this.name = "SshConnectionError";
  }
}

/**
 * Appended to a piped stderr when ssh exited 255 without a word and its
 * master connection is gone: the connection was lost mid-command.
 */
export const LOST_MASTER_MESSAGE =
  "ssh: control master terminated unexpectedly (connection lost)\n";

/** A RemoteProcess whose status also says whether ssh itself failed. */
export interface SshRemoteProcess extends RemoteProcess {
  readonly status: Promise<
    { code: number; signal: string | null; sshFailure: boolean }
  >;
}

/** sun_path holds 108 bytes; ssh adds "/<40 hex>" and ".<16 random>". */
const MAX_CONTROL_DIR = 107 - 1 - 40 - 17;

/** Passes a stream through until it ends, or until `cut` resolves. */
function cuttableReadable(
  src: ReadableStream<Uint8Array>,
  cut: Promise<void>,
  hooks: {
    onChunk?: (chunk: Uint8Array) => void;
    onEnd?: () => Promise<Uint8Array | null>;
  } = {},
): ReadableStream<Uint8Array> {
  const reader = src.getReader();
  const cutP = cut.then(() => "cut" as const);
  return new ReadableStream<Uint8Array>({
    async pull(ctl) {
      const r = await Promise.race([reader.read(), cutP]);
      if (r === "cut") {
        reader.cancel().catch(() => {});
        ctl.close();
        return;
      }
      if (r.done) {
        const extra = await hooks.onEnd?.();
        if (extra) ctl.enqueue(extra);
        ctl.close();
        return;
      }
      hooks.onChunk?.(r.value);
      ctl.enqueue(r.value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

/** Passes writes through; once `cut` resolves, writing fails at once. */
function cuttableWritable(
  dst: WritableStream<Uint8Array>,
  cut: Promise<void>,
): WritableStream<Uint8Array> {
  const w = dst.getWriter();
  const gone = cut.then(() => {
    throw new Error("the ssh process has ended");
  });
  gone.catch(() => {});
  cut.then(() => w.abort().catch(() => {}));
  return new WritableStream<Uint8Array>({
    write: (chunk) => Promise.race([w.write(chunk), gone]),
    close: () => Promise.race([w.close(), gone]),
    abort: (reason) => w.abort(reason),
  });
}

export class SshTransport implements Transport {
  readonly dest: string;
  readonly port?: number;
  readonly controlDir: string;
  readonly knownHostsFile: string;
  private readonly opts: SshTransportOptions;
  private prepared = false;

  constructor(opts: SshTransportOptions) {
    if (
      opts.dest === "" || opts.dest.startsWith("-") ||
      [...opts.dest].some((c) => c <= " " || c === "\x7f")
    ) {
      throw new Error(`invalid ssh destination: ${JSON.stringify(opts.dest)}`);
    }
    if (
      opts.port !== undefined &&
      !(Number.isInteger(opts.port) && opts.port > 0 && opts.port < 65536)
    ) {
      throw new Error(`invalid ssh port: ${opts.port}`);
    }
    const timeout = opts.connectTimeoutS ?? 10;
    if (!(Number.isInteger(timeout) && timeout > 0)) {
      throw new Error(`invalid connect timeout: ${timeout}`);
    }
    if (new TextEncoder().encode(opts.controlDir).length > MAX_CONTROL_DIR) {
      throw new Error(
        `ssh control directory path is too long for a socket (max ${MAX_CONTROL_DIR} bytes): ${opts.controlDir}`,
      );
    }
    this.opts = { ...opts };
    this.dest = opts.dest;
    this.port = opts.port;
    this.controlDir = opts.controlDir;
    this.knownHostsFile = opts.knownHostsFile;
  }

  /** The ssh options every call shares (everything before the dest). */
  sshOptions(): string[] {
    const o = this.opts;
    // ssh keeps the first value it sees for an option, so extra options go
    // first and can override the defaults below.
    const args: string[] = [...(o.extraOptions ?? [])];
    if (o.configFile !== undefined) args.push("-F", o.configFile);
    if (o.port !== undefined) args.push("-p", String(o.port));
    if (o.identityFile !== undefined) {
      args.push("-i", o.identityFile, "-o", "IdentitiesOnly=yes");
    }
    const set = (kv: string) => args.push("-o", kv);
    set("BatchMode=yes");
    set(`ConnectTimeout=${o.connectTimeoutS ?? 10}`);
    set("ServerAliveInterval=15");
    set("ServerAliveCountMax=3");
    set("StrictHostKeyChecking=accept-new");
    set(`UserKnownHostsFile=${o.knownHostsFile}`);
    set("ControlMaster=auto");
    set(`ControlPath=${o.controlDir}/%C`);
    set("ControlPersist=300");
    // Keeps "Warning: Permanently added ..." out of the command's stderr;
    // errors still print.
    set("LogLevel=ERROR");
    return args;
  }

  /** Creates the control dir (0700, fixing looser modes) and known_hosts dir. */
  private prepare(): void {
    if (this.prepared) return;
    const dir = this.opts.controlDir;
    Deno.mkdirSync(dir, { recursive: true, mode: 0o700 });
    const st = Deno.statSync(dir);
    if (!st.isDirectory) throw new Error(`${dir} is not a directory`);
    const uid = Deno.uid();
    if (uid !== null && st.uid !== null && st.uid !== uid) {
      throw new Error(
        `refusing ssh control directory ${dir}: owned by uid ${st.uid}, not us`,
      );
    }
    if (st.mode !== null && (st.mode & 0o077) !== 0) {
      Deno.chmodSync(dir, 0o700);
    }
    const kh = this.opts.knownHostsFile;
    const khDir = kh.includes("/") ? kh.slice(0, kh.lastIndexOf("/")) : "";
    if (khDir !== "") Deno.mkdirSync(khDir, { recursive: true, mode: 0o700 });
    this.prepared = true;
  }

  /** Full argv of the ssh client for a command (exposed for tests/logs). */
  commandArgs(argv: string[], tty = false): string[] {
    const args = [tty ? "-t" : "-T", ...this.sshOptions(), this.dest];
    if (argv.length > 0) args.push("--", quoteArgv(argv));
    return args;
  }

  spawn(argv: string[], opts: SpawnOptions = {}): SshRemoteProcess {
    if (argv.length === 0) throw new Error("spawn needs a command");
    this.prepare();
    const child = new Deno.Command("ssh", {
      args: this.commandArgs(argv),
      stdin: opts.stdin ?? "null",
      stdout: opts.stdout ?? "piped",
      stderr: opts.stderr ?? "piped",
    }).spawn();

    // Killing the local ssh does not end the remote command, and through a
    // shared master the master still holds our pipes until that command
    // ends on its own. So once we have killed ssh and it has exited, we
    // end our side of the pipes ourselves.
    let killed = false;
    let cutNow = () => {};
    const cut = new Promise<void>((resolve) => cutNow = resolve);
    const kill = (sig: Deno.Signal = "SIGTERM") => {
      killed = true;
      try {
        child.kill(sig);
      } catch { /* already gone */ }
    };
    const onAbort = () => kill();
    opts.signal?.addEventListener("abort", onAbort, { once: true });
    if (opts.signal?.aborted) kill();
    child.status.then(() => {
      opts.signal?.removeEventListener("abort", onAbort);
      // A moment for output already in the pipes to be read.
      if (killed) setTimeout(cutNow, 100);
    });

    // Through a shared master, a lost connection is silent: the client just
    // exits 255 ("Control master terminated unexpectedly" is a debug2
    // message). A remote command may exit 255 too (or die of a signal), so
    // after a silent 255 we ask whether the master is still there.
    let tail = "";
    let masterGone: Promise<boolean> | undefined;
    const judge = (code: number): Promise<boolean> => {
      if (code !== SSH_FAILURE_CODE || killed) return Promise.resolve(false);
      if (isSshFailure(code, tail)) return Promise.resolve(true);
      masterGone ??= this.masterPid().then((pid) => pid === null, () => true);
      return masterGone;
    };

    const piped = (s: SpawnOptions["stdout"], dflt: string) =>
      (s ?? dflt) === "piped";
    const stdin = piped(opts.stdin, "null")
      ? cuttableWritable(child.stdin, cut)
      : undefined;
    const stdout = piped(opts.stdout, "piped")
      ? cuttableReadable(child.stdout, cut)
      : undefined;
    const dec = new TextDecoder();
    const stderr = piped(opts.stderr, "piped")
      ? cuttableReadable(child.stderr, cut, {
        onChunk(chunk) {
          tail = (tail + dec.decode(chunk, { stream: true })).slice(-8192);
        },
        async onEnd() {
          const { code } = await child.status;
          if (code !== SSH_FAILURE_CODE || isSshFailure(code, tail)) {
            return null;
          }
          return (await judge(code))
            ? new TextEncoder().encode(LOST_MASTER_MESSAGE)
            : null;
        },
      })
      : undefined;
    const status = child.status.then(async (s) => ({
      code: s.code,
      signal: s.signal,
      sshFailure: await judge(s.code),
    }));
    return {
      get stdin() {
        return stdin ?? child.stdin;
      },
      get stdout() {
        return stdout ?? child.stdout;
      },
      get stderr() {
        return stderr ?? child.stderr;
      },
      status,
      kill,
    };
  }

  async interactive(
    argv: string[],
    opts: { tty?: boolean } = {},
  ): Promise<number> {
    // Connect first, so a failure to connect reads as one clear line and
    // the session itself runs through a master we can ask about afterwards.
    try {
      await this.connect();
    } catch (e) {
      if (!(e instanceof SshConnectionError)) throw e;
      console.error(e.message);
      return SSH_FAILURE_CODE;
    }
    const tty = (opts.tty ?? false) && Deno.stdin.isTerminal();
    const child = new Deno.Command("ssh", {
      args: this.commandArgs(argv, tty),
      stdin: "inherit",
      stdout: "inherit",
      stderr: "inherit",
    }).spawn();
    const { code } = await child.status;
    // ssh's own errors already reached the terminal; a lost master is silent.
    if (code === SSH_FAILURE_CODE && (await this.masterPid()) === null) {
      console.error(sshFailureMessage(this.dest, LOST_MASTER_MESSAGE));
    }
    return code;
  }

  /**
   * Makes sure the master connection is up, without running anything on
   * the far side; throws SshConnectionError when ssh cannot connect.
   */
  async connect(): Promise<void> {
    if ((await this.masterPid()) !== null) return;
    // Only without a master: as a mux client, `ssh -N` would still open a
    // session and run the login shell (or the server's forced command).
    const out = await new Deno.Command("ssh", {
      args: ["-f", "-N", ...this.sshOptions(), this.dest],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
      signal: AbortSignal.timeout(
        ((this.opts.connectTimeoutS ?? 10) + 30) * 1000,
      ),
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    if (out.code === 0) return;
    if (isSshFailure(out.code, stderr) || out.code === SSH_FAILURE_CODE) {
      throw new SshConnectionError(this.dest, stderr);
    }
    throw new Error(
      `ssh to ${this.dest} exited ${out.code}: ${stderr.trim()}`,
    );
  }

  /** Asks the master connection (`ssh -O check`); its pid when running. */
  async masterPid(): Promise<number | null> {
    const res = await this.control("check");
    if (res.code !== 0) return null;
    const m = /pid=(\d+)/.exec(res.stderr + res.stdout);
    return m ? Number(m[1]) : null;
  }

  /** Ends the master connection, if there is one (`ssh -O exit`). */
  async close(): Promise<void> {
    await this.control("exit");
  }

  private async control(
    op: "check" | "exit",
  ): Promise<{ code: number; stdout: string; stderr: string }> {
    this.prepare();
    const out = await new Deno.Command("ssh", {
      args: ["-O", op, ...this.sshOptions(), this.dest],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
      signal: AbortSignal.timeout(10_000),
    }).output();
    const dec = new TextDecoder();
    return {
      code: out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
    };
  }
}

export interface WaitForSshOptions {
  /** Give up after this long. */
  timeoutMs: number;
  /** Called before each attempt (1-based) with the previous failure. */
  onAttempt?: (attempt: number, lastError: string | null) => void;
  /**
   * Stops waiting early (e.g. the provider says the VM failed): the wait
   * rejects with the signal's reason.
   */
  signal?: AbortSignal;
}

/**
 * Runs `true` until it succeeds, backing off from 250 ms to at most 2 s
 * between attempts; throws a clear error when `timeoutMs` runs out.
 */
export async function waitForSsh(
  t: SshTransport,
  { timeoutMs, onAttempt, signal }: WaitForSshOptions,
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  let delay = 250;
  let lastError: string | null = null;
  for (let attempt = 1;; attempt++) {
    signal?.throwIfAborted();
    onAttempt?.(attempt, lastError);
    // ConnectTimeout bounds an attempt; this only guards against a hang
    // after connecting, and never cuts an attempt short of the deadline.
    const bound = AbortSignal.timeout(Math.max(deadline - Date.now(), 1000));
    const res = await run(t, ["true"], {
      signal: signal ? AbortSignal.any([bound, signal]) : bound,
    });
    signal?.throwIfAborted();
    if (res.code === 0) return;
    if (isSshFailure(res.code, res.stderr)) {
      lastError = sshFailureMessage(t.dest, res.stderr);
    } else if (res.code === SSH_FAILURE_CODE && res.stderr.trim() === "") {
      lastError ??= "no answer";
    } else {
      lastError = `\`true\` exited ${res.code}: ${res.stderr.trim()}`;
    }
    const left = deadline - Date.now();
    if (left <= 0) {
      throw new Error(
        `ssh to ${t.dest} not reachable after ${
          Math.round(timeoutMs / 100) / 10
        }s (${attempt} attempts): ${lastError}`,
      );
    }
    await sleep(Math.min(delay, left), signal);
    delay = Math.min(delay * 2, 2000);
  }
}
