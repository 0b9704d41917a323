/**
 * The CLI in a terminal, headless: a detached tmux session on the test's
 * own tmux server gives it a pseudo-terminal, as a person's terminal would
 * (with TMUX set, as for a person who works inside tmux). Keys are typed
 * with send-keys, the screen is read with capture-pane, and the exit code
 * is written to a file when the command ends.
 */
import { quoteArgv } from "../../lib/transport/shell_quote.ts";
import { ARTIFACT, ensureArtifact } from "./cli.ts";
import { skipCheck } from "./prereq.ts";
import { until } from "./wait.ts";

export interface Term extends AsyncDisposable {
  /** The tmux server the terminal lives on (`tmux -S`). */
  socket: string;
  /** What the terminal shows now. */
  screen(): Promise<string>;
  /** Waits (bounded) until the screen matches `re`; the screen. */
  shows(re: RegExp, timeoutMs?: number): Promise<string>;
  /** Types text (literally), then Enter unless `enter` is false. */
  type(text: string, enter?: boolean): Promise<void>;
  /** Sends tmux key names (e.g. "C-b", "d"). */
  keys(...names: string[]): Promise<void>;
  /** The command's exit code, once it has ended (bounded). */
  exit(timeoutMs?: number): Promise<number>;
}

async function tmux(socket: string, args: string[]): Promise<string> {
  const r = await new Deno.Command("tmux", {
    args: ["-S", socket, ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!r.success) {
    throw new Error(`tmux ${args.join(" ")}: ${dec.decode(r.stderr).trim()}`);
  }
  return dec.decode(r.stdout);
}

/** Runs `ohcommodore ARGS` in a new terminal, HOME `home`, cwd `home`. */
export async function terminal(
  home: string,
  args: string[],
  env: Record<string, string> = {},
): Promise<Term> {
  await ensureArtifact();
  const tag = crypto.randomUUID().slice(0, 8);
  const socket = `${home}/term-${tag}.sock`;
  const exitFile = `${home}/term-${tag}.exit`;
  const vars = {
    HOME: home,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    TERM: "xterm-256color",
    ...env,
  };
  // The server carries this process's environment: the command gets only
  // its own (and the pane's TMUX).
  const line = `cd ${quoteArgv([home])} && env -i TMUX="$TMUX" ${
    quoteArgv(Object.entries(vars).map(([k, v]) => `${k}=${v}`))
  } ${quoteArgv([ARTIFACT, ...args])}; echo $? > ${quoteArgv([exitFile])}`;
  await tmux(socket, [
    "new-session",
    "-d",
    "-s",
    "term",
    "-x",
    "160",
    "-y",
    "48",
    line,
    ";",
    "set-option",
    "-g",
    "remain-on-exit",
    "on",
  ]);
  const screen = () => tmux(socket, ["capture-pane", "-p", "-t", "term"]);
  return {
    socket,
    screen,
    shows: async (re, timeoutMs = 60_000) => {
      let last = "";
      try {
        return await until(`the terminal to show ${re}`, async () => {
          last = await screen();
          return re.test(last) ? last : null;
        }, { timeoutMs, everyMs: 100 });
      } catch (e) {
        throw new Error(`${(e as Error).message}; it shows:\n${last}`);
      }
    },
    type: async (text, enter = true) => {
      await tmux(socket, ["send-keys", "-t", "term", "-l", text]);
      if (enter) await tmux(socket, ["send-keys", "-t", "term", "Enter"]);
    },
    keys: async (...names) => {
      await tmux(socket, ["send-keys", "-t", "term", ...names]);
    },
    exit: async (timeoutMs = 60_000) => {
      const text = await until("the command to end", async () => {
        const t = await Deno.readTextFile(exitFile).catch(() => "");
        return t.endsWith("\n") ? t : null;
      }, { timeoutMs, everyMs: 100 });
      return Number(text.trim());
    },
    [Symbol.asyncDispose]: async () => {
      await tmux(socket, ["kill-server"]).catch(() => {});
      await Deno.remove(exitFile).catch(() => {});
    },
  };
}

/** Windows of a tmux session on `socket` (empty when it is not there). */
export async function tmuxWindows(
  socket: string,
  session: string,
): Promise<string[]> {
  return await tmux(socket, [
    "list-windows",
    "-t",
    `=${session}`,
    "-F",
    "#{window_name}",
  ]).then((o) => o.trim().split("\n").filter(Boolean), () => []);
}

/** What a tmux pane on `socket` shows. */
export async function tmuxScreen(
  socket: string,
  target: string,
): Promise<string> {
  return await tmux(socket, ["capture-pane", "-p", "-t", target]).catch(
    () => "",
  );
}

/** Terminal tests need tmux; they skip with a notice without it (not on CI). */
export const tmuxMissing = skipCheck(
  "terminal tests (tmux)",
  "OHC_NOTICE_TMUX",
  () => {
    try {
      return new Deno.Command("tmux", { args: ["-V"] }).outputSync().success
        ? null
        : "tmux does not run";
    } catch {
      return "tmux is not installed";
    }
  },
);
