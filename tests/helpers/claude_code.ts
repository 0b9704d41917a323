/**
 * The real Claude Code in tests: the pinned version from npm, installed by
 * `deno task agents:install` into `.agents/` (gitignored), or another build
 * named by `OHC_TEST_CLAUDE_BIN` (what `deno task agents:check` does with the
 * newest release). Tests that need it skip with a NOTICE where it is not
 * installed; under CI=true they run (and fail), like every other prereq.
 */
import { skipCheck } from "./prereq.ts";

export const CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code";
/** The version the suite runs; bump it after `deno task agents:check`. */
export const CLAUDE_CODE_VERSION = "2.1.332";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** Where `agents:install` puts a version (a small npm prefix). */
export function claudeCodeDir(version = CLAUDE_CODE_VERSION): string {
  return `${root}/.agents/claude-code-${version}`;
}

/** The `claude` executable inside an install prefix. */
export function claudeBinIn(dir: string): string {
  return `${dir}/node_modules/.bin/claude`;
}

/** The client the tests run: OHC_TEST_CLAUDE_BIN, else the pinned install; null if neither. */
export function realClaudeBin(): string | null {
  const given = Deno.env.get("OHC_TEST_CLAUDE_BIN");
  const bin = given || claudeBinIn(claudeCodeDir());
  try {
    return Deno.realPathSync(bin);
  } catch {
    return null;
  }
}

export const realClaudeSkip = skipCheck(
  "tests with the real Claude Code",
  "OHC_NOTICE_REAL_CLAUDE",
  () =>
    realClaudeBin() === null
      ? `Claude Code ${CLAUDE_CODE_VERSION} is not installed (deno task agents:install)`
      : null,
);

/**
 * A directory holding `claude` (the real client) that every user can run,
 * for PATH: the agent user of a root captain must reach it. The binary is
 * linked (or, across file systems, copied) into a 0755 directory when the
 * one it is in is not passable for everyone.
 */
export async function claudeBinDir(): Promise<string> {
  const bin = realClaudeBin();
  if (!bin) throw new Error("the real Claude Code is not installed");
  const dir = `${Deno.makeTempDirSync({ prefix: "ohc-claude-bin-" })}`;
  await Deno.chmod(dir, 0o755);
  if (everyoneCanRun(bin)) {
    await Deno.symlink(bin, `${dir}/claude`);
  } else {
    try {
      await Deno.link(bin, `${dir}/claude`);
    } catch {
      await Deno.copyFile(bin, `${dir}/claude`);
    }
    await Deno.chmod(`${dir}/claude`, 0o755);
  }
  globalThis.addEventListener("unload", () => {
    try {
      Deno.removeSync(dir, { recursive: true });
    } catch { /* best effort */ }
  });
  return dir;
}

function everyoneCanRun(path: string): boolean {
  const parts = path.split("/").filter(Boolean);
  for (let i = 0; i < parts.length; i++) {
    const p = "/" + parts.slice(0, i).join("/");
    if (((Deno.statSync(p).mode ?? 0) & 0o001) === 0) return false;
  }
  return ((Deno.statSync(path).mode ?? 0) & 0o005) === 0o005;
}
