/**
 * A ship: one checkout, its inbox and its agent. For voyages the flagship
 * keeps one `captain.session` open per ship (one `_rpc` process, started
 * once, not per task) and sends requests down it one at a time
 * (lib/voyage/captain_protocol.ts has them all):
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
 * it (lib/voyage/ship_hold.ts) before the agent starts, the agent runs in a
 * tmux window (or its own session) that outlives the session, and the
 * outcome is recorded when it ends. Closing the session's input ends the
 * session, not the run; the next session (one at a time per voyage) finds
 * the run again: `task` for the same run waits for it or returns what it
 * made, and nothing else runs in the checkout until the flagship releases
 * it.
 */
import { Settings } from "../lib/settings.ts";
import { OhcError, toErrorInfo, UsageError } from "../lib/errors.ts";
import { fromErrorInfo } from "../lib/errors.ts";
import { base64ToBytes, bytesToBase64 } from "../lib/inbox/types.ts";
import { readLines } from "../lib/lines.ts";
import { implement } from "../lib/rpc/ops.ts";
import type { RpcHandlers } from "../lib/rpc/server.ts";
import { writeFileAtomic } from "../lib/state/atomic.ts";
import type { Identity } from "../lib/state/identity.ts";
import { paths } from "../lib/state/paths.ts";
import {
  type BaseArgs,
  type HoldResult,
  INLINE_BUNDLE_MAX,
  type RunTaskArgs,
  type RunTaskResult,
  type SessionRequest,
  shipCheckout,
  shipVoyageDir,
  type SyncResult,
  type TaskKey,
} from "../lib/voyage/captain_protocol.ts";
import type { Held } from "../lib/voyage/ship_hold.ts";
import type { CheckArgs } from "../lib/voyage/captain_protocol.ts";
import type { Run } from "../lib/voyage/tmux.ts";
import { checkVoyageId } from "../lib/voyage/voyage_id.ts";
export type {
  BaseArgs,
  CheckArgs,
  RunTaskArgs,
  RunTaskResult,
  SessionRequest,
  SyncResult,
} from "../lib/voyage/captain_protocol.ts";
export {
  INLINE_BUNDLE_MAX,
  shipCheckout,
  shipVoyageDir,
} from "../lib/voyage/captain_protocol.ts";

export function captainHandlers(self: Identity): RpcHandlers {
  return implement("call", {
    "captain.session": async (_a, { args, secrets, emit, input, signal }) => {
      const voyage = checkVoyageId(args.voyage_id, "captain.session");
      // Loaded once per session, not once per task.
      const mods = await loadModules();
      const vdir = `${paths.home()}/${shipVoyageDir(voyage)}`;
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
      const lock = await mods.held.lockCaptain(vdir);
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
              ? await holding(mods, vdir)
              : req.op === "check"
              ? {
                program: mods.agents.requireAgentProgram(
                  (a as CheckArgs).agent,
                  { ship: self.name, path: agentPath(paths.home()) },
                ) ?? null,
              }
              : req.op === "release"
              ? { released: await release(mods, vdir, a as TaskKey) }
              : req.op === "sync"
              ? await syncFree(mods, vdir, a as BaseArgs)
              : req.op === "task"
              ? await task(
                mods,
                self,
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
    },
  });
}

/** The PATH an agent gets: the installed program first, then the captain's. */
function agentPath(home: string): string {
  return `${home}/.ohcommodore/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`;
}

async function loadModules() {
  const [
    checkout,
    commit,
    bundle,
    agents,
    prompt,
    tmux,
    rules,
    agentUser,
    agentEnv,
    held,
  ] = await Promise
    .all([
      import("../lib/git/checkout.ts"),
      import("../lib/git/commit.ts"),
      import("../lib/git/bundle.ts"),
      import("../lib/voyage/agents.ts"),
      import("../lib/voyage/prompt.ts"),
      import("../lib/voyage/tmux.ts"),
      import("../lib/voyage/plan/plan_rules.ts"),
      import("../lib/voyage/agent_user.ts"),
      import("../lib/voyage/agent_env.ts"),
      import("../lib/voyage/ship_hold.ts"),
    ]);
  return {
    git: { ...checkout, ...commit, ...bundle },
    agents,
    prompt,
    tmux,
    rules,
    agentUser,
    agentEnv,
    held,
  };
}
type Modules = Awaited<ReturnType<typeof loadModules>>;

/** Brings the checkout to the tip the flagship asked for. */
async function sync(m: Modules, a: BaseArgs): Promise<SyncResult> {
  const home = paths.home();
  const vdir = `${home}/${shipVoyageDir(a.voyage_id)}`;
  let source: string | undefined;
  if (typeof a.bundle_data === "string") {
    await Deno.mkdir(vdir, { recursive: true });
    source = `${vdir}/base.bundle`;
    await Deno.writeFile(source, base64ToBytes(a.bundle_data), { mode: 0o600 });
  } else if (typeof a.bundle_file === "string") {
    if (a.bundle_file.startsWith("/") || a.bundle_file.includes("..")) {
      throw new UsageError(
        "captain.session: bundle_file must be home-relative",
      );
    }
    source = `${home}/${a.bundle_file}`;
  }
  try {
    const base = await m.git.prepareCheckout({
      bare: source,
      branch: a.branch,
      dir: `${home}/${shipCheckout(a.voyage_id)}`,
      tip: source ? undefined : a.tip,
    });
    return { base };
  } catch (e) {
    if (a.thin && !(e instanceof OhcError && e.code === "need_base")) {
      throw new OhcError(
        "need_base",
        `the thin bundle does not apply here: ${(e as Error).message}`,
        "send a full bundle",
      );
    }
    throw e;
  }
}

/** `hold`: the task run the checkout holds, if any. */
async function holding(m: Modules, vdir: string): Promise<HoldResult> {
  const h = await m.held.readHeld(vdir);
  return {
    held: h ? { task: h.task, attempt: h.attempt, state: h.state } : null,
  };
}

/**
 * `release`: the flagship is done with this run. A running one is ended;
 * the record goes, and the checkout is free (the next sync resets it).
 * False when the checkout holds another run (or none).
 */
async function release(m: Modules, vdir: string, k: TaskKey): Promise<boolean> {
  const h = await m.held.readHeld(vdir);
  if (!m.held.sameRun(h, k)) return false;
  if (h!.state === "running") {
    const run = await m.tmux.readRun(h!.run_dir);
    if (run) await m.tmux.killRun(run);
  }
  await m.held.clearHeld(vdir);
  await Deno.remove(h!.run_dir, { recursive: true }).catch(() => {});
  if (h!.result?.bundle) {
    await Deno.remove(`${paths.home()}/${h!.result.bundle}`).catch(() => {});
  }
  return true;
}

function busy(h: Held): OhcError {
  return new OhcError(
    "busy",
    `the checkout holds task ${h.task} (attempt ${h.attempt}, ${h.state})`,
    "release it first",
  );
}

/** `sync`: only a checkout that holds no task run is touched. */
async function syncFree(
  m: Modules,
  vdir: string,
  a: BaseArgs,
): Promise<SyncResult> {
  if (a.release) await release(m, vdir, a.release);
  const h = await m.held.readHeld(vdir);
  if (h) throw busy(h);
  return await sync(m, a);
}

/**
 * `task`: runs the task, or finds the run of it the checkout holds (a
 * session cut short, a flagship that restarted): waits for it if it still
 * runs, returns its recorded outcome if it ended. Never a second run in the
 * checkout while it holds one.
 */
async function task(
  m: Modules,
  self: Identity,
  vdir: string,
  a: RunTaskArgs,
  secrets: Record<string, string>,
  progress: (m: string) => void,
  stop: AbortSignal,
): Promise<RunTaskResult> {
  // The plan's rules (plan_rules.ts), as `voyage check` applied them.
  const problems = m.rules.taskFieldProblems(a.task ?? {});
  if (!Number.isInteger(a.attempt) || a.attempt < 1) {
    problems.push(`"attempt" must be a whole number >= 1`);
  }
  if (problems.length) {
    throw new UsageError(`captain.session: bad task: ${problems.join("; ")}`);
  }
  const key: TaskKey = { task: a.task.id, attempt: a.attempt };
  if (a.release && !m.held.sameRun(a.release, key)) {
    await release(m, vdir, a.release);
  }
  let h = await m.held.readHeld(vdir);
  if (h && !m.held.sameRun(h, key)) throw busy(h);
  let run: Run | null = null;
  if (h?.state === "running") {
    progress("the task is running already: waiting for it");
    run = await m.tmux.readRun(h.run_dir) ??
      (await started(h) ? await m.tmux.readRun(h.run_dir) : null);
  }
  if (!h || (h.state === "running" && !run)) {
    // Not started yet (or the captain died before the agent started).
    ({ h, run } = await startTask(m, self, vdir, a, secrets, progress));
  }
  if (h.state === "finished") return await outcome(h);
  progress(`running ${a.agent} agent`);
  const beat = setInterval(() => progress("working"), 2_000);
  let code: number;
  try {
    const r = await m.tmux.waitRun(run!, stop);
    if (r.code === undefined) {
      // The session ended: the run goes on; the next session finds it.
      throw new OhcError("unreachable", "the session ended");
    }
    code = r.code;
  } finally {
    clearInterval(beat);
  }
  const done = await finishTask(m, h, a, code, progress);
  await m.held.writeHeld(vdir, done);
  return await outcome(done);
}

/**
 * Whether the wrapper of a held run started: it writes its pid first. One
 * handed to tmux just before the captain died gets a moment to.
 */
async function started(h: Held): Promise<boolean> {
  const has = (f: string) =>
    Deno.stat(`${h.run_dir}/${f}`).then(() => true, () => false);
  if (!(await has("run.sh"))) return false;
  for (let i = 0; i < 40; i++) {
    if (await has("pid")) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

/**
 * The recorded outcome: the result (a small bundle read back in to ride in
 * the reply), or its error thrown again.
 */
async function outcome(h: Held): Promise<RunTaskResult> {
  if (h.error) throw fromErrorInfo(h.error);
  const r = h.result!;
  if (!r.bundle) return r;
  const bytes = await Deno.readFile(`${paths.home()}/${r.bundle}`);
  return bytes.length > INLINE_BUNDLE_MAX
    ? r
    : { ...r, bundle_data: bytesToBase64(bytes) };
}

/**
 * Brings the checkout to the tip, records the run (before anything runs),
 * and starts the agent in its window.
 */
async function startTask(
  m: Modules,
  self: Identity,
  vdir: string,
  a: RunTaskArgs,
  secrets: Record<string, string>,
  progress: (m: string) => void,
): Promise<{ h: Held; run: Run }> {
  const { agentCommand } = m.agents;
  const { buildPrompt } = m.prompt;
  const home = paths.home();
  const checkout = `${home}/${shipCheckout(a.voyage_id)}`;
  const id = a.task.id;
  const slug = m.rules.taskSlug(id);
  await Deno.mkdir(`${vdir}/logs`, { recursive: true });
  await Deno.mkdir(`${vdir}/out`, { recursive: true });

  progress("preparing checkout");
  const baseSha = (await sync(m, a)).base;
  // A root captain runs claude as an unprivileged user (see agent_user.ts),
  // in the checkout's real path outside this HOME.
  const asAgent = await m.agentUser.prepareAgentRun(a.agent, {
    checkout,
    home,
  });

  const promptFile = `${vdir}/task-${slug}.prompt.md`;
  await Deno.writeTextFile(
    promptFile,
    buildPrompt({
      objective: a.objective,
      task: {
        id,
        subject: a.task.subject,
        description: a.task.description,
        acceptance: a.task.acceptance ?? undefined,
      },
      voyageId: a.voyage_id,
      ship: self.name,
      repoDir: asAgent.checkout,
    }),
  );
  // The agent's allow-listed variables (credentials, endpoints, models),
  // in a 0600 file the captain reads into the agent's environment only.
  let envFile: string | undefined;
  const agentVars = m.agentEnv.onlyAgentEnv(secrets);
  if (Object.keys(agentVars).length > 0) {
    envFile = `${paths.secrets(home)}/voyage-${a.voyage_id}.agent.json`;
    await writeFileAtomic(envFile, JSON.stringify(agentVars));
  }
  const inv = agentCommand(a.agent, {
    voyageId: a.voyage_id,
    ship: self.name,
    task: {
      id,
      subject: a.task.subject,
      description: a.task.description,
      command: a.task.command ?? undefined,
    },
    promptFile,
    checkout: asAgent.checkout,
    agentCommand: a.agent_command ?? undefined,
    model: a.model ?? undefined,
    env: {
      HOME: home,
      PATH: agentPath(home),
      LANG: Deno.env.get("LANG") ?? "C.UTF-8",
      ...asAgent.env,
    },
    envFile,
    runAsUser: asAgent.runAsUser,
    allowRoot: (await Settings.load(home)).get("OHCOMMODORE_CLAUDE_ALLOW_ROOT"),
  });

  const h: Held = {
    task: id,
    attempt: a.attempt,
    state: "running",
    started_at: new Date().toISOString(),
    base: baseSha,
    run_dir: `${vdir}/runs/${slug}-${a.attempt}`,
    log: `${vdir}/logs/task-${slug}.log`,
  };
  // A run dir left by a start that never got going is not a run.
  await Deno.remove(h.run_dir, { recursive: true }).catch(() => {});
  await m.held.writeHeld(vdir, h); // before anything runs
  const run = await m.tmux.startRun({
    session: "voyage",
    window: `task-${slug}`,
    argv: inv.argv,
    env: inv.env,
    cwd: inv.cwd,
    stdinFile: inv.stdinFile,
    logFile: h.log,
    socket: paths.tmuxSocket(home),
    dir: h.run_dir,
  });
  return { h, run };
}

/**
 * The agent ended with `code`: its outcome, its work committed (stamped
 * with voyage, task and attempt) and bundled. Safe to do twice.
 */
async function finishTask(
  m: Modules,
  h: Held,
  a: RunTaskArgs,
  code: number,
  progress: (m: string) => void,
): Promise<Held> {
  const home = paths.home();
  const id = a.task.id;
  // Claude and Codex exit 0 even when they gave up, and 1 after an API
  // error; their stream says which, and what the run cost.
  const parsed = m.agents.parseAgentOutput(
    a.agent,
    await Deno.readTextFile(h.log).catch(() => ""),
  );
  const stats = parsed ? m.agents.agentRunStats(parsed) : null;
  const failed = (message: string): Held => {
    const e = new OhcError("agent_failed", message);
    if (stats) e.data = { agent: stats };
    return { ...h, state: "finished", error: toErrorInfo(e) };
  };
  const why = parsed?.reportedFailure ?? parsed?.error;
  if (parsed && !parsed.ok && (code === 0 || why)) {
    return failed(
      `the ${a.agent} agent did not finish task ${id}: ${why ?? "no result"}`,
    );
  }
  if (code !== 0) {
    return failed(`the ${a.agent} agent exited with ${code} on task ${id}`);
  }
  progress("committing");
  const checkout = `${home}/${shipCheckout(a.voyage_id)}`;
  const { commit } = await m.git.commitTask({
    checkout,
    taskId: id,
    subject: a.task.subject,
    stamp: { voyage: a.voyage_id, task: id, attempt: a.attempt },
  });
  const result = (r: RunTaskResult): Held => ({
    ...h,
    state: "finished",
    result: r,
  });
  if (!commit) {
    return result({ commit: null, base: h.base, bundle: null, agent: stats });
  }
  const bundle = `${shipVoyageDir(a.voyage_id)}/out/task-${
    m.rules.taskSlug(id)
  }-${a.attempt}.bundle`;
  await m.git.bundleCommit({
    repo: checkout,
    commit,
    file: `${home}/${bundle}`,
    exclude: [h.base],
    ref: "HEAD", // commitTask's commit is HEAD
  });
  return result({ commit, base: h.base, bundle, agent: stats });
}
