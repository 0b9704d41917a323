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
 * - the agent must reach the checkout without passing through the captain's
 *   HOME (a local VM's HOME is inside the laptop user's 0700 home, which
 *   must stay closed): the checkout moves to a root-owned place outside it
 *   (agent_workdir.ts) and `~/voyage-<id>` becomes a link there; the agent
 *   works in the real path. A directory on that path the agent cannot pass
 *   is an error naming it; nothing is opened up;
 * - the agent's credentials stay the captain's (0600 files it reads to set
 *   the agent's environment); the agent user gets none of its files.
 */
import { isSettingName, Settings } from "../../settings.ts";
import { OhcError } from "../../errors.ts";
import { AGENT_WORK_ROOT, agentWorkDir } from "./agent_workdir.ts";
import { prepareClaudeHome } from "./agents/claude.ts";
import type { AgentKind } from "./agents/kinds.ts";
import { agentAdapter } from "./agents/registry.ts";
import { resolveUser } from "./agents/os_user.ts";
import type { AgentUser } from "./agents/types.ts";

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
    o.uid === 0 && agentAdapter(kind).refusesRoot &&
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
  /** Where the agent works: the checkout, or its real path once moved. */
  checkout: string;
}

/**
 * Gets the checkout and the agent's user ready for one run of `kind`
 * (call it after the checkout is prepared, before the prompt is written and
 * the agent starts). Returns what agentCommand needs.
 */
export async function prepareAgentRun(
  kind: AgentKind,
  o: { checkout: string; home: string },
): Promise<AgentRunPrep> {
  const uid = Deno.uid() ?? -1;
  const settings = await Settings.load(o.home);
  const name = agentUserName(kind, {
    uid,
    // Checked as they are read: a bad value is an error naming it.
    env: (k) => {
      if (!isSettingName(k)) return Deno.env.get(k);
      settings.get(k);
      return settings.raw(k) || undefined;
    },
  });
  if (name === undefined || uid !== 0) {
    // As itself (or agentCommand explains why it cannot switch users).
    if (name === undefined) {
      await agentAdapter(kind).prepareHome?.(o.home, [o.checkout]);
    }
    return { runAsUser: name, env: {}, checkout: o.checkout };
  }
  const user = await ensureAgentUser(name);
  if (user.uid === 0) {
    return { runAsUser: name, env: {}, checkout: o.checkout };
  }
  const checkout = await moveOutOfHome(o.checkout, o.home);
  await reachable(checkout, user);
  await shareCheckout(checkout, user);
  return {
    runAsUser: user.name,
    env: {
      GIT_CONFIG_COUNT: "1",
      GIT_CONFIG_KEY_0: "safe.directory",
      GIT_CONFIG_VALUE_0: checkout,
    },
    checkout,
  };
}

/**
 * The checkout's real path outside the captain's HOME (agent_workdir.ts),
 * moving it there and leaving a link the first time. Every directory the
 * move creates is root's, mode 0711; one that another user could change
 * is refused.
 */
async function moveOutOfHome(checkout: string, home: string): Promise<string> {
  if ((await Deno.lstat(checkout)).isSymlink) {
    return await Deno.realPath(checkout);
  }
  const parent = await agentWorkDir(home);
  const top = AGENT_WORK_ROOT.slice(0, AGENT_WORK_ROOT.lastIndexOf("/"));
  for (const dir of [top, AGENT_WORK_ROOT, parent]) {
    await Deno.mkdir(dir).catch((e) => {
      if (!(e instanceof Deno.errors.AlreadyExists)) throw e;
    });
    const info = await Deno.lstat(dir);
    if (info.isDirectory && info.uid === 0) await Deno.chmod(dir, 0o711);
    if (!info.isDirectory || info.uid !== 0) {
      throw new OhcError(
        "agent_user",
        `${dir} must be a directory of root's that no one else can change, to hold the agent's checkouts`,
      );
    }
  }
  const real = `${parent}/${checkout.split("/").pop()}`;
  await Deno.remove(real, { recursive: true }).catch(() => {});
  try {
    await Deno.rename(checkout, real);
  } catch {
    // Another file system: copy, then remove.
    const cp = await new Deno.Command("cp", {
      args: ["-a", "--", checkout, real],
      stdin: "null",
      stdout: "null",
      stderr: "piped",
    }).output();
    if (!cp.success) {
      throw new OhcError(
        "agent_user",
        `cannot move ${checkout} to ${real} for the agent user: ${
          new TextDecoder().decode(cp.stderr).trim()
        }`,
      );
    }
    await Deno.remove(checkout, { recursive: true });
  }
  await Deno.symlink(real, checkout);
  return real;
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

/** Fails naming every directory above the checkout the user cannot pass. */
async function reachable(checkout: string, user: AgentUser): Promise<void> {
  const parts = checkout.split("/").filter(Boolean);
  const blocked: { dir: string; mode: number }[] = [];
  for (let i = 0; i < parts.length; i++) {
    const dir = "/" + parts.slice(0, i).join("/");
    const info = await Deno.stat(dir);
    if (!canSearch(info, user)) {
      blocked.push({ dir, mode: (info.mode ?? 0) & 0o7777 });
    }
  }
  if (blocked.length > 0) {
    const oct = (m: number) => (m & 0o777).toString(8).padStart(4, "0");
    throw new OhcError(
      "agent_user",
      `the agent user ${user.name} cannot reach ${checkout}: ${
        blocked.map((b) => `${b.dir} (mode ${oct(b.mode)})`).join(", ")
      } ${blocked.length === 1 ? "is" : "are"} not searchable for it`,
      `chmod o+x ${
        blocked.map((b) => b.dir).join(" ")
      }, or set OHCOMMODORE_AGENT_USER to a user that can reach it`,
    );
  }
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
