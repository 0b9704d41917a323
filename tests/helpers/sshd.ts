/**
 * A real OpenSSH server for tests: `/usr/sbin/sshd -D -e` as a child process
 * with its own generated config, host key and authorized_keys, listening on a
 * loopback address.
 *
 * Usage:
 *
 * ```ts
 * import { makeClientKey, sshdSkipReason, startSshd } from "../helpers/sshd.ts";
 *
 * Deno.test({
 *   name: "something over ssh",
 *   ignore: sshdSkipReason() !== null,
 *   async fn() {
 *     const dir = await Deno.makeTempDir({ prefix: "sshd-" });
 *     const key = await makeClientKey(dir);
 *     const sshd = await startSshd({ dir, authorizedKeys: [key.publicKey] });
 *     try {
 *       // ssh -i key.privatePath -p sshd.port root@sshd.host ...
 *     } finally {
 *       await sshd.stop();
 *     }
 *   },
 * });
 * ```
 *
 * sshd needs root (it switches users) and the openssh-server package. Without
 * them the tests are skipped with one NOTICE line on stderr; with `CI=true`
 * they are mandatory: `sshdSkipReason()` returns null and `startSshd` throws,
 * so the test fails loudly instead of quietly skipping.
 */

import { isCi, skipCheck } from "./prereq.ts";

export const SSHD = "/usr/sbin/sshd";
const SSH_KEYGEN = "ssh-keygen";
const PRIVSEP_DIR = "/run/sshd";
const NOTICE_ENV = "_OHC_TEST_SSHD_NOTICE_SHOWN";

/** Why sshd tests cannot run here, or null when they can. Ignores CI. */
function missingPrerequisite(): string | null {
  if (Deno.build.os !== "linux") return `needs Linux, this is ${Deno.build.os}`;
  try {
    if (!Deno.statSync(SSHD).isFile) return `${SSHD} is not a file`;
  } catch {
    return `${SSHD} not found (apt-get install openssh-server)`;
  }
  if (Deno.uid() !== 0) return "sshd tests need root";
  return null;
}

/**
 * null when sshd tests can run (sshd present, running as root), else the
 * reason. Under `CI=true` it is always null: CI makes these tests mandatory,
 * and `startSshd` then fails with the reason. Prints one NOTICE line to
 * stderr the first time it finds a reason.
 */
export const sshdSkipReason: () => string | null = skipCheck(
  "sshd tests",
  NOTICE_ENV,
  missingPrerequisite,
);

export interface SshdOptions {
  /** Directory for config, host key, authorized_keys, pid file and log. */
  dir: string;
  /** Port to listen on; a free one is picked when omitted. */
  port?: number;
  /** Default 127.0.0.1. Any 127.0.0.0/8 address works on Linux. */
  listenAddress?: string;
  /** Lines of the authorized_keys file (options allowed, e.g. `command=`). */
  authorizedKeys: string[];
  /** sshd ForceCommand; the client's command is in $SSH_ORIGINAL_COMMAND. */
  forceCommand?: string;
  /** Only this user may log in (AllowUsers). Default: any user. */
  user?: string;
  /** Environment for sessions (sshd SetEnv). */
  env?: Record<string, string>;
  /** More sshd_config lines, appended last. */
  extraConfig?: string[];
}

export interface Sshd {
  port: number;
  host: string;
  /** The host's public key line, `ssh-ed25519 AAAA... comment`. */
  hostKeyPub: string;
  /** pid of the listening sshd. */
  pid: number;
  dir: string;
  configPath: string;
  /** sshd's log (LogLevel VERBOSE), also written to `logPath`. */
  logPath: string;
  log(): string;
  /** How many clients authenticated so far ("Accepted publickey" lines). */
  acceptedLogins(): number;
  /** A known_hosts line for this server's host key. */
  knownHostsLine(): string;
  /** SIGTERM to sshd and every session it forked; waits until they are gone. */
  stop(): Promise<void>;
  /** SIGKILL to sshd and every session it forked: the machine "dies". */
  kill(): Promise<void>;
}

async function exec(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")} failed (exit ${out.code}): ${
        dec.decode(out.stderr).trim()
      }`,
    );
  }
  return dec.decode(out.stdout);
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.lstat(path);
    return true;
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return false;
    throw e;
  }
}

/**
 * Generates an ed25519 client key without passphrase at `<dir>/id_ed25519`
 * (reused when it already exists).
 */
export async function makeClientKey(
  dir: string,
  name = "id_ed25519",
): Promise<{ privatePath: string; publicKey: string }> {
  const privatePath = `${dir}/${name}`;
  if (!(await exists(privatePath))) {
    await exec(SSH_KEYGEN, [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      `ohc-test-${name}`,
      "-f",
      privatePath,
    ]);
  }
  const publicKey = (await Deno.readTextFile(`${privatePath}.pub`)).trim();
  return { privatePath, publicKey };
}

/** A port nobody listens on right now (racy by nature; callers retry). */
export function freePort(hostname = "127.0.0.1"): number {
  const l = Deno.listen({ hostname, port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** pid → parent pid for every process we can see. */
function processTable(): Map<number, number> {
  const table = new Map<number, number>();
  for (const entry of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(entry.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${entry.name}/stat`);
      // "pid (comm) state ppid ...": comm may hold spaces and parens.
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      table.set(Number(entry.name), Number(rest[1]));
    } catch { /* exited meanwhile */ }
  }
  return table;
}

function descendants(root: number): number[] {
  const table = processTable();
  const children = new Map<number, number[]>();
  for (const [pid, ppid] of table) {
    const list = children.get(ppid) ?? [];
    list.push(pid);
    children.set(ppid, list);
  }
  const out: number[] = [];
  const queue = [root];
  while (queue.length > 0) {
    const pid = queue.shift()!;
    for (const c of children.get(pid) ?? []) {
      out.push(c);
      queue.push(c);
    }
  }
  return out;
}

function alive(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    const state = stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
    return state !== "Z" && state !== "X";
  } catch {
    return false;
  }
}

function signalAll(pids: number[], sig: Deno.Signal): void {
  for (const pid of pids) {
    try {
      Deno.kill(pid, sig);
    } catch { /* gone */ }
  }
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function ensurePrivsepDir(): Promise<void> {
  await Deno.mkdir(PRIVSEP_DIR, { recursive: true, mode: 0o755 });
  const st = await Deno.stat(PRIVSEP_DIR);
  // sshd refuses a privsep dir that is group/world writable.
  if ((st.mode ?? 0) & 0o022) await Deno.chmod(PRIVSEP_DIR, 0o755);
}

function buildConfig(
  opts: SshdOptions,
  port: number,
  host: string,
  paths: { hostKey: string; authorizedKeys: string; pidFile: string },
): string {
  const lines = [
    "# generated by tests/helpers/sshd.ts",
    `Port ${port}`,
    `ListenAddress ${host}`,
    `HostKey ${paths.hostKey}`,
    `PidFile ${paths.pidFile}`,
    `AuthorizedKeysFile ${paths.authorizedKeys}`,
    "PubkeyAuthentication yes",
    "PasswordAuthentication no",
    "KbdInteractiveAuthentication no",
    "PermitRootLogin prohibit-password",
    "StrictModes no",
    "UsePAM no",
    "UseDNS no",
    "PrintMotd no",
    "PrintLastLog no",
    "X11Forwarding no",
    "LogLevel VERBOSE",
    "LoginGraceTime 30",
    // Parallel tests open many connections at once; the default 10:30:100
    // would randomly drop some of them.
    "MaxStartups 200",
    "Subsystem sftp internal-sftp",
  ];
  if (opts.user !== undefined) lines.push(`AllowUsers ${opts.user}`);
  // sshd runs every command through the user's shell, and bash started by
  // sshd sources ~/.bashrc unless SHLVL says it is nested: a developer's
  // rc file (here root's, whose pyenv hook waited a minute on a stale lock)
  // must not slow or hang a test server.
  const env = { SHLVL: "1", ...opts.env };
  lines.push(
    `SetEnv ${
      Object.entries(env).map(([k, v]) => {
        if (/["\n\r]/.test(v)) {
          throw new Error(`unsupported env value for ${k}`);
        }
        return `"${k}=${v}"`;
      }).join(" ")
    }`,
  );
  if (opts.forceCommand !== undefined) {
    if (/[\n\r]/.test(opts.forceCommand)) {
      throw new Error("forceCommand must be one line");
    }
    lines.push(`ForceCommand ${opts.forceCommand}`);
  }
  lines.push(...(opts.extraConfig ?? []));
  return lines.join("\n") + "\n";
}

/**
 * Starts sshd and resolves once it listens. Reuses the host key in `dir`
 * when there is one, so a restarted server keeps its identity.
 */
export async function startSshd(opts: SshdOptions): Promise<Sshd> {
  const missing = missingPrerequisite();
  if (missing !== null) {
    throw new Error(
      `cannot start sshd: ${missing}${
        isCi() ? " (CI=true makes sshd tests mandatory)" : ""
      }`,
    );
  }
  const host = opts.listenAddress ?? "127.0.0.1";
  const dir = opts.dir;
  await Deno.mkdir(dir, { recursive: true });
  await ensurePrivsepDir();

  const hostKey = `${dir}/ssh_host_ed25519_key`;
  if (!(await exists(hostKey))) {
    await exec(SSH_KEYGEN, [
      "-q",
      "-t",
      "ed25519",
      "-N",
      "",
      "-C",
      `ohc-test-host-${host}`,
      "-f",
      hostKey,
    ]);
  }
  const hostKeyPub = (await Deno.readTextFile(`${hostKey}.pub`)).trim();

  const authorizedKeys = `${dir}/authorized_keys`;
  await Deno.writeTextFile(
    authorizedKeys,
    opts.authorizedKeys.map((k) => k.trim() + "\n").join(""),
  );
  // sshd reads authorized_keys as the logging-in user.
  await Deno.chmod(authorizedKeys, 0o644);
  if (opts.user !== undefined && opts.user !== "root") {
    const st = await Deno.stat(dir);
    await Deno.chmod(dir, (st.mode ?? 0o700) & 0o777 | 0o711);
  }

  const configPath = `${dir}/sshd_config`;
  const logPath = `${dir}/sshd.log`;
  const pidFile = `${dir}/sshd.pid`;

  let lastError = "";
  for (let attempt = 0; attempt < 5; attempt++) {
    const port = opts.port ?? freePort(host);
    await Deno.writeTextFile(
      configPath,
      buildConfig(opts, port, host, {
        hostKey,
        authorizedKeys,
        pidFile,
      }),
    );
    // Validate the config first: a typo should say so, not time out.
    await exec(SSHD, ["-t", "-f", configPath]);

    const started = await launch(configPath, logPath, host, port);
    if (started.ok) {
      const { child, logText } = started;
      const pid = child.pid;
      let stopping: Promise<void> | undefined;
      // Once sshd is reaped its pid may be reused: signal it only once.
      const terminate = (sig: Deno.Signal, graceMs: number) =>
        stopping ??= terminateOnce(sig, graceMs);
      const terminateOnce = async (sig: Deno.Signal, graceMs: number) => {
        const pids = [pid, ...descendants(pid)];
        signalAll(pids, sig);
        const deadline = Date.now() + graceMs;
        while (pids.some(alive) && Date.now() < deadline) await sleep(20);
        if (pids.some(alive)) {
          signalAll([...pids, ...descendants(pid)], "SIGKILL");
        }
        await child.status;
        while (pids.some(alive)) await sleep(20);
        await started.drained;
      };
      return {
        port,
        host,
        hostKeyPub,
        pid,
        dir,
        configPath,
        logPath,
        log: logText,
        acceptedLogins: () =>
          logText().split("\n").filter((l) => /Accepted publickey/.test(l))
            .length,
        knownHostsLine: () =>
          `${port === 22 ? host : `[${host}]:${port}`} ${hostKeyPub}`,
        stop: () => terminate("SIGTERM", 3000),
        kill: () => terminate("SIGKILL", 3000),
      };
    }
    lastError = started.log;
    const portTaken = /Address already in use|Cannot bind any address/.test(
      started.log,
    );
    if (opts.port !== undefined || !portTaken) break;
  }
  throw new Error(`sshd did not start:\n${lastError.trim()}`);
}

type Launch =
  | {
    ok: true;
    child: Deno.ChildProcess;
    logText: () => string;
    drained: Promise<void>;
  }
  | { ok: false; log: string };

async function launch(
  configPath: string,
  logPath: string,
  host: string,
  port: number,
): Promise<Launch> {
  const child = new Deno.Command(SSHD, {
    args: ["-D", "-e", "-f", configPath],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const file = await Deno.open(logPath, {
    create: true,
    append: true,
  });
  let text = "";
  let notify = () => {};
  const drained = (async () => {
    const dec = new TextDecoder();
    try {
      for await (const chunk of child.stderr) {
        text += dec.decode(chunk, { stream: true });
        await file.write(chunk);
        notify();
      }
    } catch {
      /* pipe closed */
    } finally {
      file.close();
      notify();
    }
  })();
  let exited = false;
  child.status.then(() => {
    exited = true;
    notify();
  });
  const ready = `Server listening on ${host} port ${port}`;
  const deadline = Date.now() + 10_000;
  while (!text.includes(ready)) {
    if (exited || Date.now() > deadline) {
      if (!exited) {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }
      await child.status;
      await drained;
      return {
        ok: false,
        log: text || (exited ? "sshd exited without output" : "timed out"),
      };
    }
    await new Promise<void>((resolve) => {
      notify = resolve;
      setTimeout(resolve, 100);
    });
  }
  return { ok: true, child, logText: () => text, drained };
}

/** Writes a known_hosts file that trusts exactly these servers. */
export async function writeKnownHosts(
  path: string,
  servers: Pick<Sshd, "knownHostsLine">[],
): Promise<void> {
  await Deno.writeTextFile(
    path,
    servers.map((s) => s.knownHostsLine() + "\n").join(""),
  );
}
