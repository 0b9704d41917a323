/**
 * Builds the release binaries: dist/ohcommodore-<target> for Linux and macOS
 * on x86_64 and aarch64. `deno compile` downloads its runtime (denort) from
 * Deno's servers the first time per target; machines without that access
 * (like our CI) cannot run this task. Set DENORT_BIN to a local denort to
 * build offline.
 *
 * DuckDB: its native addon (duckdb.node) needs libduckdb beside it, which a
 * compiled binary does not extract (denoland/deno#29203). We compile with
 * --self-extracting, which extracts the embedded tree with its layout, and
 * include each target's @duckdb/node-bindings-<platform> package.
 *
 *   deno task compile [target ...]
 */
const TARGETS: Record<string, string> = {
  "x86_64-unknown-linux-gnu": "linux-x64",
  "aarch64-unknown-linux-gnu": "linux-arm64",
  "x86_64-apple-darwin": "darwin-x64",
  "aarch64-apple-darwin": "darwin-arm64",
};

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const wanted = Deno.args.length ? Deno.args : Object.keys(TARGETS);
let failed = 0;
for (const target of wanted) {
  const platform = TARGETS[target];
  if (!platform) {
    console.error(
      `error: unknown target ${target}; one of: ${
        Object.keys(TARGETS).join(", ")
      }`,
    );
    Deno.exit(2);
  }
  const out = `${root}/dist/ohcommodore-${target}`;
  const bindings = `${root}/node_modules/@duckdb/node-bindings-${platform}`;
  const args = [
    "compile",
    "-A",
    "--self-extracting",
    "--target",
    target,
    "--output",
    out,
  ];
  try {
    await Deno.stat(bindings);
    args.push("--include", bindings);
  } catch {
    console.error(
      `warning: ${bindings} is missing; the ${target} binary will not load DuckDB`,
    );
  }
  args.push("--include", `${root}/cloudinit/init.sh`, `${root}/main.ts`);
  console.error(`==> ${target}`);
  const r = await new Deno.Command(Deno.execPath(), { args, cwd: root })
    .spawn().status;
  if (!r.success) failed++;
}
Deno.exit(failed ? 1 : 0);
