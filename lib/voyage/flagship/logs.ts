/**
 * `voyage logs`: each task's agent output is written on the ship that ran
 * it (`~/.ohcommodore/voyages/<id>/logs/task-<n>.log`), and kept on the
 * flagship once the ship is gone (log_archive.ts). The flagship reads them
 * from wherever they are and prefixes each line with ship and task.
 * Claude's stream-json lines are rendered for people (agent_log.ts) unless
 * `raw`; `grep` and `tail` apply to the lines as shown. `follow` polls for
 * growth once a second until the voyage has ended.
 */
import type { Transport } from "../../transport/types.ts";
import { renderAgentLine } from "../agent_log.ts";
import { shipVoyageDir } from "../protocol.ts";

/** Where one ship's logs of a voyage are read: the ship, or its archive. */
export interface LogSource {
  ship: string;
  /** The log files and their sizes; null when they cannot be read now. */
  list(): Promise<{ name: string; size: number }[] | null>;
  /** The bytes of `file` from `offset` on; null when it cannot be read. */
  read(file: string, offset: number): Promise<Uint8Array | null>;
}

/** Prints `<name> <size>` for each log, then nothing else. */
const LIST =
  'cd "$HOME/$1" 2>/dev/null || exit 0; for f in *.log; do [ -f "$f" ] && echo "$f $(wc -c < "$f")"; done; exit 0';
/** Bytes of file $2 from offset $3 (1-based, as tail -c +N). */
const READ = 'cd "$HOME/$1" && tail -c "+$3" -- "$2"';

async function output(
  t: Transport,
  argv: string[],
): Promise<Uint8Array | null> {
  const child = t.spawn(argv, { stdout: "piped", stderr: "null" });
  const [bytes, status] = await Promise.all([
    new Response(child.stdout).bytes(),
    child.status,
  ]);
  return status.code === 0 ? bytes : null;
}

/** A voyage's logs on the ship itself. */
export function shipLogs(ship: string, t: Transport, voyage: string) {
  const dir = `${shipVoyageDir(voyage)}/logs`;
  return {
    ship,
    list: async () => {
      const b = await output(t, ["sh", "-c", LIST, "logs", dir]).catch(() =>
        null
      );
      if (!b) return null;
      return new TextDecoder().decode(b).trim().split("\n").filter(Boolean)
        .map((l) => {
          const at = l.lastIndexOf(" ");
          return { name: l.slice(0, at), size: Number(l.slice(at + 1)) };
        });
    },
    read: (file: string, offset: number) =>
      output(t, ["sh", "-c", READ, "logs", dir, file, String(offset + 1)])
        .catch(() => null),
  } satisfies LogSource;
}

export async function voyageLogs(o: {
  /** Where to read, asked again at each poll (ships come and go). */
  sources: () => Promise<LogSource[]>;
  follow: boolean;
  /** Whether the voyage has ended (nothing more will be written). */
  ended: () => Promise<boolean>;
  /** The lines as the agents wrote them (no rendering). */
  raw?: boolean;
  /** Only lines matching it. */
  grep?: RegExp;
  /** Only the last n lines there are now (then, following, every new one). */
  tail?: number;
  signal: AbortSignal;
  emit: (line: string) => void;
}): Promise<void> {
  let held: string[] | null = o.tail ? [] : null;
  const show = (tag: string, line: string) => {
    const r = o.raw ? line : renderAgentLine(line);
    if (r === null) return;
    const text = `${tag} ${r}`;
    if (o.grep && !o.grep.test(text)) return;
    if (!held) return o.emit(text);
    held.push(text);
    if (held.length > o.tail!) held.shift();
  };
  const offsets = new Map<string, number>();
  const partial = new Map<string, string>();
  const decoders = new Map<string, TextDecoder>();
  const tagOf = (ship: string, file: string) =>
    `[${ship} ${file.replace(/\.log$/, "")}]`;
  const poll = async () => {
    for (const s of await o.sources()) {
      const files = await s.list();
      if (!files) continue;
      files.sort((a, b) =>
        a.name.localeCompare(b.name, undefined, { numeric: true })
      );
      for (const f of files) {
        const key = `${s.ship}/${f.name}`;
        const off = offsets.get(key) ?? 0;
        if (f.size <= off) continue;
        const bytes = await s.read(f.name, off);
        if (!bytes) continue;
        offsets.set(key, off + bytes.length);
        let dec = decoders.get(key);
        if (!dec) decoders.set(key, dec = new TextDecoder());
        const text = (partial.get(key) ?? "") +
          dec.decode(bytes, { stream: true });
        const lines = text.split("\n");
        partial.set(key, lines.pop() ?? "");
        for (const line of lines) show(tagOf(s.ship, f.name), line);
      }
    }
  };
  await poll();
  const flushHeld = () => {
    held?.forEach(o.emit);
    held = null;
  };
  if (o.follow) flushHeld();
  while (o.follow && !o.signal.aborted) {
    const over = await o.ended();
    if (!over) await pause(1_000, o.signal);
    await poll();
    if (over) break;
  }
  for (const [key, rest] of partial) {
    if (!rest) continue;
    const at = key.indexOf("/");
    show(tagOf(key.slice(0, at), key.slice(at + 1)), rest);
  }
  flushHeld();
}

function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    }
    signal.addEventListener("abort", done);
  });
}
