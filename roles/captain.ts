/**
 * A ship: one checkout, its inbox and its agent. For voyages the flagship
 * keeps one `captain.session` open per ship (one `_rpc` process, started
 * once, not per task) and sends requests down it one at a time:
 *
 *   {"n": 1, "op": "sync", "args": BaseArgs}     bring the checkout to a tip
 *   {"n": 2, "op": "task", "args": RunTaskArgs}  the same, then run the agent
 *                                                in tmux, commit, and hand
 *                                                back a bundle of the commit
 *
 * Each is answered by one `reply` event with the same `n`; `progress`
 * events with `subject` = n are the ship's heartbeats while it works. The
 * tip comes with a bundle (full, or thin: only what the flagship knows this
 * ship lacks), or with none when the flagship believes the ship has it
 * already; if the ship lacks it (or a thin bundle's prerequisites) the
 * reply is the error `need_base` and nothing ran, so the flagship resends
 * with a full bundle. Closing the session's input ends it; a task still
 * running then is aborted, as when the flagship goes away mid-call.
 */
import { OhcError, toErrorInfo, UsageError } from "../lib/errors.ts";
import { base64ToBytes, bytesToBase64 } from "../lib/inbox/types.ts";
import { readLines } from "../lib/lines.ts";
import type { RpcHandlers } from "../lib/rpc/server.ts";
import { writeFileAtomic } from "../lib/state/atomic.ts";
import type { Identity } from "../lib/state/identity.ts";
import { paths } from "../lib/state/paths.ts";
import type { AgentRunStats } from "../lib/voyage/queue.ts";

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
}

export interface RunTaskArgs extends BaseArgs {
  objective: string;
  agent: "claude" | "codex" | "shell" | "custom";
  agent_command: string | null;
  /** claude/codex `--model` (`sail --model`). */
  model?: string | null;
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
  /** The task's commit, or null when it changed nothing. */
  commit: string | null;
  base: string;
  /** Home-relative path of a bundle holding the commit (when there is one). */
  bundle: string | null;
  /** The same bundle, base64, when it is small enough to ride in the reply. */
  bundle_data?: string;
  /** What claude/codex reported of the run (cost, usage); a failed task's error carries it as `data.agent`. */
  agent?: AgentRunStats | null;
}

/** Bundles up to this size travel inside the JSON lines, not as files. */
export const INLINE_BUNDLE_MAX = 4 << 20;

/** Where a voyage's files live on a ship (home-relative). */
export const shipVoyageDir = (id: string) => `.ohcommodore/voyages/${id}`;
export const shipCheckout = (id: string) => `voyage-${id}`;

/** `check`: the ship's pre-flight before its first task (the agent's program is there). */
export interface CheckArgs {
  voyage_id: string;
  agent: RunTaskArgs["agent"];
}

export interface SessionRequest {
  n: number;
  op: "sync" | "task" | "check";
  args: BaseArgs | RunTaskArgs | CheckArgs;
}

function checkVoyageId(id: unknown): string {
  if (typeof id !== "string" || !/^[a-z0-9-]+$/.test(id)) {
    throw new UsageError("captain.session: bad voyage id");
  }
  return id;
}

export function captainHandlers(self: Identity): RpcHandlers {
  return {
    "captain.session": async ({ args, secrets, emit, input, signal }) => {
      const voyage = checkVoyageId(args.voyage_id);
      // Loaded once per session, not once per task.
      const mods = await loadModules();
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
            throw new UsageError("captain.session: request for another voyage");
          }
          const data = req.op === "check"
            ? {
              program: mods.agents.requireAgentProgram(
                (a as CheckArgs).agent,
                { ship: self.name, path: agentPath(paths.home()) },
              ) ?? null,
            }
            : req.op === "sync"
            ? await sync(mods, a as BaseArgs)
            : req.op === "task"
            ? await mods.hold.during(() =>
              runTask(mods, self, a as RunTaskArgs, secrets, progress, stop)
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
    },
  };
}

/** The PATH an agent gets: the installed program first, then the captain's. */
function agentPath(home: string): string {
  return `${home}/.ohcommodore/bin:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`;
}

async function loadModules() {
  const [git, agents, prompt, tmux, rules, agentUser, agentEnv] = await Promise
    .all([
      import("../lib/voyage/git.ts"),
      import("../lib/voyage/agents.ts"),
      import("../lib/voyage/prompt.ts"),
      import("../lib/voyage/tmux.ts"),
      import("../lib/voyage/plan_rules.ts"),
      import("../lib/voyage/agent_user.ts"),
      import("../lib/voyage/agent_env.ts"),
    ]);
  // On a sprite, a task holds it awake while it runs (nothing elsewhere).
  const hold = new (await import("../lib/providers/sprites_runtime.ts"))
    .SpriteHold(`ohcommodore-task-${Deno.pid}`);
  return { git, agents, prompt, tmux, rules, agentUser, agentEnv, hold };
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

async function runTask(
  m: Modules,
  self: Identity,
  a: RunTaskArgs,
  secrets: Record<string, string>,
  progress: (m: string) => void,
  signal: AbortSignal,
): Promise<RunTaskResult> {
  // The plan's rules (plan_rules.ts), as `voyage check` applied them.
  const problems = m.rules.taskFieldProblems(a.task ?? {});
  if (problems.length) {
    throw new UsageError(`captain.session: bad task: ${problems.join("; ")}`);
  }
  const { git } = m;
  const { agentCommand, agentRunStats, parseAgentOutput } = m.agents;
  const { buildPrompt } = m.prompt;
  const { runTask: runAgent } = m.tmux;

  const home = paths.home();
  const vdir = `${home}/${shipVoyageDir(a.voyage_id)}`;
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
    allowRoot: Deno.env.get("OHCOMMODORE_CLAUDE_ALLOW_ROOT") === "1",
  });

  const logFile = `${vdir}/logs/task-${slug}.log`;
  progress(`running ${a.agent} agent`);
  const beat = setInterval(() => progress("working"), 2_000);
  let code: number;
  try {
    ({ code } = await runAgent({
      session: "voyage",
      window: `task-${slug}`,
      argv: inv.argv,
      env: inv.env,
      cwd: inv.cwd,
      stdinFile: inv.stdinFile,
      logFile,
      socket: paths.tmuxSocket(home),
      signal,
    }));
  } finally {
    clearInterval(beat);
  }
  // Claude and Codex exit 0 even when they gave up, and 1 after an API
  // error; their stream says which, and what the run cost.
  const outcome = parseAgentOutput(
    a.agent,
    await Deno.readTextFile(logFile).catch(() => ""),
  );
  const stats = outcome ? agentRunStats(outcome) : null;
  const why = outcome?.reportedFailure ?? outcome?.error;
  if (outcome && !outcome.ok && (code === 0 || why)) {
    const e = new OhcError(
      "agent_failed",
      `the ${a.agent} agent did not finish task ${id}: ${why ?? "no result"}`,
    );
    e.data = { agent: stats };
    throw e;
  }
  if (code !== 0) {
    const e = new OhcError(
      "agent_failed",
      `the ${a.agent} agent exited with ${code} on task ${id}`,
    );
    if (stats) e.data = { agent: stats };
    throw e;
  }
  progress("committing");
  const { commit } = await git.commitTask({
    checkout,
    taskId: id,
    subject: a.task.subject,
  });
  if (!commit) {
    return { commit: null, base: baseSha, bundle: null, agent: stats };
  }
  const bundle = `${shipVoyageDir(a.voyage_id)}/out/task-${slug}.bundle`;
  await git.bundleCommit({
    repo: checkout,
    commit,
    file: `${home}/${bundle}`,
    exclude: [baseSha],
    ref: "HEAD", // commitTask's commit is HEAD
  });
  const bytes = await Deno.readFile(`${home}/${bundle}`);
  if (bytes.length > INLINE_BUNDLE_MAX) {
    return { commit, base: baseSha, bundle, agent: stats };
  }
  return {
    commit,
    base: baseSha,
    bundle,
    bundle_data: bytesToBase64(bytes),
    agent: stats,
  };
}
