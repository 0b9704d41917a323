/**
 * `deno task demo`: sails examples/plans/demo on 3 local ships (shell
 * tasks; no cloud account, no network), shows progress, verifies the
 * result, clones it for you to look at, and sinks the fleet.
 */
const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const built = await new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", `${root}/scripts/artifact.ts`],
  stdout: "null",
}).output();
if (!built.success) Deno.exit(1);
const bin = `${root}/dist/dev/ohcommodore`;
const home = await Deno.makeTempDir({ prefix: "ohc-demo-" });
const env = { HOME: home, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };

async function ohc(args: string[], quiet = false): Promise<string> {
  if (!quiet) console.log(`$ ohcommodore ${args.join(" ")}`);
  const r = await new Deno.Command(bin, {
    args,
    env,
    clearEnv: true,
    cwd: home,
    stdin: "null",
    stdout: "piped",
    stderr: quiet ? "piped" : "inherit",
  }).output();
  const text = new TextDecoder().decode(r.stdout);
  if (!r.success) {
    console.error(text + new TextDecoder().decode(r.stderr));
    console.error(`demo step failed (exit ${r.code}); the fleet is in ${home}`);
    Deno.exit(1);
  }
  if (!quiet) console.log(text.trimEnd());
  return text;
}

const started = performance.now();
try {
  await ohc(["init", "--provider", "local"]);
  const sail = JSON.parse(
    await ohc([
      "voyage",
      "sail",
      `${root}/examples/plans/demo`,
      "--agent",
      "shell",
      "--ships",
      "3",
      "--json",
    ]),
  );
  const id: string = sail.id;
  let last = "";
  let state = "running";
  while (["planning", "running", "complete"].includes(state)) {
    const s = JSON.parse(await ohc(["voyage", "status", id, "--json"], true));
    state = s.voyage.state;
    const c = s.counts;
    const line =
      `  ${state}: ${c.done} done, ${c.running} running, ${c.pending} pending, ${c.failed} failed`;
    if (line !== last) console.log(line);
    last = line;
    await new Promise((r) => setTimeout(r, 300));
  }
  await ohc(["voyage", "status", id]);
  await ohc(["voyage", "tasks", id]);
  const result = `${home}/result`;
  await ohc(["voyage", "clone", id, "-d", result]);
  const ok = state === "verified";
  console.log(
    `\n${ok ? "Verified" : "Voyage ended: " + state} in ${
      ((performance.now() - started) / 1000).toFixed(1)
    } s.`,
  );
  console.log(
    `Look at the result:\n  cat ${result}/REPORT.md\n  git -C ${result} log --oneline`,
  );
  if (!ok) Deno.exitCode = 1;
} finally {
  await ohc(["fleet", "sink", "--scuttle", "--force"], true).catch(() => {});
}
