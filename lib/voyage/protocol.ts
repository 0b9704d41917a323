/**
 * What the flagship's driver and a ship's captain say to each other on a
 * `captain.session` (ship/session.ts answers, session.ts asks): one JSON
 * line per request, each answered by one `reply` event with the same `n`.
 *
 *   hold     what the checkout holds: a task run (running or finished, with
 *            its outcome) or nothing. The flagship asks this first on every
 *            session, so after a restart it re-learns each ship's work
 *            before it hands out anything.
 *   check    pre-flight before the first task: the agent's program is there
 *   sync     bring the checkout to a voyage tip (refused while it holds a
 *            task run)
 *   task     run a task: the same run again (same task and attempt) waits
 *            for it or returns its recorded outcome, never runs it twice; a
 *            different one while the checkout holds another is refused
 *            (`busy`)
 *   release  the flagship is done with a task run (landed, failed, given
 *            up, or given to another ship): a running one is ended, and the
 *            checkout is free for the next
 *
 * `sync` and `task` may carry `release` for the run the flagship just
 * recorded, saving a round trip. A ship records what it holds on disk
 * before anything runs (ship_hold.ts), and a run goes on when the session
 * that started it is cut.
 */

import type { AgentKind } from "./ship/agents/kinds.ts";
import { remotePaths } from "../state/paths.ts";

/** What a ship reports of an agent's run (ship/agents/outcome.ts `agentRunStats`). */
export interface AgentRunStats {
  cost_usd: number | null;
  usage: Record<string, unknown> | null;
  model: string | null;
  turns: number | null;
  duration_ms: number | null;
  session_id: string | null;
  api_retries: number | null;
}

/** One run of one task: a task is tried again under a new attempt number. */
export interface TaskKey {
  task: string;
  attempt: number;
}

/** Which voyage tip to check out, and how to get it. */
export interface BaseArgs {
  voyage_id: string;
  branch: string;
  /**
   * The voyage tip the flagship wants checked out, when it sends no bundle
   * (with a bundle, the ship takes the branch tip the bundle holds).
   */
  tip?: string;
  /** A bundle holding it, base64 (small bundles ride in the request). */
  bundle_data?: string;
  /** Or where it was uploaded to, home-relative (large ones). */
  bundle_file?: string;
  /** The bundle leaves out what the flagship believes this ship has. */
  thin?: boolean;
  /** First release this run (the flagship recorded its outcome). */
  release?: TaskKey;
}

export interface RunTaskArgs extends BaseArgs {
  objective: string;
  agent: AgentKind;
  agent_command: string | null;
  /** claude/codex `--model` (`sail --model`). */
  model?: string | null;
  /** Which try of the task this is (the queue's attempt count). */
  attempt: number;
  task: {
    id: string;
    subject: string;
    description: string;
    acceptance: string | null;
    command: string | null;
  };
}

export interface SyncResult {
  /** The commit the checkout is at now. */
  base: string;
}

export interface RunTaskResult {
  /** The task's commit (stamped with voyage, task and attempt), or null when it changed nothing. */
  commit: string | null;
  base: string;
  /** Home-relative path of a bundle holding the commit (when there is one). */
  bundle: string | null;
  /** The same bundle, base64, when it is small enough to ride in the reply. */
  bundle_data?: string;
  /** What claude/codex reported of the run (cost, usage); a failed task's error carries it as `data.agent`. */
  agent?: AgentRunStats | null;
}

/** `check`: the ship's pre-flight before its first task (the agent's program is there). */
export interface CheckArgs {
  voyage_id: string;
  agent: RunTaskArgs["agent"];
}

/** `hold`'s answer. */
export interface HoldResult {
  held: (TaskKey & { state: "running" | "finished" }) | null;
}

/** Bundles up to this size travel inside the JSON lines, not as files. */
export const INLINE_BUNDLE_MAX = 4 << 20;

/** Where a voyage's files live on a ship (home-relative). */
export const shipVoyageDir = (id: string) => `${remotePaths.voyages}/${id}`;
export const shipCheckout = (id: string) => `voyage-${id}`;

export interface SessionRequest {
  n: number;
  op: "hold" | "check" | "sync" | "task" | "release";
  args:
    | { voyage_id: string }
    | CheckArgs
    | BaseArgs
    | RunTaskArgs
    | (TaskKey & { voyage_id: string });
}
