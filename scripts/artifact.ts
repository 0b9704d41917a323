/**
 * Writes an artifact that stands in for the compiled binary in development
 * and tests (deno compile cannot fetch its runtime here); everything it runs
 * is the same source. Both set OHCOMMODORE_BINARY to themselves, so VMs get
 * a copy of them, exactly as a compiled binary uploads itself. The path is
 * the last line printed.
 *
 *   deno task artifact [OUT]               dist/dev/ohcommodore: a small
 *       script running this checkout's main.ts with this Deno (fast; needs
 *       both on the machine that runs it).
 *   deno task artifact --standalone [OUT]  dist/standalone/ohcommodore: one
 *       file holding Deno, the program and its node_modules, like
 *       `deno compile --self-extracting` (scripts/standalone.ts); it runs on
 *       a machine that has nothing else.
 */
const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const standalone = Deno.args.includes("--standalone");
const rest = Deno.args.filter((a) => a !== "--standalone");
if (rest.length > 1 || rest.some((a) => a.startsWith("-"))) {
  console.error("usage: deno task artifact [--standalone] [OUT]");
  Deno.exit(2);
}

if (standalone) {
  // Loaded only here: a VM copy of the checkout carries artifact.ts alone.
  const { buildStandalone } = await import("./standalone.ts");
  const out = rest[0] ?? `${root}/dist/standalone/ohcommodore`;
  await buildStandalone(out);
  console.log(out);
  Deno.exit(0);
}

const out = rest[0] ?? `${root}/dist/dev/ohcommodore`;
const deno = Deno.execPath();
const denoDir = Deno.env.get("DENO_DIR") ??
  `${Deno.env.get("HOME")}/.cache/deno`;

const q = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;
const script = `#!/bin/sh
# ohcommodore dev artifact (deno task artifact): runs ${root}/main.ts
OHCOMMODORE_BINARY="\${OHCOMMODORE_BINARY:-$(readlink -f "$0")}"
DENO_DIR="\${DENO_DIR:-${denoDir}}"
# On a VM whose user cannot write that cache, keep one in its own home.
[ -w "$DENO_DIR" ] || DENO_DIR="$HOME/.cache/deno"
export OHCOMMODORE_BINARY DENO_DIR
# Lazy dynamic imports: without it Deno loads the whole program's graph at
# every start, each module behind an await import() included.
exec ${
  q(deno)
} run -A --quiet --no-prompt --unstable-lazy-dynamic-imports --config ${
  q(`${root}/deno.json`)
} ${q(`${root}/main.ts`)} "$@"
`;
await Deno.mkdir(out.slice(0, out.lastIndexOf("/")), { recursive: true });
const tmp = `${out}.tmp.${Deno.pid}`;
await Deno.writeTextFile(tmp, script, { mode: 0o755 });
await Deno.chmod(tmp, 0o755);
await Deno.rename(tmp, out);
console.log(out);
