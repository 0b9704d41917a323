/**
 * Agent adapters: how a ship turns one task into one process.
 *
 * `agentCommand(kind, opts)` returns an `AgentInvocation`: the argv, the
 * complete environment, the working directory and the file to feed on stdin.
 * It starts nothing; tmux.ts runs it. What differs by kind is in the kind's
 * own file (claude.ts, codex.ts, shell.ts, custom.ts; listed in kinds.ts, mapped in registry.ts).
 *
 * Every kind runs in the checkout and gets the OHC_* variables
 * (`OHC_VOYAGE_ID`, `OHC_SHIP`, `OHC_TASK_ID`, `OHC_TASK_SUBJECT`,
 * `OHC_TASK_DESCRIPTION`, `OHC_TASK_PROMPT_FILE`, `OHC_CHECKOUT`).
 *
 * Decisions:
 * - The prompt goes on **stdin**, for claude and codex alike, never in argv:
 *   argv is visible to every user in `ps`, is capped at 128 KiB per word on
 *   Linux, and inside a tmux pane stdin would otherwise be the terminal
 *   (`claude -p` with a terminal on stdin and no prompt argument fails with
 *   "Input must be provided either through stdin or as a prompt argument").
 *   The runner redirects stdin from the prompt file, so the file only needs
 *   to be readable by the captain, not by the agent's user.
 * - Secrets travel in the **environment only**: a token read from a 0600
 *   file (`tokenFile`, `codexKeyFile`) or the agent's variables (`envFile`)
 *   are set in the agent's environment; the runner passes that environment
 *   through a 0600 file sourced by its wrapper, so no secret is ever in an
 *   argv. A token file that group or others can read is refused.
 * - `runAsUser` (any kind may use it; claude as root needs it): the argv is
 *   prefixed with `setpriv --reuid --regid --init-groups --` (util-linux;
 *   unlike `runuser`/`su` it opens no PAM session and leaves the environment
 *   alone), and HOME/USER/LOGNAME become that user's. The checkout must be
 *   writable by that user (the captain chowns it); the log and the stdin
 *   redirect are handled by the runner as the captain, so claude and codex
 *   need no access to the prompt file, but a custom agent that reads
 *   `OHC_TASK_PROMPT_FILE` needs it readable by that user.
 * - `environment`: `opts.env` is the base (PATH, LANG, ...). It is not merged
 *   with the captain's own environment; what is returned is all the agent
 *   sees (the runners run it with a cleared environment).
 */
import { OhcError } from "../../../errors.ts";
import { AGENT_ENV_NAMES, isAgentSecret } from "../agent_env.ts";
import type { AgentKind } from "./kinds.ts";
import { agentAdapter } from "./registry.ts";
import { findExecutable, resolveUser, setprivPrefix } from "./os_user.ts";
import { readSecretEnvFile } from "./secret_file.ts";
import type { AgentInvocation, AgentOptions } from "./types.ts";

/**
 * A ship's pre-flight, before it claims a task: the agent's program is on
 * the PATH the agent gets (`path`). Throws `agent_missing` naming it.
 */
export function requireAgentProgram(
  kind: AgentKind,
  o: { ship: string; path: string },
): string | undefined {
  const { program, installHint } = agentAdapter(kind);
  if (!program) return undefined;
  const found = findExecutable(program, o.path);
  if (!found) {
    throw new OhcError(
      "agent_missing",
      `ship ${o.ship} has no ${program} executable on its PATH (${o.path})`,
      `${
        installHint ?? `install ${program} on the ships`
      }, or choose another --agent`,
    );
  }
  return found;
}

/** Builds the invocation for one task. Throws OhcError/UsageError; runs nothing. */
export function agentCommand(
  kind: AgentKind,
  opts: AgentOptions,
): AgentInvocation {
  if (!opts.checkout.startsWith("/")) {
    throw new Error(`checkout must be an absolute path: ${opts.checkout}`);
  }
  if (!opts.promptFile.startsWith("/")) {
    throw new Error(`promptFile must be an absolute path: ${opts.promptFile}`);
  }
  const myUid = opts.uid ?? Deno.uid() ?? -1;
  const user = opts.runAsUser !== undefined
    ? resolveUser(opts.runAsUser)
    : undefined;
  if (user && user.uid !== myUid && myUid !== 0) {
    throw new OhcError(
      "agent_user",
      `cannot run the agent as ${user.name}: switching users needs root, ` +
        `and the captain runs as uid ${myUid}`,
      "run the captain as root, or drop runAsUser to run the agent as the captain's user",
    );
  }
  const agentUid = user ? user.uid : myUid;

  const env: Record<string, string> = { ...(opts.env ?? {}) };
  const secretEnv: string[] = [];
  const adapter = agentAdapter(kind);
  const built = adapter.build(opts, { env, secretEnv, agentUid });

  let argv = built.argv;
  if (opts.envFile !== undefined && adapter.env) {
    const vars = readSecretEnvFile(opts.envFile, AGENT_ENV_NAMES);
    for (const [k, v] of Object.entries(vars)) {
      env[k] = v;
      if (isAgentSecret(k) && !secretEnv.includes(k)) secretEnv.push(k);
    }
  }
  for (const [k, v] of Object.entries(ohcEnv(opts))) env[k] = v;
  if (user) {
    env.HOME = opts.home ?? user.home;
    env.USER = user.name;
    env.LOGNAME = user.name;
    if (user.uid !== myUid) argv = [...setprivPrefix(user), ...argv];
  } else if (opts.home !== undefined) {
    env.HOME = opts.home;
  }

  return {
    kind,
    argv,
    env,
    cwd: opts.checkout,
    stdinFile: built.stdinFile,
    secretEnv,
    user,
  };
}

/** The OHC_* variables every agent gets. */
export function ohcEnv(
  opts: Pick<
    AgentOptions,
    "voyageId" | "ship" | "task" | "promptFile" | "checkout"
  >,
): Record<string, string> {
  return {
    OHC_VOYAGE_ID: opts.voyageId,
    OHC_SHIP: opts.ship,
    OHC_TASK_ID: opts.task.id,
    OHC_TASK_SUBJECT: opts.task.subject,
    OHC_TASK_DESCRIPTION: opts.task.description ?? "",
    OHC_TASK_PROMPT_FILE: opts.promptFile,
    OHC_CHECKOUT: opts.checkout,
  };
}
