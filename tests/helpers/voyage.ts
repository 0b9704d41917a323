/**
 * Driving voyages through the CLI in e2e tests: sail, wait, read tasks.
 */
import assert from "node:assert/strict";
import { ohc, ohcOk } from "./cli.ts";

export interface VoyageStatusJson {
  voyage: { id: string; state: string; verify_code: number | null };
  /** Why it failed or was sunk, when it did. */
  reason: string | null;
  counts: Record<string, number>;
  ships: { ship: string; state: string }[];
}

export interface TaskRow {
  id: string;
  status: string;
  ship: string | null;
  attempts: number;
  conflict: string[] | null;
  side_branch: string | null;
  error: string | null;
  commit_sha: string | null;
  /** Each ended attempt, with what the agent reported (cost, usage). */
  runs: {
    attempt: number;
    ship: string | null;
    outcome: string;
    error: string | null;
    cost_usd: number | null;
    usage: Record<string, unknown> | null;
    model: string | null;
    turns: number | null;
    api_retries: number | null;
  }[];
}

/** Runs the CLI for a fleet (any provider); throws unless it exits 0. */
export type CliOk = (args: string[]) => Promise<{ stdout: string }>;

/** The local fleet under `home`, or any fleet's own runner. */
const cli = (fleet: string | CliOk): CliOk =>
  typeof fleet === "string" ? (args) => ohcOk(fleet, args) : fleet;

/** `voyage sail ARGS --json`, which must succeed; the voyage id. */
export async function sailOk(
  fleet: string | CliOk,
  args: string[],
  env?: Record<string, string>,
): Promise<string> {
  if (typeof fleet !== "string") {
    return JSON.parse(
      (await fleet(["voyage", "sail", ...args, "--json"])).stdout,
    ).id;
  }
  const r = await ohc(fleet, ["voyage", "sail", ...args, "--json"], { env });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout).id;
}

/** Polls `voyage status` until the voyage is verified, failed or sunk. */
export async function waitVoyage(
  fleet: string | CliOk,
  id: string,
  timeoutMs = 120_000,
): Promise<VoyageStatusJson> {
  const ok = cli(fleet);
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    const s: VoyageStatusJson = JSON.parse(
      (await ok(["voyage", "status", id, "--json"])).stdout,
    );
    if (!["planning", "running", "complete"].includes(s.voyage.state)) return s;
    await new Promise((r) => setTimeout(r, 250));
  }
  throw new Error(`voyage ${id} did not finish`);
}

export async function voyageTasks(
  fleet: string | CliOk,
  id: string,
): Promise<TaskRow[]> {
  return JSON.parse(
    (await cli(fleet)(["voyage", "tasks", id, "--json"])).stdout,
  );
}

/** The demo plan, sailed with the shell agent on `ships` ships. */
export const DEMO_SAIL = (root: string, ships: number) => [
  `${root}/examples/plans/demo`,
  "--agent",
  "shell",
  "--ships",
  String(ships),
];

/** The flagship's folder (its HOME) in the local fleet under `home`. */
export async function flagshipHome(home: string): Promise<string> {
  const cfg = JSON.parse(
    await Deno.readTextFile(`${home}/.ohcommodore/config.json`),
  );
  return `${home}/.ohcommodore/local/${cfg.flagship.name}`;
}

/**
 * `voyage status ID --wait --json` (bounded): its exit code (0 verified,
 * 1 failed or sunk) and the status it ended on.
 */
export async function statusWait(
  home: string,
  id: string,
  timeoutMs: number,
): Promise<{
  code: number;
  stderr: string;
  status: VoyageStatusJson;
}> {
  const r = await ohc(home, ["voyage", "status", id, "--wait", "--json"], {
    timeoutMs,
  });
  return {
    code: r.code,
    stderr: r.stderr,
    status: r.stdout ? JSON.parse(r.stdout) : null,
  };
}
