/**
 * The real agent clients the test suite runs.
 *
 *   deno task agents:install   the pinned Claude Code (tests/helpers/claude_code.ts)
 *                              from npm into .agents/claude-code-<version>/;
 *                              prints the `claude` path last
 *   deno task agents:check     the newest Claude Code from npm into a scratch
 *                              dir, the real-client e2e tests run against it,
 *                              and what changed since the pinned version
 *                              (flags in --help, stream-json events and fields)
 *
 * npm is the ordinary client for the registry; the package brings its
 * native binary through a per-platform optional dependency.
 */
import {
  CLAUDE_CODE_PACKAGE,
  CLAUDE_CODE_VERSION,
  claudeBinIn,
  claudeCodeDir,
} from "../tests/helpers/claude_code.ts";

const dec = new TextDecoder();

async function run(
  cmd: string,
  args: string[],
  opts: { env?: Record<string, string>; cwd?: string; inherit?: boolean } = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, {
    args,
    env: opts.env,
    cwd: opts.cwd,
    stdin: "null",
    stdout: opts.inherit ? "inherit" : "piped",
    stderr: opts.inherit ? "inherit" : "piped",
  }).output();
  return {
    code: out.code,
    stdout: opts.inherit ? "" : dec.decode(out.stdout),
    stderr: opts.inherit ? "" : dec.decode(out.stderr),
  };
}

/** `claude --version`'s number, or null when it does not run. */
export async function versionOf(bin: string): Promise<string | null> {
  try {
    const r = await run(bin, ["--version"]);
    return r.code === 0 ? (/^(\S+)/.exec(r.stdout.trim())?.[1] ?? null) : null;
  } catch {
    return null;
  }
}

/** Installs `version` into `dir` (a small npm prefix) unless it is there; the binary. */
export async function installClaudeCode(
  version: string,
  dir: string,
): Promise<string> {
  const bin = claudeBinIn(dir);
  if (await versionOf(bin) === version) return bin;
  const tmp = `${dir}.tmp-${Deno.pid}`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await Deno.mkdir(tmp, { recursive: true });
  await Deno.writeTextFile(
    `${tmp}/package.json`,
    JSON.stringify({ name: "ohcommodore-agents", private: true }) + "\n",
  );
  console.error(
    `==> npm install ${CLAUDE_CODE_PACKAGE}@${version} into ${dir}`,
  );
  const r = await run("npm", [
    "install",
    "--prefix",
    tmp,
    "--no-audit",
    "--no-fund",
    "--loglevel=error",
    `${CLAUDE_CODE_PACKAGE}@${version}`,
  ]);
  if (r.code !== 0) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw new Error(`npm install failed (exit ${r.code}): ${r.stderr.trim()}`);
  }
  const got = await versionOf(claudeBinIn(tmp));
  if (got !== version) {
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
    throw new Error(
      `the installed claude reports ${got ?? "nothing"}, not ${version}`,
    );
  }
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, dir);
  return bin;
}

/** The newest version on the registry (`npm view`). */
export async function newestVersion(): Promise<string> {
  const r = await run("npm", ["view", CLAUDE_CODE_PACKAGE, "version"]);
  const v = r.stdout.trim();
  if (r.code !== 0 || !/^\d+\.\d+\.\d+/.test(v)) {
    throw new Error(
      `npm view ${CLAUDE_CODE_PACKAGE} version failed: ${r.stderr.trim()}`,
    );
  }
  return v;
}

async function main(args: string[]): Promise<number> {
  const [cmd, ...rest] = args;
  if (cmd === "install") {
    if (rest.length > 0) {
      console.error("usage: deno task agents:install");
      return 2;
    }
    const bin = await installClaudeCode(CLAUDE_CODE_VERSION, claudeCodeDir());
    console.log(bin);
    return 0;
  }
  if (cmd === "check") {
    if (rest.length > 0) {
      console.error("usage: deno task agents:check");
      return 2;
    }
    const { check } = await import("./agents_check.ts");
    return await check({ newestVersion, installClaudeCode, versionOf });
  }
  console.error("usage: deno run -A scripts/agents.ts install|check");
  return 2;
}

if (import.meta.main) {
  try {
    Deno.exit(await main(Deno.args));
  } catch (e) {
    console.error(`agents: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
