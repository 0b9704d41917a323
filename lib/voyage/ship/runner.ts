/**
 * Running one task's agent where a person can watch it.
 *
 * `runInTmux` runs a command in a window of the tmux session `voyage` (the
 * session is created detached when missing, with a first window "captain"
 * holding a shell, so it outlives single tasks; each task gets its own
 * window, e.g. "task-3"). A person runs `tmux attach -t voyage` (or
 * `voyage shell`) and sees every running task. All output also goes to
 * `logFile` (appended, with `[ohc]` banner lines at start and end), and the
 * promise resolves with the command's real exit code.
 *
 How: the window runs `bash <rundir>/run.sh`, a small wrapper
 *
 *     <clear the environment>; cd <cwd>
 *     ( . <envfile>; rm <envfile>; <argv> ) < <stdin> 2>&1 | tee -a <log>
 *     echo ${PIPESTATUS[0]} > <exitfile>; exec sleep <linger>
 *
 * built with `quoteArgv`, so nothing in argv is ever re-parsed. The wrapper
 * is a file, not a `bash -c` argument, because tmux refuses a command longer
 * than its 16 KiB message limit ("command too long") and a task's command
 * can be long. The caller watches the run dir for the exit file (inotify;
 * polling every 50 ms where that is unavailable) and checks every second
 * that the window still exists. Environment values never
 * appear in any argv (not in tmux's, not in the wrapper's): they are written
 * to a 0600 file in the 0700 run dir, sourced in the command's own subshell
 * and deleted at once (so only the command and its children hold them, never
 * the wrapper, tee or the lingering sleep); the run dir is removed when the
 * command has ended.
 *
 * Semantics shared with `runDirect` (the fallback without tmux):
 * - `env` is the whole environment of the command; nothing is inherited
 *   (in tmux the pane's TERM, TMUX and TMUX_PANE are kept, as they describe
 *   the pane). Put PATH in it.
 * - stdin is `stdinFile`, or /dev/null.
 * - stdout and stderr both go to the log (in tmux also to the pane; the
 *   command sees a pipe, not a terminal).
 * - `signal` aborts: SIGTERM to the command's process group, SIGKILL after
 *   `killGraceMs`, and the window is closed. The result then has
 *   `aborted: true` and the code the command died with (143 for SIGTERM,
 *   137 for SIGKILL).
 *
 * After the command ends the window stays open `lingerSeconds` (default
 * 30 s) showing the output and the exit code, then closes by itself; the
 * promise does not wait for that. The exit code is known as soon as the
 * command ends. A Ctrl-C typed by a person in the window ends the command
 * (exit 130), not the wrapper, so the exit code is still recorded. If the
 * window disappears before the command ends (someone kills it, or the tmux
 * server dies), the result is `{ code: 129, lost: true }`.
 */

import { sleep } from "../../sleep.ts";
import { OhcError } from "../../errors.ts";
import {
  checkCwd,
  dirChanges,
  ensureLogDir,
  envFileText,
  findTool,
  killGroup,
  readExit,
  summary,
  wrapperScript,
} from "./run_files.ts";
import {
  checkName,
  DEFAULT_SESSION,
  ensureSession,
  hasTmux,
  tmux,
} from "./tmux.ts";

export const DEFAULT_LINGER_SECONDS = 30;
const POLL_MS = 50;
/** With a watch on the run dir the exit file is seen at once; this is the fallback. */
const WATCHED_POLL_MS = 250;
const WINDOW_CHECK_MS = 1000;

export interface RunOptions {
  /** What to run. argv[0] is looked up on env.PATH. */
  argv: string[];
  /** The complete environment of the command. */
  env: Record<string, string>;
  /** Working directory; must exist. */
  cwd: string;
  /** Output is appended here (created with its parent directories). */
  logFile: string;
  /** Fed on stdin; default /dev/null. */
  stdinFile?: string;
  /** Kills the command when aborted. */
  signal?: AbortSignal;
  /** ms between SIGTERM and SIGKILL on abort (default 3000). */
  killGraceMs?: number;
}

export interface TmuxRunOptions extends RunOptions {
  /** Session name (default "voyage"). */
  session?: string;
  /** Window name, e.g. "task-3". */
  window: string;
  /** tmux server socket (`tmux -S`); default the user's default server. */
  socket?: string;
  /** Seconds the window stays open after the command ends (default 30). */
  lingerSeconds?: number;
}

export interface RunResult {
  /** The command's exit code (128+N when killed by signal N). */
  code: number;
  /** The run was aborted through `signal`. */
  aborted?: boolean;
  /** tmux: the window vanished before the command ended. */
  lost?: boolean;
  /** Which runner ran it. */
  via: "tmux" | "direct";
  /** tmux: the window's id ("@3"). */
  windowId?: string;
}

/**
 * Sessions this process created or found, so a task's window costs one
 * tmux run (`new-window`), not two; a failing new-window checks again.
 */
const sessionsSeen = new Set<string>();

/**
 * Runs argv in window `window` of tmux session `session` and resolves with
 * its exit code when it ends. See the module comment for the contract.
 */
export async function runInTmux(opts: TmuxRunOptions): Promise<RunResult> {
  checkName("session", opts.session ?? DEFAULT_SESSION);
  checkName("window", opts.window);
  if (opts.argv.length === 0) throw new Error("runInTmux needs a command");
  if (opts.signal?.aborted) return { code: 143, aborted: true, via: "tmux" };
  const dir = await Deno.makeTempDir({ prefix: "ohc-run-" });
  try {
    const run = await startRun({ ...opts, dir, tmux: true });
    const r = await waitRun(run, opts.signal);
    if (r.code !== undefined) return r as RunResult;
    return { ...await killRun(run, opts.killGraceMs), aborted: true };
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => undefined);
  }
}

/**
 * A command started by `startRun`: where its run dir is and what runs it.
 * It outlives the process that started it (a tmux window, or a process in
 * its own session), and any process can wait for it or end it later
 * (`readRun`, `waitRun`, `killRun`): a ship's captain finds its task's
 * run again after its session was cut.
 */
export interface Run {
  dir: string;
  via: "tmux" | "direct";
  /** The wrapper's pid: leader of the command's process group. */
  pid: number;
  windowId?: string;
  socket?: string;
}

/**
 * Starts the command (the module comment's wrapper) in a window of the
 * tmux session (when tmux is installed and `tmux` is not false), else as a
 * process in its own session, and returns without waiting. `dir` is the run
 * dir, made here (0700; it must hold no other run); it holds the wrapper, the exit
 * code once there is one, and `run.json` (what readRun reads). The caller
 * removes it when done with the run.
 */
export async function startRun(
  opts: TmuxRunOptions & { dir: string; tmux?: boolean },
): Promise<Run> {
  const session = opts.session ?? DEFAULT_SESSION;
  checkName("session", session);
  checkName("window", opts.window);
  if (opts.argv.length === 0) throw new Error("startRun needs a command");
  await checkCwd(opts.cwd);
  await ensureLogDir(opts.logFile);
  const dir = opts.dir;
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  await Deno.chmod(dir, 0o700);
  await Deno.writeTextFile(`${dir}/env`, envFileText(opts.env), {
    mode: 0o600,
    createNew: true,
  });
  const runScript = `${dir}/run.sh`;
  const viaTmux = opts.tmux !== false && await hasTmux();
  await Deno.writeTextFile(
    runScript,
    wrapperScript({
      dir,
      log: opts.logFile,
      cwd: opts.cwd,
      argv: opts.argv,
      stdin: opts.stdinFile ?? "/dev/null",
      window: opts.window,
      linger: viaTmux
        ? Math.max(
          0,
          Math.floor(opts.lingerSeconds ?? DEFAULT_LINGER_SECONDS),
        )
        : 0,
    }) + "\n",
    { mode: 0o600, createNew: true },
  );
  const run: Run = viaTmux
    ? await openWindow(opts, session, runScript)
    : startDetached(dir, runScript);
  run.dir = dir;
  await Deno.writeTextFile(`${dir}/run.json`, JSON.stringify(run), {
    mode: 0o600,
  });
  return run;
}

async function openWindow(
  opts: TmuxRunOptions,
  session: string,
  runScript: string,
): Promise<Run> {
  const key = `${opts.socket ?? ""}\0${session}`;
  if (!sessionsSeen.has(key)) {
    await ensureSession({ session, socket: opts.socket, cwd: opts.cwd });
    sessionsSeen.add(key);
  }
  const newWindow = () =>
    tmux(opts.socket, [
      "new-window",
      "-d",
      "-P",
      "-F",
      "#{window_id} #{pane_pid}",
      "-t",
      `=${session}:`,
      "-n",
      opts.window,
      "-c",
      opts.cwd,
      "--",
      findTool("bash"),
      runScript,
    ]);
  let nw = await newWindow();
  if (nw.code !== 0) {
    // The session we saw before is gone (killed by hand, or the server).
    await ensureSession({ session, socket: opts.socket, cwd: opts.cwd });
    nw = await newWindow();
  }
  if (nw.code !== 0) {
    sessionsSeen.delete(key);
    throw new OhcError(
      "tmux_failed",
      `cannot open tmux window ${opts.window}: ${
        nw.stderr || `exit ${nw.code}`
      }`,
    );
  }
  const [windowId, pidText] = nw.stdout.trim().split(" ");
  return {
    dir: "",
    via: "tmux",
    pid: Number(pidText),
    windowId,
    ...(opts.socket ? { socket: opts.socket } : {}),
  };
}

/** Processes this one started directly, until they are reaped. */
const children = new Map<number, Promise<unknown>>();

/** The wrapper as a process in its own session, output to the log only. */
function startDetached(dir: string, runScript: string): Run {
  const child = new Deno.Command(findTool("setsid"), {
    args: [findTool("bash"), runScript],
    cwd: dir,
    clearEnv: true,
    env: { PATH: "/usr/bin:/bin" },
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const pid = child.pid;
  children.set(pid, child.status.finally(() => children.delete(pid)));
  return { dir, via: "direct", pid };
}

/**
 * The run in `dir` (from its run.json; else, when whoever started it died
 * before writing that, from the pid its wrapper wrote), or null when none
 * ever started there.
 */
export async function readRun(dir: string): Promise<Run | null> {
  try {
    const r = JSON.parse(await Deno.readTextFile(`${dir}/run.json`)) as Run;
    return { ...r, dir };
  } catch { /* look for the pid */ }
  const pid = Number(
    (await Deno.readTextFile(`${dir}/pid`).catch(() => "")).trim(),
  );
  return Number.isInteger(pid) && pid > 1 ? { dir, via: "direct", pid } : null;
}

/** Whether the run's wrapper still exists (its window, or its process). */
async function runAlive(run: Run): Promise<boolean> {
  if (run.via === "tmux") {
    const alive = await tmux(run.socket, [
      "display-message",
      "-p",
      "-t",
      run.windowId!,
      "#{window_id}",
    ]);
    return alive.code === 0 && alive.stdout.trim() === run.windowId;
  }
  if (children.has(run.pid)) return true; // ours, not reaped yet
  return pidAlive(run.pid);
}

let procFs: boolean | undefined;
const hasProc = () =>
  procFs ??= (() => {
    try {
      Deno.statSync("/proc/self/stat");
      return true;
    } catch {
      return false;
    }
  })();

/** A process that exists and is not a zombie (its parent may reap late). */
function pidAlive(pid: number): boolean {
  if (hasProc()) {
    try {
      const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
      return !/^\d+ \(.*\) Z/s.test(stat);
    } catch {
      return false;
    }
  }
  try {
    Deno.kill(pid, "SIGCONT"); // no /proc: a harmless probe
    return true;
  } catch {
    return false;
  }
}

/**
 * Waits for the run to end: its exit code, or 129 with `lost` when its
 * window or process went without one. When `signal` aborts first, returns
 * `{ detached: true }` and leaves the run running.
 */
export async function waitRun(
  run: Run,
  signal?: AbortSignal,
): Promise<RunResult | { detached: true; code?: undefined }> {
  const exitFile = `${run.dir}/exit`;
  const changes = dirChanges(run.dir);
  const done = (code: number, lost = false): RunResult => ({
    code,
    via: run.via,
    ...(run.windowId ? { windowId: run.windowId } : {}),
    ...(lost ? { lost: true } : {}),
  });
  try {
    let lastCheck = Date.now();
    while (true) {
      const code = await readExit(exitFile);
      if (code !== undefined) return done(code);
      if (signal?.aborted) return { detached: true };
      if (Date.now() - lastCheck >= WINDOW_CHECK_MS) {
        lastCheck = Date.now();
        if (!(await runAlive(run))) {
          const late = await readExit(exitFile);
          return late !== undefined ? done(late) : done(129, true);
        }
      }
      await changes.wait(
        changes.watching ? WATCHED_POLL_MS : POLL_MS,
        signal,
      );
    }
  } finally {
    changes.close();
  }
}

/**
 * Ends the run: SIGTERM to its process group, SIGKILL after `graceMs`
 * (default 3000), and its window closed. Returns the code it died with.
 */
export async function killRun(run: Run, graceMs = 3000): Promise<RunResult> {
  const exitFile = `${run.dir}/exit`;
  killGroup(run.pid, "SIGTERM");
  const deadline = Date.now() + graceMs;
  let code = await readExit(exitFile);
  while (code === undefined && Date.now() < deadline) {
    if (!(await runAlive(run))) break;
    await sleep(POLL_MS);
    code = await readExit(exitFile);
  }
  if (code === undefined) {
    killGroup(run.pid, "SIGKILL");
    code = (await readExit(exitFile)) ?? 137;
  }
  if (run.via === "tmux") {
    await tmux(run.socket, ["kill-window", "-t", run.windowId!]);
  }
  return {
    code,
    via: run.via,
    ...(run.windowId ? { windowId: run.windowId } : {}),
  };
}

/**
 * The same contract as runInTmux without tmux: output to the log only.
 * The command is exec'd by bash (for the redirections), so SIGTERM on abort
 * reaches it directly; processes it started that outlive it are its own
 * business (Claude Code kills its tool processes on SIGTERM).
 */
export async function runDirect(opts: RunOptions): Promise<RunResult> {
  if (opts.argv.length === 0) throw new Error("runDirect needs a command");
  if (opts.signal?.aborted) return { code: 143, aborted: true, via: "direct" };
  await checkCwd(opts.cwd);
  await ensureLogDir(opts.logFile);
  const stamp = () => new Date().toISOString();
  await Deno.writeTextFile(
    opts.logFile,
    `[ohc] started ${stamp()}: ${summary(opts.argv)}\n`,
    { append: true },
  );
  const child = new Deno.Command(findTool("bash"), {
    args: [
      "-c",
      'log=$1 in=$2; shift 2; exec "$@" < "$in" >> "$log" 2>&1',
      "ohc-run",
      opts.logFile,
      opts.stdinFile ?? "/dev/null",
      ...opts.argv,
    ],
    cwd: opts.cwd,
    env: opts.env,
    clearEnv: true,
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  let aborted = false;
  let killTimer: ReturnType<typeof setTimeout> | undefined;
  const onAbort = () => {
    aborted = true;
    try {
      child.kill("SIGTERM");
    } catch {
      // gone
    }
    killTimer = setTimeout(() => {
      try {
        child.kill("SIGKILL");
      } catch {
        // gone
      }
    }, opts.killGraceMs ?? 3000);
  };
  opts.signal?.addEventListener("abort", onAbort, { once: true });
  const status = await child.status;
  opts.signal?.removeEventListener("abort", onAbort);
  if (killTimer !== undefined) clearTimeout(killTimer);
  await Deno.writeTextFile(
    opts.logFile,
    `[ohc] exit ${status.code} ${stamp()}\n`,
    { append: true },
  );
  return aborted
    ? { code: status.code, aborted: true, via: "direct" }
    : { code: status.code, via: "direct" };
}

/**
 * Runs in tmux when it is installed (and `tmux` is not false), else
 * directly. What a captain calls.
 */
export async function runTask(
  opts: TmuxRunOptions & { tmux?: boolean },
): Promise<RunResult> {
  if (opts.tmux !== false && await hasTmux()) return runInTmux(opts);
  return runDirect(opts);
}
