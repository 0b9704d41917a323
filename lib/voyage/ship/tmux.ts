/**
 * The tmux server, sessions and windows a ship's agents run in (runner.ts
 * starts the runs): a person runs `tmux attach -t voyage` (or `voyage
 * shell`) and sees every running task.
 */
import { OhcError } from "../../errors.ts";

export const DEFAULT_SESSION = "voyage";

export function tmuxArgv(socket?: string): string[] {
  return socket ? ["tmux", "-S", socket] : ["tmux"];
}

/** argv a person runs to watch: `tmux [-S sock] attach -t =voyage`. */
export function attachArgv(
  opts: { session?: string; socket?: string } = {},
): string[] {
  return [
    ...tmuxArgv(opts.socket),
    "attach-session",
    "-t",
    `=${opts.session ?? DEFAULT_SESSION}`,
  ];
}

let tmuxPresent: Promise<boolean> | undefined;

/** Whether a tmux client can be run here (cached). */
export function hasTmux(): Promise<boolean> {
  tmuxPresent ??= (async () => {
    try {
      const r = await new Deno.Command("tmux", {
        args: ["-V"],
        stdout: "null",
        stderr: "null",
      }).output();
      return r.success;
    } catch {
      return false;
    }
  })();
  return tmuxPresent;
}

export interface TmuxOut {
  code: number;
  stdout: string;
  stderr: string;
}

export async function tmux(
  socket: string | undefined,
  args: string[],
): Promise<TmuxOut> {
  const [cmd, ...pre] = tmuxArgv(socket);
  const r = await new Deno.Command(cmd, {
    args: [...pre, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: r.code,
    stdout: dec.decode(r.stdout),
    stderr: dec.decode(r.stderr).trim(),
  };
}

/** Creates the session detached if it does not exist (race-safe). */
export async function ensureSession(
  opts: { session?: string; socket?: string; cwd?: string } = {},
): Promise<void> {
  const session = opts.session ?? DEFAULT_SESSION;
  checkName("session", session);
  const has = await tmux(opts.socket, ["has-session", "-t", `=${session}`]);
  if (has.code === 0) return;
  const args = [
    "new-session",
    "-d",
    "-s",
    session,
    "-n",
    "captain",
    "-x",
    "200",
    "-y",
    "50",
  ];
  if (opts.cwd) args.push("-c", opts.cwd);
  const r = await tmux(opts.socket, args);
  if (r.code !== 0 && !r.stderr.includes("duplicate session")) {
    throw new OhcError(
      "tmux_failed",
      `cannot create tmux session ${session}: ${r.stderr || `exit ${r.code}`}`,
    );
  }
}

export interface WindowInfo {
  id: string;
  index: number;
  name: string;
  panePid: number;
  /** The command in the pane ("bash", "sleep", ...). */
  command: string;
}

/** The windows of a session (empty when the session does not exist). */
export async function listWindows(
  opts: { session?: string; socket?: string } = {},
): Promise<WindowInfo[]> {
  const r = await tmux(opts.socket, [
    "list-windows",
    "-t",
    `=${opts.session ?? DEFAULT_SESSION}`,
    "-F",
    "#{window_id}\t#{window_index}\t#{pane_pid}\t#{pane_current_command}\t#{window_name}",
  ]);
  if (r.code !== 0) return [];
  return r.stdout.split("\n").filter((l) => l !== "").map((l) => {
    const [id, index, pid, command, ...name] = l.split("\t");
    return {
      id,
      index: Number(index),
      panePid: Number(pid),
      command,
      name: name.join("\t"),
    };
  });
}

/** The visible text of a window's pane (`tmux capture-pane -p`). */
export async function capturePane(
  target: string,
  opts: { socket?: string; history?: boolean } = {},
): Promise<string> {
  const args = ["capture-pane", "-p", "-J", "-t", target];
  if (opts.history) args.push("-S", "-");
  const r = await tmux(opts.socket, args);
  if (r.code !== 0) {
    throw new OhcError(
      "tmux_failed",
      `cannot capture ${target}: ${r.stderr || `exit ${r.code}`}`,
    );
  }
  return r.stdout;
}

/** Kills the tmux server on a socket (tests, `voyage sink`). */
export async function killServer(socket?: string): Promise<void> {
  await tmux(socket, ["kill-server"]).catch(() => undefined);
}

export function checkName(what: string, name: string): void {
  const control = [...name].some((c) => c.charCodeAt(0) < 0x20);
  if (name === "" || control || /[:.]/.test(name)) {
    throw new Error(
      `invalid tmux ${what} name ${
        JSON.stringify(name)
      }: no ':', '.' or control characters`,
    );
  }
}
