/**
 * The files of one run (runner.ts): the wrapper script, its environment
 * file and exit file, and the small tools it needs.
 */
import { OhcError } from "../../errors.ts";
import { quoteArg, quoteArgv } from "../../transport/shell_quote.ts";

const ENV_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** `export K='v'` lines for a bash script; rejects names bash cannot hold. */
export function envFileText(env: Record<string, string>): string {
  return Object.entries(env).map(([k, v]) => {
    if (!ENV_NAME.test(k)) {
      throw new Error(`invalid environment variable name ${JSON.stringify(k)}`);
    }
    return `export ${k}=${quoteArg(v)}\n`;
  }).join("");
}

export async function checkCwd(cwd: string): Promise<void> {
  let ok = false;
  try {
    ok = (await Deno.stat(cwd)).isDirectory;
  } catch {
    ok = false;
  }
  if (!ok) {
    throw new OhcError(
      "no_checkout",
      `working directory ${cwd} does not exist`,
    );
  }
}

export async function ensureLogDir(logFile: string): Promise<void> {
  const i = logFile.lastIndexOf("/");
  if (i > 0) await Deno.mkdir(logFile.slice(0, i), { recursive: true });
}

/**
 * Wakes a waiter when anything changes in `dir` (inotify through
 * Deno.watchFs), so the exit file is read the moment the wrapper writes it
 * instead of up to a poll interval later. Where watching is not available,
 * waits are plain sleeps.
 */
export function dirChanges(dir: string): {
  wait(ms: number, signal?: AbortSignal): Promise<void>;
  watching: boolean;
  close(): void;
} {
  let watcher: Deno.FsWatcher | null = null;
  try {
    watcher = Deno.watchFs(dir, { recursive: false });
  } catch {
    watcher = null;
  }
  let wake: () => void = () => {};
  if (watcher) {
    const w = watcher;
    void (async () => {
      try {
        for await (const _ of w) wake();
      } catch { /* closed */ }
    })();
  }
  return {
    watching: watcher !== null,
    wait: (ms, signal) =>
      new Promise((resolve) => {
        const t = setTimeout(done, ms);
        function done() {
          clearTimeout(t);
          wake = () => {};
          signal?.removeEventListener("abort", done);
          resolve();
        }
        wake = done;
        signal?.addEventListener("abort", done, { once: true });
      }),
    close: () => {
      try {
        watcher?.close();
      } catch { /* already closed */ }
    },
  };
}

export async function readExit(path: string): Promise<number | undefined> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch {
    return undefined;
  }
  // The wrapper writes "<code>\n" with one write; no newline yet = not done.
  if (!text.endsWith("\n")) return undefined;
  const n = Number(text.trim());
  return Number.isInteger(n) ? n : undefined;
}

export function killGroup(pid: number, sig: Deno.Signal): void {
  try {
    Deno.kill(-pid, sig);
  } catch {
    // already gone
  }
}

/** The bash wrapper run in the window. Holds paths and argv, never env values. */
export function wrapperScript(o: {
  dir: string;
  log: string;
  cwd: string;
  argv: string[];
  stdin: string;
  window: string;
  linger: number;
}): string {
  const q = quoteArg;
  const tee = findTool("tee");
  const rm = findTool("rm");
  const sleepBin = findTool("sleep");
  const ts = "%(%Y-%m-%dT%H:%M:%S%z)T";
  return [
    // Its pid first: whoever finds the run dir knows it started (startRun).
    `d=${q(o.dir)}; log=${q(o.log)}; w=${q(o.window)}; echo $$ > "$d/pid"`,
    `say() { printf '%s\\n' "$1" >> "$log"; printf '%s\\n' "$1"; }`,
    `done_with() { printf '%s\\n' "$1" > "$d/exit"; }`,
    // The pane inherits the tmux server's environment; start from nothing.
    `for v in $(compgen -e); do case $v in TERM|TMUX|TMUX_PANE) ;; *) unset "$v" 2>/dev/null ;; esac; done`,
    // Ctrl-C or SIGTERM ends the command; the wrapper lives to record it.
    `trap : INT TERM`,
    `if ! cd -- ${q(o.cwd)}; then say "[ohc] $w: cannot cd to "${
      q(o.cwd)
    }; done_with 126; exit 126; fi`,
    `say "$(printf '[ohc] %s started ${ts}: %s' "$w" -1 ${
      q(summary(o.argv))
    })"`,
    // The environment (secrets included) is read in the command's own
    // subshell, so the wrapper, tee and the lingering sleep never hold it.
    `( if ! . "$d/env"; then printf '[ohc] %s: cannot read the environment file\n' "$w"; exit 127; fi; ${
      q(rm)
    } -f -- "$d/env"; ${quoteArgv(o.argv)} ) < ${q(o.stdin)} 2>&1 | ${
      q(tee)
    } -a -- "$log"`,
    `c=\${PIPESTATUS[0]}`,
    `say "$(printf '[ohc] %s exit %s ${ts}' "$w" "$c" -1)"`,
    `done_with "$c"`,
    `trap - INT TERM`,
    o.linger > 0
      ? `printf '[ohc] this window closes in %s s\\n' ${o.linger}; exec ${
        q(sleepBin)
      } ${o.linger}`
      : `exit "$c"`,
  ].join("\n");
}

/** argv for a banner line: one line, at most 300 characters. */
export function summary(argv: string[]): string {
  const s = argv.join(" ").replace(/\s+/g, " ");
  return s.length > 300 ? s.slice(0, 297) + "..." : s;
}

export function findTool(name: string): string {
  for (const d of ["/usr/bin", "/bin", "/usr/local/bin"]) {
    try {
      if (Deno.statSync(`${d}/${name}`).isFile) return `${d}/${name}`;
    } catch {
      // not here
    }
  }
  return name;
}
