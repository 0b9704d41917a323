/**
 * Driving voyages through the CLI in e2e tests: sail, wait, read tasks.
 */
import assert from "node:assert/strict";
import { ohc, ohcOk } from "./cli.ts";

export interface VoyageStatusJson {
  voyage: { id: string; state: string; verify_code: number | null };
  counts: Record<string, number>;
  ships: { ship: string }[];
}

export interface TaskRow {
  id: string;
  status: string;
  ship: string | null;
  attempts: number;
  conflict: string[] | null;
  side_branch: string | null;
  error: string | null;
}

/** `voyage sail ARGS --json`, which must succeed; the voyage id. */
export async function sailOk(
  home: string,
  args: string[],
  env?: Record<string, string>,
): Promise<string> {
  const r = await ohc(home, ["voyage", "sail", ...args, "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).id;
}

/** Polls `voyage status` until the voyage is verified, failed or sunk. */
export async function waitVoyage(
  home: string,
  id: string,
  timeoutMs = 120_000,
): Promise<VoyageStatusJson> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const s: VoyageStatusJson = JSON.parse(
      (await ohcOk(home, ["voyage", "status", id, "--json"])).stdout,
    );
    if (!["planning", "running", "complete"].includes(s.voyage.state)) return s;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`voyage ${id} did not finish`);
}

export async function voyageTasks(
  home: string,
  id: string,
): Promise<TaskRow[]> {
  return JSON.parse(
    (await ohcOk(home, ["voyage", "tasks", id, "--json"])).stdout,
  );
}
