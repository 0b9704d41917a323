/**
 * A ship's task runner: what each `captain.session` request does to the
 * voyage's checkout (protocol.ts has the requests). A task's run belongs
 * to the ship, not to the session: it is recorded (runs.ts) before the
 * agent starts, the agent runs in a tmux window (or its own session) that
 * outlives the session, and the outcome is recorded when it ends; the next
 * session finds the run again.
 */
import {
  fromErrorInfo,
  OhcError,
  toErrorInfo,
  UsageError,
} from "../../errors.ts";
import { bundleCommit } from "../../git/bundle.ts";
import { prepareCheckout } from "../../git/checkout.ts";
import { commitTask } from "../../git/commit.ts";
import { base64ToBytes, bytesToBase64 } from "../../inbox/types.ts";
import { Settings } from "../../settings.ts";
import { writeFileAtomic } from "../../state/atomic.ts";
import type { Identity } from "../../state/identity.ts";
import { paths } from "../../state/paths.ts";
import { taskFieldProblems, taskSlug } from "../plan/plan_rules.ts";
import {
  type BaseArgs,
  type HoldResult,
  INLINE_BUNDLE_MAX,
  type RunTaskArgs,
  type RunTaskResult,
  shipCheckout,
  shipVoyageDir,
  type SyncResult,
  type TaskKey,
} from "../protocol.ts";
import { onlyAgentEnv } from "./agent_env.ts";
import { prepareAgentRun } from "./agent_user.ts";
import { agentCommand } from "./agents/command.ts";
import { agentRunStats, parseAgentOutput } from "./agents/outcome.ts";
import { buildPrompt } from "./prompt.ts";
import { killRun, readRun, type Run, startRun, waitRun } from "./runner.ts";
import { clearHeld, type Held, readHeld, sameRun, writeHeld } from "./runs.ts";

/** The PATH an agent gets: the installed program first, then the captain's. */
export function agentPath(home: string): string {
  return `${paths.binDir(home)}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`;
}

/** Brings the checkout to the tip the flagship asked for. */
async function sync(home: string, a: BaseArgs): Promise<SyncResult> {
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
    const base = await prepareCheckout({
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
export async function holding(vdir: string): Promise<HoldResult> {
  const h = await readHeld(vdir);
  return {
    held: h ? { task: h.task, attempt: h.attempt, state: h.state } : null,
  };
}

/**
 * `release`: the flagship is done with this run. A running one is ended;
 * the record goes, and the checkout is free (the next sync resets it).
 * False when the checkout holds another run (or none).
 */
export async function release(
  home: string,
  vdir: string,
  k: TaskKey,
): Promise<boolean> {
  const h = await readHeld(vdir);
  if (!sameRun(h, k)) return false;
  if (h!.state === "running") {
    const run = await readRun(h!.run_dir);
    if (run) await killRun(run);
  }
  await clearHeld(vdir);
  await Deno.remove(h!.run_dir, { recursive: true }).catch(() => {});
  if (h!.result?.bundle) {
    await Deno.remove(`${home}/${h!.result.bundle}`).catch(() => {});
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
export async function syncFree(
  home: string,
  vdir: string,
  a: BaseArgs,
): Promise<SyncResult> {
  if (a.release) await release(home, vdir, a.release);
  const h = await readHeld(vdir);
  if (h) throw busy(h);
  return await sync(home, a);
}

/**
 * `task`: runs the task, or finds the run of it the checkout holds (a
 * session cut short, a flagship that restarted): waits for it if it still
 * runs, returns its recorded outcome if it ended. Never a second run in the
 * checkout while it holds one.
 */
export async function task(
  self: Identity,
  home: string,
  vdir: string,
  a: RunTaskArgs,
  secrets: Record<string, string>,
  progress: (m: string) => void,
  stop: AbortSignal,
): Promise<RunTaskResult> {
  // The plan's rules (plan_rules.ts), as `voyage check` applied them.
  const problems = taskFieldProblems(a.task ?? {});
  if (!Number.isInteger(a.attempt) || a.attempt < 1) {
    problems.push(`"attempt" must be a whole number >= 1`);
  }
  if (problems.length) {
    throw new UsageError(`captain.session: bad task: ${problems.join("; ")}`);
  }
  const key: TaskKey = { task: a.task.id, attempt: a.attempt };
  if (a.release && !sameRun(a.release, key)) {
    await release(home, vdir, a.release);
  }
  let h = await readHeld(vdir);
  if (h && !sameRun(h, key)) throw busy(h);
  let run: Run | null = null;
  if (h?.state === "running") {
    progress("the task is running already: waiting for it");
    run = await readRun(h.run_dir) ??
      (await started(h) ? await readRun(h.run_dir) : null);
  }
  if (!h || (h.state === "running" && !run)) {
    // Not started yet (or the captain died before the agent started).
    ({ h, run } = await startTask(self, home, vdir, a, secrets, progress));
  }
  if (h.state === "finished") return await outcome(home, h);
  progress(`running ${a.agent} agent`);
  const beat = setInterval(() => progress("working"), 2_000);
  let code: number;
  try {
    const r = await waitRun(run!, stop);
    if (r.code === undefined) {
      // The session ended: the run goes on; the next session finds it.
      throw new OhcError("unreachable", "the session ended");
    }
    code = r.code;
  } finally {
    clearInterval(beat);
  }
  const done = await finishTask(home, h, a, code, progress);
  await writeHeld(vdir, done);
  return await outcome(home, done);
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
async function outcome(home: string, h: Held): Promise<RunTaskResult> {
  if (h.error) throw fromErrorInfo(h.error);
  const r = h.result!;
  if (!r.bundle) return r;
  const bytes = await Deno.readFile(`${home}/${r.bundle}`);
  return bytes.length > INLINE_BUNDLE_MAX
    ? r
    : { ...r, bundle_data: bytesToBase64(bytes) };
}

/**
 * Brings the checkout to the tip, records the run (before anything runs),
 * and starts the agent in its window.
 */
async function startTask(
  self: Identity,
  home: string,
  vdir: string,
  a: RunTaskArgs,
  secrets: Record<string, string>,
  progress: (m: string) => void,
): Promise<{ h: Held; run: Run }> {
  const checkout = `${home}/${shipCheckout(a.voyage_id)}`;
  const id = a.task.id;
  const slug = taskSlug(id);
  await Deno.mkdir(`${vdir}/logs`, { recursive: true });
  await Deno.mkdir(`${vdir}/out`, { recursive: true });

  progress("preparing checkout");
  const baseSha = (await sync(home, a)).base;
  // A root captain runs claude as an unprivileged user (see agent_user.ts),
  // in the checkout's real path outside this HOME.
  const asAgent = await prepareAgentRun(a.agent, {
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
  const agentVars = onlyAgentEnv(secrets);
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
  await writeHeld(vdir, h); // before anything runs
  const run = await startRun({
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
  home: string,
  h: Held,
  a: RunTaskArgs,
  code: number,
  progress: (m: string) => void,
): Promise<Held> {
  const id = a.task.id;
  // Claude and Codex exit 0 even when they gave up, and 1 after an API
  // error; their stream says which, and what the run cost.
  const parsed = parseAgentOutput(
    a.agent,
    await Deno.readTextFile(h.log).catch(() => ""),
  );
  const stats = parsed ? agentRunStats(parsed) : null;
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
  const { commit } = await commitTask({
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
    taskSlug(id)
  }-${a.attempt}.bundle`;
  await bundleCommit({
    repo: checkout,
    commit,
    file: `${home}/${bundle}`,
    exclude: [h.base],
    ref: "HEAD", // commitTask's commit is HEAD
  });
  return result({ commit, base: h.base, bundle, agent: stats });
}
