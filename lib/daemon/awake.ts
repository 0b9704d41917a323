/**
 * On a sprite, the daemon holds its sprite awake (a Tasks API hold, see
 * providers/sprites_runtime.ts) while it has work in flight, and lets it
 * pause as soon as it has none, so an idle fleet costs nothing:
 *
 * - any machine: while its scheduler runs a message;
 * - a ship: while an agent runs one of its voyage tasks (even when the
 *   flagship's session that started it was cut);
 * - the flagship also: while someone waits on a message (`inbox send
 *   --wait`), while entries wait in its outbox for a ship, and while a
 *   voyage sails. Its links keep the ships it talks to awake (their
 *   heartbeats are traffic), and a ship holds itself while it runs a task
 *   or a message.
 *
 * A ship does not hold for results waiting to go up: the flagship's next
 * link, whenever it wakes, collects them.
 */
import type { Database } from "../db/database.ts";
import type { InboxStore } from "../inbox/store.ts";
import type { Identity } from "../state/identity.ts";
import { paths } from "../state/paths.ts";

export interface Awake {
  /** Something may have started: look now rather than at the next tick. */
  poke(): void;
  stop(): Promise<void>;
}

/**
 * Whether an agent runs a voyage task here: a checkout holds a run
 * (voyage/ship/runs.ts) whose wrapper is alive and has not written its
 * exit code (tmux.ts). A run outlives the flagship's session, so this,
 * not the session, keeps the ship awake.
 */
async function runningTask(home: string): Promise<boolean> {
  const { readHeld } = await import("../voyage/ship/runs.ts");
  const root = `${paths.dir(home)}/voyages`;
  try {
    for await (const e of Deno.readDir(root)) {
      if (!e.isDirectory) continue;
      const h = await readHeld(`${root}/${e.name}`).catch(() => null);
      if (h?.state !== "running") continue;
      // Its wrapper writes `exit` when the agent is done (then lingers a
      // while, for a person attached to the window).
      const exited = await Deno.stat(`${h.run_dir}/exit`).then(
        () => true,
        () => false,
      );
      if (exited) continue;
      const pid = Number(
        (await Deno.readTextFile(`${h.run_dir}/pid`).catch(() => "")).trim(),
      );
      if (
        pid > 0 && await Deno.stat(`/proc/${pid}`).then(() => true, () => false)
      ) {
        return true;
      }
    }
  } catch { /* no voyages here */ }
  return false;
}

export async function keepAwake(o: {
  home: string;
  self: Identity;
  db: Database;
  store: InboxStore;
  running: () => number;
  waiting: () => number;
  log: (m: string) => void;
}): Promise<Awake | null> {
  if (o.self.provider.kind !== "sprites") return null;
  const { onSprite, SpriteHold } = await import(
    "../providers/sprites_runtime.ts"
  );
  if (!(await onSprite())) return null;
  const hold = new SpriteHold("ohcommodore-daemon", { log: o.log });
  const flagship = o.self.role === "commodore";
  const queue = flagship
    ? new (await import("../voyage/flagship/queue.ts")).VoyageQueue(o.db)
    : null;
  const busy = async (): Promise<string | null> => {
    if (o.running() > 0) return "running a message";
    if (!flagship) {
      return (await runningTask(o.home)) ? "running a voyage task" : null;
    }
    if (o.waiting() > 0) return "waiting on a message";
    if ((await o.store.outbox.countQueued()) > 0) return "delivering messages";
    if ((await queue!.list()).some((v) => v.state === "running")) {
      return "sailing a voyage";
    }
    return null;
  };
  let checking: Promise<void> | null = null;
  let again = false;
  const check = (): Promise<void> => {
    if (checking) {
      again = true;
      return checking;
    }
    checking = (async () => {
      do {
        again = false;
        const why = await busy().catch(() => null);
        if ((why !== null) !== hold.held) {
          o.log(
            why
              ? `holding the sprite awake: ${why}`
              : "letting the sprite pause",
          );
        }
        await hold.set(why !== null);
      } while (again);
    })().finally(() => checking = null);
    return checking;
  };
  const timer = setInterval(() => void check(), 2_000);
  await check();
  return {
    poke: () => void check(),
    async stop() {
      clearInterval(timer);
      await checking;
      await hold.set(false);
    },
  };
}
