/** The shapes every agent kind shares (one file per kind beside this). */
import type { AgentKind, AgentTask } from "./kinds.ts";

export interface AgentOptions {
  voyageId: string;
  ship: string;
  task: AgentTask;
  /** Absolute path of the prompt file (buildPrompt's text). */
  promptFile: string;
  /** Absolute path of the repository checkout; the agent's cwd. */
  checkout: string;
  /** For `custom`: the command line, run with `bash -c`. */
  agentCommand?: string;
  /** Base environment of the agent (PATH, LANG, HOME, ...). Default {}. */
  env?: Record<string, string>;
  /**
   * claude: a 0600 file holding the OAuth token (`claude setup-token`); its
   * content becomes CLAUDE_CODE_OAUTH_TOKEN. Without it Claude Code uses
   * whatever login its HOME has.
   */
  tokenFile?: string;
  /** codex: a 0600 file holding an API key; becomes CODEX_API_KEY. */
  codexKeyFile?: string;
  /**
   * A 0600 JSON file of the agent's allow-listed variables (agent_env.ts:
   * credentials, endpoints, models), set in its environment; the secrets
   * among them are listed in `secretEnv`. Read like a token file.
   */
  envFile?: string;
  /** The claude executable (default "claude", found on the env's PATH). */
  claudeBin?: string;
  /** The codex executable (default "codex"). */
  codexBin?: string;
  /** claude/codex `--model`. */
  model?: string;
  /**
   * claude/codex: more flags, after the fixed ones (e.g. ["--max-turns",
   * "50"]). Never put a secret here: argv is public.
   */
  extraArgs?: string[];
  /**
   * Run the agent as this user (name or numeric uid) via setpriv. Needs the
   * captain to be root. Required for claude when the captain is root.
   */
  runAsUser?: string;
  /** HOME for the agent; default: runAsUser's home, else env.HOME. */
  home?: string;
  /**
   * claude as root anyway: only for sandboxes that Claude Code accepts
   * root in, and for tests with the fake (FAKE_CLAUDE_ALLOW_ROOT=1).
   */
  allowRoot?: boolean;
  /** The captain's uid; default Deno.uid(). Tests set it. */
  uid?: number;
}

export interface AgentInvocation {
  kind: AgentKind;
  /** What to exec. Never holds a secret. */
  argv: string[];
  /** The complete environment of the agent (secrets included). */
  env: Record<string, string>;
  cwd: string;
  /** Feed this file on stdin (claude, codex); else stdin is /dev/null. */
  stdinFile?: string;
  /** Names of `env` entries that are secrets: never log their values. */
  secretEnv: string[];
  /** The user the agent runs as, when runAsUser was given. */
  user?: AgentUser;
}

export interface AgentUser {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

/** Variables that travel from the laptop to an agent's run (agent_env.ts). */
export interface AgentVars {
  /** Values that are credentials: never shown, never logged. */
  secrets: readonly string[];
  /** Settings (endpoints, models, regions, retries). */
  settings: readonly string[];
}

export interface AgentOutcome {
  /** A final result was seen, it was a success, and no TASK FAILED line. */
  ok: boolean;
  /** Claude: the result subtype ("success", "error_max_turns", ...). */
  subtype?: string;
  isError?: boolean;
  /** Claude: total_cost_usd. */
  costUsd?: number;
  /** Claude: num_turns; Codex: turns completed. */
  turns?: number;
  durationMs?: number;
  sessionId?: string;
  model?: string;
  /** The agent's final message. */
  result?: string;
  /** Why it is not ok, one line. */
  error?: string;
  /** The reason after a `TASK FAILED:` line in the final message. */
  reportedFailure?: string;
  /** Token usage as the agent reported it. */
  usage?: Record<string, unknown>;
  /** Claude: the HTTP status of the API error that ended the run. */
  apiErrorStatus?: number;
  /** Claude: `system/api_retry` events seen (the client retrying the API). */
  apiRetries?: number;
  /** Claude: the last retry's cause, e.g. "529 overloaded". */
  lastRetry?: string;
}

/** What one kind of agent is: the facts and steps that differ by kind. */
export interface AgentAdapter {
  /** The program a ship needs on the agent's PATH; none: bash is enough. */
  program?: string;
  /** How to install `program` on the ships. */
  installHint?: string;
  /** The variables that travel to its runs; none: it gets none. */
  env?: AgentVars;
  /**
   * It refuses to run as root (a root captain runs it as the agent user,
   * agent_user.ts), and its HOME is made ready for it first.
   */
  refusesRoot?: boolean;
  /** Makes `home` ready for a run in the folders `trust` (no first-run stops). */
  prepareHome?(home: string, trust: string[]): Promise<unknown>;
  /** It takes `sail --model`. */
  takesModel: boolean;
  /** `sail`'s pre-flight: its environment holds a credential (exit 2 if not). */
  requireCredential?(env: Record<string, string>): void;
  /** Its part of a task's invocation (agentCommand does the rest). */
  build(opts: AgentOptions, run: AgentBuild): AgentArgv;
  /** Reads its output stream; none: the exit code is the whole story. */
  parse?(input: string | Iterable<string>): AgentOutcome;
}

/** What agentCommand hands an adapter to fill in. */
export interface AgentBuild {
  /** The agent's environment so far; the adapter may change it. */
  env: Record<string, string>;
  /** Names in `env` that are secrets; the adapter adds its own. */
  secretEnv: string[];
  /** The uid the agent will run as. */
  agentUid: number;
}

export interface AgentArgv {
  argv: string[];
  /** Fed on stdin (claude, codex); else stdin is /dev/null. */
  stdinFile?: string;
}
