/**
 * A ship's end of a voyage: the flagship keeps one `captain.session` open
 * per ship (one `_rpc` process, started
 * once, not per task) and sends requests down it one at a time
 * (protocol.ts has them all):
 *
 *   {"n": 1, "op": "hold"}                      what the checkout holds
 *   {"n": 2, "op": "check", "args": CheckArgs}   pre-flight: the agent's
 *                                                program is there
 *   {"n": 3, "op": "sync", "args": BaseArgs}     bring the checkout to a tip
 *   {"n": 4, "op": "task", "args": RunTaskArgs}  the same, then run the agent
 *                                                in tmux, commit, and hand
 *                                                back a bundle of the commit
 *   {"n": 5, "op": "release", "args": TaskKey}   the flagship is done with it
 *
 * Each is answered by one `reply` event with the same `n`; `progress`
 * events with `subject` = n are the ship's heartbeats while it works. The
 * tip comes with a bundle (full, or thin: only what the flagship knows this
 * ship lacks), or with none when the flagship believes the ship has it
 * already; if the ship lacks it (or a thin bundle's prerequisites) the
 * reply is the error `need_base` and nothing ran, so the flagship resends
 * with a full bundle.
 *
 * A task's run belongs to the ship, not to the session: the captain records
 * it (runs.ts) before the agent starts, the agent runs in a
 * tmux window (or its own session) that outlives the session, and the
 * outcome is recorded when it ends. Closing the session's input ends the
 * session, not the run; the next session (one at a time per voyage) finds
 * the run again: `task` for the same run waits for it or returns what it
 * made, and nothing else runs in the checkout until the flagship releases
 * it. task_run.ts does each request's work.
 */
import { toErrorInfo, UsageError } from "../../errors.ts";
import { readLines } from "../../lines.ts";
import type { RpcContext } from "../../rpc/server.ts";
import type { Identity } from "../../state/identity.ts";
import type {
  BaseArgs,
  CheckArgs,
  RunTaskArgs,
  SessionRequest,
  TaskKey,
} from "../protocol.ts";
import { shipVoyageDir } from "../protocol.ts";
import { checkVoyageId } from "../voyage_id.ts";
import { requireAgentProgram } from "./agents/command.ts";
import { lockCaptain } from "./runs.ts";
import { agentPath, holding, release, syncFree, task } from "./task_run.ts";

export async function serveSession(
  self: Identity,
  home: string,
  { args, secrets, emit, input, signal }: RpcContext,
): Promise<null> {
  const voyage = checkVoyageId(args.voyage_id, "captain.session");
  const vdir = `${home}/${shipVoyageDir(voyage)}`;
  const closed = new AbortController();
  const stop = AbortSignal.any([signal, closed.signal]);
  const requests: SessionRequest[] = [];
  let wake: () => void = () => {};
  let ended = false;
  void (async () => {
    try {
      for await (const line of readLines(input)) {
        if (!line.trim()) continue;
        requests.push(JSON.parse(line));
        wake();
      }
    } catch {
      // A broken input (or a line that is not JSON: only the flagship
      // writes here) ends the session like a closed one.
    }
    ended = true;
    closed.abort();
    wake();
  })();
  // One session per voyage at a time; one cut short ends by itself.
  const lock = await lockCaptain(vdir);
  try {
    while (true) {
      const req = requests.shift();
      if (!req) {
        if (ended) return null;
        await new Promise<void>((r) => wake = r);
        wake = () => {};
        continue;
      }
      const progress = (m: string) =>
        emit({ type: "progress", message: m, subject: String(req.n) });
      try {
        const a = req.args;
        if (a?.voyage_id !== voyage) {
          throw new UsageError(
            "captain.session: request for another voyage",
          );
        }
        const data = req.op === "hold"
          ? await holding(vdir)
          : req.op === "check"
          ? {
            program: requireAgentProgram(
              (a as CheckArgs).agent,
              { ship: self.name, path: agentPath(home) },
            ) ?? null,
          }
          : req.op === "release"
          ? { released: await release(home, vdir, a as TaskKey) }
          : req.op === "sync"
          ? await syncFree(home, vdir, a as BaseArgs)
          : req.op === "task"
          ? await task(
            self,
            home,
            vdir,
            a as RunTaskArgs,
            secrets,
            progress,
            stop,
          )
          : (() => {
            throw new UsageError(
              `captain.session: unknown request ${req.op}`,
            );
          })();
        emit({ type: "reply", n: req.n, data });
      } catch (e) {
        emit({ type: "reply", n: req.n, error: toErrorInfo(e) });
      }
    }
  } finally {
    lock.close();
  }
}
