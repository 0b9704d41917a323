/**
 * Is the suite slower after a change to the code's structure? The same
 * tests, run against a baseline commit's code and this commit's, in the
 * same run on the same machine: the test files whose content is identical
 * at both commits (so the tests are the same; only the code under them
 * differs), the CLI-heavy ones that spawn the program, daemons and fleets.
 * Each commit gets its own worktree, dependencies and dev artifact; the
 * rounds alternate between them so a change of load hits both alike.
 * Prints each round's wall time and the ratio this/baseline; asserts
 * nothing. Also times tests/cli/, the command unit tests that run without
 * spawning the program.
 *
 *   deno run -A bench/suite.ts [BASELINE=b070875] [ROUNDS=1]
 *
 * b070875 is the last commit before the architecture step (issue #14).
 */
const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const baseline = Deno.args[0] ?? "b070875";
const rounds = Number(Deno.args[1] ?? 1);

/** CLI-heavy files; those not identical at both commits are left out. */
const CANDIDATES = [
  "tests/e2e/completion_test.ts",
  "tests/e2e/daemon_control_test.ts",
  "tests/e2e/deploy_test.ts",
  "tests/e2e/doctor_test.ts",
  "tests/e2e/inbox_test.ts",
  "tests/e2e/local_fleet_test.ts",
  "tests/e2e/settings_test.ts",
  "tests/e2e/voyage_check_test.ts",
  "tests/e2e/voyage_plan_test.ts",
  "tests/e2e/voyage_test.ts",
];

async function sh(
  cmd: string,
  args: string[],
  cwd = root,
): Promise<string> {
  const r = await new Deno.Command(cmd, {
    args,
    cwd,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout);
  if (!r.success) {
    throw new Error(
      `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`,
    );
  }
  return out;
}

const blob = async (commit: string, file: string) =>
  (await sh("git", ["ls-tree", commit, "--", file])).split(/\s+/)[2] ?? "";

const head = (await sh("git", ["rev-parse", "--short", "HEAD"])).trim();
const files: string[] = [];
for (const f of CANDIDATES) {
  const a = await blob(baseline, f);
  if (a && a === await blob("HEAD", f)) files.push(f);
}
console.log(
  `same tests at ${baseline} and ${head}: ${files.length} files\n  ${
    files.join("\n  ")
  }`,
);

/** A worktree of `commit` with its dependencies and dev artifact. */
async function prepare(commit: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: `ohc-suite-${commit}-` });
  await sh("git", ["worktree", "add", "--detach", "--quiet", dir, commit]);
  await sh(Deno.execPath(), ["install", "--quiet"], dir);
  await sh(Deno.execPath(), ["run", "-A", "scripts/artifact.ts"], dir);
  return dir;
}

interface Run {
  ms: number;
  passed: number;
  failed: number;
}

async function runTests(dir: string, which: string[]): Promise<Run> {
  const t0 = performance.now();
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", "--parallel", ...which],
    cwd: dir,
    env: { NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const ms = performance.now() - t0;
  const text = new TextDecoder().decode(r.stdout) +
    new TextDecoder().decode(r.stderr);
  const m = text.match(/^(?:ok|FAILED) \| (\d+) passed.*\| (\d+) failed/m);
  return { ms, passed: Number(m?.[1] ?? 0), failed: Number(m?.[2] ?? 1) };
}

const dirs = new Map<string, string>();
try {
  for (const c of [baseline, "HEAD"]) dirs.set(c, await prepare(c));
  const totals = new Map<string, number>([[baseline, 0], ["HEAD", 0]]);
  for (let i = 1; i <= rounds; i++) {
    // Alternate who goes first, so a change of load falls on both.
    const order = i % 2 ? [baseline, "HEAD"] : ["HEAD", baseline];
    for (const c of order) {
      const r = await runTests(dirs.get(c)!, files);
      totals.set(c, totals.get(c)! + r.ms);
      console.log(
        `round ${i} ${c === "HEAD" ? head : c}: ${
          (r.ms / 1000).toFixed(1)
        } s, ${r.passed} passed, ${r.failed} failed`,
      );
    }
  }
  const ratio = totals.get("HEAD")! / totals.get(baseline)!;
  console.log(
    `\n${head} / ${baseline}: ${ratio.toFixed(2)} (below 1: faster; load: ${
      Deno.loadavg().map((x) => x.toFixed(1)).join(" ")
    })`,
  );
  const unit = await runTests(dirs.get("HEAD")!, ["tests/cli/"]);
  console.log(
    `tests/cli/ at ${head} (command unit tests, no spawning): ${unit.passed} passed in ${
      (unit.ms / 1000).toFixed(1)
    } s`,
  );
} finally {
  for (const dir of dirs.values()) {
    await sh("git", ["worktree", "remove", "--force", dir]).catch(() => {});
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
