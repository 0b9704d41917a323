/**
 * Drives the real CLI as a user does: the dev artifact (same source as the
 * compiled binary), a scratch HOME, no inherited secrets.
 */
import { readPidfile, stillOurs } from "../../lib/daemon/pidfile.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
export const ARTIFACT = `${root}/dist/dev/ohcommodore`;

let built: Promise<void> | undefined;
/** Builds dist/dev/ohcommodore once per test process if it is missing. */
export function ensureArtifact(): Promise<void> {
  built ??= (async () => {
    try {
      await Deno.stat(ARTIFACT);
    } catch {
      const r = await new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${root}/scripts/artifact.ts`],
      }).output();
      if (!r.success) throw new Error("cannot build the dev artifact");
    }
  })();
  return built;
}

export interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

export interface CliOptions {
  stdin?: string;
  env?: Record<string, string>;
  cwd?: string;
  /** Kill it after this long and throw (a command that must not hang). */
  timeoutMs?: number;
}

export async function ohc(
  home: string,
  args: string[],
  opts: CliOptions = {},
): Promise<CliResult> {
  await ensureArtifact();
  const env: Record<string, string> = {
    HOME: home,
    PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
    ...opts.env,
  };
  const child = new Deno.Command(ARTIFACT, {
    args,
    env,
    clearEnv: true,
    cwd: opts.cwd ?? home,
    stdin: opts.stdin === undefined ? "null" : "piped",
    stdout: "piped",
    stderr: "piped",
    signal: opts.timeoutMs ? AbortSignal.timeout(opts.timeoutMs) : undefined,
  }).spawn();
  if (opts.stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(opts.stdin));
    await w.close();
  }
  const r = await child.output();
  if (opts.timeoutMs && r.signal === "SIGTERM") {
    throw new Error(
      `ohcommodore ${args.join(" ")} did not end within ${opts.timeoutMs} ms`,
    );
  }
  const dec = new TextDecoder();
  return {
    code: r.code,
    stdout: dec.decode(r.stdout),
    stderr: dec.decode(r.stderr),
  };
}

/** Like ohc, but throws with the output when the exit code is not 0. */
export async function ohcOk(
  home: string,
  args: string[],
  opts?: CliOptions,
): Promise<CliResult> {
  const r = await ohc(home, args, opts);
  if (r.code !== 0) {
    throw new Error(
      `ohcommodore ${
        args.join(" ")
      } exited ${r.code}\n${r.stdout}\n${r.stderr}`,
    );
  }
  return r;
}

export async function scratchHome(): Promise<string> {
  return await Deno.makeTempDir({ prefix: "ohc-home-" });
}

/** A git repository with one commit, for `ship create <path>`. */
export async function makeGitRepo(dir: string, files: Record<string, string> = {
  "README.md": "hello\n",
}): Promise<string> {
  await Deno.mkdir(dir, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text);
  }
  const git = async (...args: string[]) => {
    const r = await new Deno.Command("git", {
      args,
      cwd: dir,
      env: {
        GIT_AUTHOR_NAME: "t",
        GIT_AUTHOR_EMAIL: "t@example.com",
        GIT_COMMITTER_NAME: "t",
        GIT_COMMITTER_EMAIL: "t@example.com",
      },
    }).output();
    if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
  };
  await git("init", "-q", "-b", "main");
  await git("add", "-A");
  await git("commit", "-qm", "init");
  return dir;
}

export async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

export async function listDir(path: string): Promise<string[]> {
  const out: string[] = [];
  try {
    for await (const e of Deno.readDir(path)) out.push(e.name);
  } catch { /* missing: empty */ }
  return out.sort();
}

/**
 * A local fleet in a scratch HOME that sinks itself (stopping every daemon)
 * when the test is done: `await using f = await localFleet();`.
 */
export async function localFleet(
  ...ships: string[]
): Promise<{ home: string } & AsyncDisposable> {
  const home = await scratchHome();
  try {
    await ohcOk(home, ["init", "--provider", "local"]);
    for (const s of ships) await ohcOk(home, ["ship", "create", s]);
  } catch (e) {
    // Nobody will dispose of a fleet that was never returned: its daemons
    // would outlive the test (and hold whatever file descriptors it had).
    await teardown(home);
    throw e;
  }
  return { home, [Symbol.asyncDispose]: () => teardown(home) };
}

/** Sinks whatever fleet lives in `home` and removes it. */
export async function teardown(home: string): Promise<void> {
  await ohc(home, ["fleet", "sink", "--scuttle", "--force"]);
  // Anything left (a test that broke the fleet on purpose): stop its daemons.
  const root = `${home}/.ohcommodore/local`;
  for (const vm of await listDir(root)) {
    await killPidfiles(`${root}/${vm}/.ohcommodore/run`);
  }
  await Deno.remove(home, { recursive: true }).catch(() => {});
}

async function killPidfiles(dir: string) {
  for (const f of await listDir(dir)) {
    if (!f.endsWith(".pid")) continue;
    const rec = await readPidfile(`${dir}/${f}`);
    if (!rec || (rec.start !== null && !(await stillOurs(rec)))) continue;
    try {
      Deno.kill(-rec.pid, "SIGKILL");
    } catch { /* gone */ }
  }
}
