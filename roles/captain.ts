/**
 * A ship: one checkout, its inbox and its agent. For voyages the flagship
 * calls `captain.run_task` for each task it assigns this ship: bring the
 * checkout to the voyage tip (from the bundle the flagship uploaded), run
 * the agent in tmux, commit, and hand back a bundle of the new commit. The
 * call's progress events are the ship's heartbeats.
 */
import { OhcError, UsageError } from "../lib/errors.ts";
import type { RpcHandlers } from "../lib/rpc/server.ts";
import { writeFileAtomic } from "../lib/state/atomic.ts";
import type { Identity } from "../lib/state/identity.ts";
import { paths } from "../lib/state/paths.ts";

export interface RunTaskArgs {
  voyage_id: string;
  branch: string;
  objective: string;
  agent: "claude" | "codex" | "shell" | "custom";
  agent_command: string | null;
  task: {
    id: string;
    subject: string;
    description: string;
    acceptance: string | null;
    command: string | null;
  };
}

export interface RunTaskResult {
  /** The task's commit, or null when it changed nothing. */
  commit: string | null;
  base: string;
  /** Home-relative path of a bundle holding the commit (when there is one). */
  bundle: string | null;
}

/** Where a voyage's files live on a ship (home-relative). */
export const shipVoyageDir = (id: string) => `.ohcommodore/voyages/${id}`;
export const shipCheckout = (id: string) => `voyage-${id}`;

export function captainHandlers(self: Identity): RpcHandlers {
  return {
    "captain.run_task": async ({ args, secrets, emit, signal }) => {
      const a = args as unknown as RunTaskArgs;
      if (
        !/^[a-z0-9-]+$/.test(a.voyage_id ?? "") ||
        !/^[A-Za-z0-9._-]+$/.test(a.task?.id ?? "")
      ) {
        throw new UsageError("captain.run_task: bad voyage or task id");
      }
      return await runTask(
        self,
        a,
        secrets,
        (m) => emit({ type: "progress", message: m }),
        signal,
      );
    },
  };
}

async function runTask(
  self: Identity,
  a: RunTaskArgs,
  secrets: Record<string, string>,
  progress: (m: string) => void,
  signal: AbortSignal,
): Promise<RunTaskResult> {
  const git = await import("../lib/voyage/git.ts");
  const { agentCommand, parseAgentOutput } = await import(
    "../lib/voyage/agents.ts"
  );
  const { buildPrompt } = await import("../lib/voyage/prompt.ts");
  const { runTask: runAgent } = await import("../lib/voyage/tmux.ts");

  const home = paths.home();
  const vdir = `${home}/${shipVoyageDir(a.voyage_id)}`;
  const checkout = `${home}/${shipCheckout(a.voyage_id)}`;
  const id = a.task.id;
  await Deno.mkdir(`${vdir}/logs`, { recursive: true });
  await Deno.mkdir(`${vdir}/out`, { recursive: true });

  progress("preparing checkout");
  await git.prepareCheckout({
    bare: `${vdir}/base.bundle`,
    branch: a.branch,
    dir: checkout,
  });
  const base = await new Deno.Command("git", {
    args: ["rev-parse", "HEAD"],
    cwd: checkout,
  }).output();
  const baseSha = new TextDecoder().decode(base.stdout).trim();

  const promptFile = `${vdir}/task-${id}.prompt.md`;
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
      repoDir: checkout,
    }),
  );
  let tokenFile: string | undefined;
  if (secrets.CLAUDE_CODE_OAUTH_TOKEN) {
    tokenFile = `${paths.secrets(home)}/claude_token`;
    await writeFileAtomic(tokenFile, secrets.CLAUDE_CODE_OAUTH_TOKEN);
  }
  // A root captain runs claude as an unprivileged user (see agent_user.ts).
  const { prepareAgentRun } = await import("../lib/voyage/agent_user.ts");
  const asAgent = await prepareAgentRun(a.agent, { checkout, home, tokenFile });
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
    checkout,
    agentCommand: a.agent_command ?? undefined,
    env: {
      HOME: home,
      PATH: `${home}/.ohcommodore/bin:${
        Deno.env.get("PATH") ?? "/usr/bin:/bin"
      }`,
      LANG: Deno.env.get("LANG") ?? "C.UTF-8",
      ...asAgent.env,
    },
    tokenFile,
    runAsUser: asAgent.runAsUser,
    allowRoot: Deno.env.get("OHCOMMODORE_CLAUDE_ALLOW_ROOT") === "1",
  });

  const logFile = `${vdir}/logs/task-${id}.log`;
  progress(`running ${a.agent} agent`);
  const beat = setInterval(() => progress("working"), 2_000);
  let code: number;
  try {
    ({ code } = await runAgent({
      session: "voyage",
      window: `task-${id}`,
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
  if (code !== 0) {
    throw new OhcError(
      "agent_failed",
      `the ${a.agent} agent exited with ${code} on task ${id}`,
    );
  }
  // Claude and Codex exit 0 even when they gave up; their stream says so.
  const outcome = parseAgentOutput(
    a.agent,
    await Deno.readTextFile(logFile).catch(() => ""),
  );
  if (outcome && !outcome.ok) {
    throw new OhcError(
      "agent_failed",
      `the ${a.agent} agent did not finish task ${id}: ${
        outcome.reportedFailure ?? outcome.error ?? "no result"
      }`,
    );
  }
  progress("committing");
  const { commit } = await git.commitTask({
    checkout,
    taskId: id,
    subject: a.task.subject,
  });
  if (!commit) return { commit: null, base: baseSha, bundle: null };
  const bundle = `${shipVoyageDir(a.voyage_id)}/out/task-${id}.bundle`;
  await git.bundleCommit({
    repo: checkout,
    commit,
    file: `${home}/${bundle}`,
    exclude: [baseSha],
  });
  return { commit, base: baseSha, bundle };
}
