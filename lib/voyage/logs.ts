/**
 * `voyage logs`: each task's agent output lives on the ship that ran it
 * (`~/.ohcommodore/voyages/<id>/logs/task-<n>.log`); the flagship reads them
 * over the transport and prefixes each line with ship and task. --follow
 * polls for growth once a second. Claude's stream-json lines are rendered
 * for people (agent_log.ts) unless `raw`.
 */
import type { Transport } from "../transport/types.ts";
import { run } from "../transport/run.ts";
import { shipVoyageDir } from "./captain_protocol.ts";
import { renderAgentLine } from "./agent_log.ts";

/** Prints `<name> <size>` for each log, then nothing else. */
const LIST =
  'cd "$HOME/$1" 2>/dev/null || exit 0; for f in *.log; do [ -f "$f" ] && echo "$f $(wc -c < "$f")"; done; exit 0';
/** Bytes of file $2 from offset $3 (1-based, as tail -c +N). */
const READ = 'cd "$HOME/$1" && tail -c "+$3" -- "$2"';

export async function voyageLogs(o: {
  voyage: string;
  ships: { name: string; t: Transport }[];
  follow: boolean;
  /** The lines as the agents wrote them (no rendering). */
  raw?: boolean;
  signal: AbortSignal;
  emit: (line: string) => void;
}): Promise<void> {
  const show = (tag: string, line: string) => {
    const r = o.raw ? line : renderAgentLine(line);
    if (r !== null) o.emit(`${tag} ${r}`);
  };
  const dir = `${shipVoyageDir(o.voyage)}/logs`;
  const offsets = new Map<string, number>();
  const partial = new Map<string, string>();
  const poll = async () => {
    for (const s of o.ships) {
      const list = await run(s.t, ["sh", "-c", LIST, "logs", dir]).catch(() =>
        null
      );
      if (!list || list.code !== 0) continue;
      const files = list.stdout.trim().split("\n").filter(Boolean).map((l) => {
        const [name, size] = l.split(" ");
        return { name, size: Number(size) };
      }).sort((a, b) =>
        a.name.localeCompare(b.name, undefined, { numeric: true })
      );
      for (const f of files) {
        const key = `${s.name}/${f.name}`;
        const off = offsets.get(key) ?? 0;
        if (f.size <= off) continue;
        const r = await run(s.t, [
          "sh",
          "-c",
          READ,
          "logs",
          dir,
          f.name,
          String(off + 1),
        ]);
        if (r.code !== 0) continue;
        offsets.set(key, off + new TextEncoder().encode(r.stdout).length);
        const text = (partial.get(key) ?? "") + r.stdout;
        const lines = text.split("\n");
        partial.set(key, lines.pop() ?? "");
        const tag = `[${s.name} ${f.name.replace(/\.log$/, "")}]`;
        for (const line of lines) show(tag, line);
      }
    }
  };
  await poll();
  while (o.follow && !o.signal.aborted) {
    await new Promise((r) => setTimeout(r, 1_000));
    await poll();
  }
  for (const [key, rest] of partial) {
    if (rest) {
      const [ship, file] = key.split("/");
      show(`[${ship} ${file.replace(/\.log$/, "")}]`, rest);
    }
  }
}
