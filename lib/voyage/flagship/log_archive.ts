/**
 * A voyage's logs outlive its ships: before the flagship destroys a ship it
 * copies the ship's voyage logs into the voyage's folder on the flagship
 * (`~/.ohcommodore/voyages/<id>/logs/<ship>/task-<n>.log`), where
 * `voyage logs` reads them once the ship is gone. `voyage sink --purge`
 * removes them with the rest of the voyage.
 */
import { paths, remotePaths } from "../../state/paths.ts";
import { download, run } from "../../transport/run.ts";
import type { Transport } from "../../transport/types.ts";
import type { LogSource } from "./logs.ts";
import { isVoyageId } from "../voyage_id.ts";

/** Prints `<voyage>/logs/<file>` for every voyage log on the ship. */
const LIST_ALL =
  `cd "$HOME/${remotePaths.voyages}" 2>/dev/null || exit 0; for f in */logs/*.log; do [ -f "$f" ] && echo "$f"; done; exit 0`;

const LOG_FILE = /^[A-Za-z0-9_][A-Za-z0-9._-]{0,200}\.log$/;

/** Where the flagship keeps a gone ship's logs of a voyage. */
export const archiveDir = (home: string, voyage: string, ship: string) =>
  `${paths.voyage(home, voyage)}/logs/${ship}`;

/**
 * Copies the ship's logs of every voyage the flagship knows into their
 * archives; the number of files kept. Throws when the ship cannot be read.
 */
export async function collectShipLogs(
  home: string,
  t: Transport,
  ship: string,
  signal?: AbortSignal,
): Promise<number> {
  const list = await run(t, ["sh", "-c", LIST_ALL], { signal });
  if (list.code !== 0) {
    throw new Error(list.stderr.trim() || `exit ${list.code}`);
  }
  let kept = 0;
  for (const line of list.stdout.split("\n")) {
    const [voyage, logs, file, ...rest] = line.split("/");
    if (
      logs !== "logs" || rest.length || !isVoyageId(voyage) ||
      !LOG_FILE.test(file ?? "")
    ) continue;
    // Only voyages this flagship sails (and has not purged).
    const known = await Deno.stat(paths.voyage(home, voyage)).then(
      (s) => s.isDirectory,
      () => false,
    );
    if (!known) continue;
    signal?.throwIfAborted();
    const bytes = await download(t, `${remotePaths.voyages}/${line}`);
    const dir = archiveDir(home, voyage, ship);
    await Deno.mkdir(dir, { recursive: true });
    const tmp = `${dir}/.${file}.${crypto.randomUUID().slice(0, 8)}`;
    await Deno.writeFile(tmp, bytes, { mode: 0o600 });
    await Deno.rename(tmp, `${dir}/${file}`);
    kept++;
  }
  return kept;
}

/** The longest a ship's logs are fetched for before it is destroyed anyway. */
const KEEP_LOGS_MS = 120_000;

/** Before a ship goes: its voyage logs kept here, said on `onProgress`. */
export async function keepShipLogs(
  home: string,
  t: Transport,
  ship: string,
  onProgress: (message: string, subject?: string) => void,
): Promise<void> {
  try {
    const n = await collectShipLogs(
      home,
      t,
      ship,
      AbortSignal.timeout(KEEP_LOGS_MS),
    );
    if (n) onProgress(`kept ${n} voyage log(s) on the flagship`, ship);
  } catch (e) {
    onProgress(
      `its voyage logs could not be kept: ${(e as Error).message}`,
      ship,
    );
  }
}

/** The logs kept for a gone ship, or null when none were. */
export async function archivedLogs(
  home: string,
  voyage: string,
  ship: string,
): Promise<LogSource | null> {
  const dir = archiveDir(home, voyage, ship);
  if (!(await Deno.stat(dir).then((s) => s.isDirectory, () => false))) {
    return null;
  }
  return {
    ship,
    list: async () => {
      const out: { name: string; size: number }[] = [];
      for await (const e of Deno.readDir(dir)) {
        if (!e.isFile || !LOG_FILE.test(e.name)) continue;
        out.push({
          name: e.name,
          size: (await Deno.stat(`${dir}/${e.name}`)).size,
        });
      }
      return out;
    },
    read: async (file, offset) =>
      (await Deno.readFile(`${dir}/${file}`)).subarray(offset),
  };
}
