/**
 * Cold start of the CLI as a ratio to `deno run` of an empty script, in the
 * same run: `ohcommodore --version` and `ohcommodore fleet status --json`
 * (on the local provider, which includes the RPC hop to the flagship).
 * Goal from the foundation issue: at most 3.5 for both.
 *
 *   deno run -A bench/startup.ts [runs=15]
 */
const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const runs = Number(Deno.args[0] ?? 15);
const artifact = `${root}/dist/dev/ohcommodore`;
await new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", `${root}/scripts/artifact.ts`],
  stdout: "null",
}).output();

const home = await Deno.makeTempDir({ prefix: "ohc-bench-" });
const empty = `${home}/empty.ts`;
await Deno.writeTextFile(empty, "");
const env = { HOME: home, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };

async function time(cmd: string, args: string[]): Promise<number> {
  const t0 = performance.now();
  const r = await new Deno.Command(cmd, {
    args,
    env,
    clearEnv: true,
    cwd: home,
  })
    .output();
  const ms = performance.now() - t0;
  if (!r.success) {
    throw new Error(
      `${cmd} ${args.join(" ")}: ${new TextDecoder().decode(r.stderr)}`,
    );
  }
  return ms;
}

async function median(cmd: string, args: string[]): Promise<number> {
  await time(cmd, args); // warm the module cache, as an installed binary has it
  const xs: number[] = [];
  for (let i = 0; i < runs; i++) xs.push(await time(cmd, args));
  xs.sort((a, b) => a - b);
  return xs[Math.floor(xs.length / 2)];
}

await time(artifact, ["init", "--provider", "local"]);
await time(artifact, ["ship", "create", "alpha"]);

const base = await median(Deno.execPath(), ["run", "-A", empty]);
const version = await median(artifact, ["--version"]);
const status = await median(artifact, ["fleet", "status", "--json"]);
const row = (name: string, ms: number) =>
  `${name.padEnd(36)} ${ms.toFixed(1).padStart(7)} ms  ratio ${
    (ms / base).toFixed(2)
  }`;
console.log(`median of ${runs} cold starts`);
console.log(row("deno run <empty script> (baseline)", base));
console.log(row("ohcommodore --version", version));
console.log(row("ohcommodore fleet status --json", status));
console.log(`goal: ratio <= 3.5`);
await Deno.remove(home, { recursive: true }).catch(() => {});
