/**
 * Which user a ship's agent runs as, and what that user needs.
 *
 * Claude Code refuses `--dangerously-skip-permissions` as root, and an agent
 * is code we do not trust with root anyway. So a root captain runs the
 * claude agent as `ohcommodore-agent`, a system user it creates with
 * `useradd --system` the first time it needs it (home
 * `/var/lib/ohcommodore-agent`, onboarding already done there).
 * `OHCOMMODORE_AGENT_USER=NAME` picks another, existing user, for every agent
 * kind; `OHCOMMODORE_CLAUDE_ALLOW_ROOT=1` keeps claude as root (sandboxes
 * Claude Code accepts, tests). A captain that is not root runs every agent
 * as itself.
 *
 * The agent user may write the work tree, never the repository: the
 * captain (root) runs git in the checkout after the agent, and a `.git/config`
 * the agent could write (a filter driver, say) would run as root. So:
 * - the checkout's top directory stays the captain's, group = the agent's
 *   group, mode 1775 (the agent creates files there; the sticky bit stops it
 *   renaming or replacing `.git`);
 * - `.git` stays the captain's and read-only for the agent; everything else
 *   is chowned to the agent before each run (`chown -R -P -h`: symlinks are
 *   changed themselves, never followed);
 * - because the checkout and `.git` stay the captain's, the captain's git
 *   passes git's `safe.directory` ownership check unchanged; the agent's own
 *   (read-only) git gets `safe.directory=<checkout>` through
 *   `GIT_CONFIG_*` in its environment, which git treats as command-line
 *   config, so nothing is written in the agent's home as root;
 * - the agent must be able to reach the checkout: the captain's HOME gets
 *   o+x (pass through, not list) when it lacks it; a directory above HOME
 *   that blocks the agent is an error naming it;
 * - the Claude token file is chowned to the agent user, mode 0600.
 */
import { OhcError } from "../errors.ts";
import {
  type AgentKind,
  type AgentUser,
  prepareClaudeHome,
  resolveUser,
} from "./agents.ts";

export const DEFAULT_AGENT_USER = "ohcommodore-agent";

type Env = (key: string) => string | undefined;

/** The user to run the agent as; undefined: the captain's own user. */
export function agentUserName(
  kind: AgentKind,
  o: { uid: number; env: Env },
): string | undefined {
  const chosen = o.env("OHCOMMODORE_AGENT_USER");
  if (chosen) return chosen;
  if (
    o.uid === 0 && kind === "claude" &&
    o.env("OHCOMMODORE_CLAUDE_ALLOW_ROOT") !== "1"
  ) {
    return DEFAULT_AGENT_USER;
  }
  return undefined;
}

export interface AgentRunPrep {
  /** For agentCommand's runAsUser. */
  runAsUser?: string;
  /** Added to the agent's environment. */
  env: Record<string, string>;
}

/**
 * Gets the checkout, the token file and the agent's user ready for one
 * run of `kind` (call it after the checkout is prepared, before the agent
 * starts). Returns what agentCommand needs.
 */
export async function prepareAgentRun(
  kind: AgentKind,
  o: { checkout: string; home: string; tokenFile?: string },
): Promise<AgentRunPrep> {
  const uid = Deno.uid() ?? -1;
  const name = agentUserName(kind, { uid, env: (k) => Deno.env.get(k) });
  if (name === undefined || uid !== 0) {
    // As itself (or agentCommand explains why it cannot switch users).
    if (kind === "claude" && name === undefined) {
      await prepareClaudeHome(o.home, { trust: [o.checkout] });
    }
    return { runAsUser: name, env: {} };
  }
  const user = await ensureAgentUser(name);
  if (user.uid === 0) return { runAsUser: name, env: {} };
  await reachable(o.checkout, user, o.home);
  await shareCheckout(o.checkout, user);
  if (o.tokenFile) {
    await Deno.chown(o.tokenFile, user.uid, user.gid);
    await Deno.chmod(o.tokenFile, 0o600);
  }
  return {
    runAsUser: user.name,
    env: {
      GIT_CONFIG_COUNT: "1",
      GIT_CONFIG_KEY_0: "safe.directory",
      GIT_CONFIG_VALUE_0: o.checkout,
    },
  };
}

/**
 * The user, created when it is the default one and missing (a system user
 * with its own group and home, Claude's onboarding done there before any
 * agent ran). Concurrent captains on one machine may race: useradd then
 * fails for all but one, and the user is looked up again.
 */
export async function ensureAgentUser(name: string): Promise<AgentUser> {
  let why = "";
  for (let attempt = 0; attempt < 20; attempt++) {
    try {
      return resolveUser(name);
    } catch (e) {
      if (name !== DEFAULT_AGENT_USER) throw e;
    }
    const home = `/var/lib/${name}`;
    let out: Deno.CommandOutput;
    try {
      out = await new Deno.Command("useradd", {
        args: [
          "--system",
          "--user-group",
          "--create-home",
          "--home-dir",
          home,
          "--shell",
          "/bin/bash",
          "--comment",
          "ohcommodore agent",
          name,
        ],
        stdin: "null",
        stdout: "null",
        stderr: "piped",
      }).output();
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      throw noUser(name, "useradd is not installed");
    }
    if (out.success) {
      const user = resolveUser(name);
      await Deno.chmod(user.home, 0o700); // its sessions are no one else's
      // A fresh home holds nothing the agent made, so root may write there.
      await prepareClaudeHome(user.home, {
        owner: { uid: user.uid, gid: user.gid },
      });
      return user;
    }
    why = new TextDecoder().decode(out.stderr).trim().split("\n").pop() ?? "";
    await new Promise((r) => setTimeout(r, 100 + 50 * attempt));
  }
  throw noUser(name, `useradd failed: ${why}`);
}

function noUser(name: string, why: string): OhcError {
  return new OhcError(
    "agent_user",
    `cannot create the user ${name} to run the agent as: ${why}`,
    "create it (useradd --system --create-home NAME), set OHCOMMODORE_AGENT_USER to a non-root user, or OHCOMMODORE_CLAUDE_ALLOW_ROOT=1 where Claude Code accepts root",
  );
}

/** May `user` pass through a directory with this owner and mode? */
export function canSearch(info: Deno.FileInfo, user: AgentUser): boolean {
  const m = (info.mode ?? 0) & 0o777;
  if (info.uid === user.uid) return (m & 0o100) !== 0;
  if (info.gid === user.gid) return (m & 0o010) !== 0;
  return (m & 0o001) !== 0;
}

/**
 * Makes every directory above the checkout passable for the user (see
 * top); changes nothing when one above HOME blocks it.
 */
async function reachable(
  checkout: string,
  user: AgentUser,
  home: string,
): Promise<void> {
  const parts = checkout.split("/").filter(Boolean);
  const blocked: { dir: string; mode: number }[] = [];
  for (let i = 0; i < parts.length; i++) {
    const dir = "/" + parts.slice(0, i).join("/");
    const info = await Deno.stat(dir);
    if (!canSearch(info, user)) {
      blocked.push({ dir, mode: (info.mode ?? 0) & 0o7777 });
    }
  }
  const self = home.replace(/\/+$/, "");
  const others = blocked.filter((b) => b.dir !== self);
  if (others.length > 0) {
    const oct = (m: number) => (m & 0o777).toString(8).padStart(4, "0");
    throw new OhcError(
      "agent_user",
      `the agent user ${user.name} cannot reach ${checkout}: ${
        others.map((b) => `${b.dir} (mode ${oct(b.mode)})`).join(", ")
      } ${others.length === 1 ? "is" : "are"} not searchable for it`,
      `chmod o+x ${
        others.map((b) => b.dir).join(" ")
      }, or set OHCOMMODORE_AGENT_USER to a user that can reach it`,
    );
  }
  for (const b of blocked) await Deno.chmod(b.dir, b.mode | 0o001);
}

/** The work tree to the agent, the top directory and `.git` kept (see top). */
async function shareCheckout(checkout: string, user: AgentUser) {
  await Deno.chown(checkout, null, user.gid);
  await Deno.chmod(checkout, 0o1775);
  const entries: string[] = [];
  for await (const e of Deno.readDir(checkout)) {
    if (e.name !== ".git") entries.push(`${checkout}/${e.name}`);
  }
  if (entries.length === 0) return;
  const out = await new Deno.Command("chown", {
    args: ["-R", "-P", "-h", `${user.uid}:${user.gid}`, "--", ...entries],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new OhcError(
      "agent_user",
      `cannot hand ${checkout} to the agent user ${user.name}: ${
        new TextDecoder().decode(out.stderr).trim().split("\n").pop()
      }`,
    );
  }
}
