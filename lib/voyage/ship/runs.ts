/**
 * What a ship's checkout holds for a voyage, kept on the ship:
 * `~/.ohcommodore/voyages/<id>/held.json` names the task run (task and
 * attempt) whose work is in the checkout, whether it still runs, and once
 * it ended its outcome. It is written (atomically, fsynced) before the
 * agent starts and removed only when the flagship releases the run, so a
 * captain that lost its session, or a flagship that restarted, finds the
 * run again instead of starting another in the same checkout.
 *
 * One captain works on a voyage's checkout at a time: `lockCaptain` is an
 * exclusive lock a session holds while it lives. A session cut short (its
 * flagship died) ends by itself on the end of its input; the next one waits
 * here for it.
 */
import type { ErrorInfo } from "../../errors.ts";
import { readJsonFile, writeJsonAtomic } from "../../state/atomic.ts";
import type { RunTaskResult, TaskKey } from "../protocol.ts";

export interface Held extends TaskKey {
  state: "running" | "finished";
  started_at: string;
  /** The commit the checkout was at when the task started. */
  base: string;
  /** The agent's run dir (tmux.ts startRun) and log. */
  run_dir: string;
  log: string;
  /** Once finished: what it made, or why it failed. */
  result?: RunTaskResult;
  error?: ErrorInfo;
}

const file = (vdir: string) => `${vdir}/held.json`;

export function readHeld(vdir: string): Promise<Held | null> {
  return readJsonFile(file(vdir), (v) => v as Held);
}

export async function writeHeld(vdir: string, h: Held): Promise<void> {
  await writeJsonAtomic(file(vdir), h);
}

export async function clearHeld(vdir: string): Promise<void> {
  await Deno.remove(file(vdir)).catch((e) => {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  });
}

export const sameRun = (h: TaskKey | null, k: TaskKey) =>
  !!h && h.task === k.task && h.attempt === k.attempt;

/** The lock one captain session holds on a voyage's checkout. */
export async function lockCaptain(vdir: string): Promise<Deno.FsFile> {
  await Deno.mkdir(vdir, { recursive: true });
  const f = await Deno.open(`${vdir}/captain.lock`, {
    create: true,
    write: true,
    mode: 0o600,
  });
  try {
    await f.lock(true);
  } catch (e) {
    f.close();
    throw e;
  }
  return f;
}
