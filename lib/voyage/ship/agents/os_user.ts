/** The user an agent runs as, and how to switch to it (setpriv). */
import { OhcError, UsageError } from "../../../errors.ts";
import type { AgentUser } from "./types.ts";

/** Looks a user up (name or uid) with getent, else /etc/passwd. */
export function resolveUser(nameOrUid: string): AgentUser {
  if (!/^[A-Za-z0-9_][A-Za-z0-9_.-]*\$?$/.test(nameOrUid)) {
    throw new UsageError(`invalid user name "${nameOrUid}"`);
  }
  let line: string | undefined;
  try {
    const out = new Deno.Command("getent", {
      args: ["passwd", nameOrUid],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    if (out.success) {
      line = new TextDecoder().decode(out.stdout).split("\n")[0];
    }
  } catch {
    // no getent: fall back to the file
  }
  if (line === undefined) {
    try {
      line = Deno.readTextFileSync("/etc/passwd").split("\n").find((l) => {
        const f = l.split(":");
        return f[0] === nameOrUid || f[2] === nameOrUid;
      });
    } catch {
      // no passwd file
    }
  }
  const f = line?.split(":") ?? [];
  if (f.length < 7) {
    throw new OhcError(
      "agent_user",
      `no such user "${nameOrUid}" to run the agent as`,
      "create it (useradd -m NAME) or pick an existing non-root user",
    );
  }
  return { name: f[0], uid: Number(f[2]), gid: Number(f[3]), home: f[5] };
}

export function setprivPrefix(user: AgentUser): string[] {
  const setpriv = findExecutable("setpriv");
  if (!setpriv) {
    throw new OhcError(
      "agent_user",
      "setpriv (util-linux) is needed to run the agent as another user and was not found",
      "install util-linux (apt-get install util-linux)",
    );
  }
  return [
    setpriv,
    `--reuid=${user.uid}`,
    `--regid=${user.gid}`,
    "--init-groups",
    "--",
  ];
}

/** Finds an executable on PATH (default: this process's) and the usual system directories. */
export function findExecutable(
  name: string,
  path = Deno.env.get("PATH") ?? "",
): string | undefined {
  const dirs = [
    ...path.split(":"),
    "/usr/local/bin",
    "/usr/bin",
    "/bin",
    "/usr/sbin",
    "/sbin",
  ].filter((d) => d.startsWith("/"));
  for (const d of dirs) {
    try {
      const info = Deno.statSync(`${d}/${name}`);
      if (info.isFile && ((info.mode ?? 0) & 0o111) !== 0) {
        return `${d}/${name}`;
      }
    } catch {
      // not here
    }
  }
  return undefined;
}
