/**
 * Writes the dev artifact: dist/dev/ohcommodore, a small executable that runs
 * this checkout's main.ts with this Deno. It stands in for the compiled
 * binary in development and tests (deno compile cannot fetch its runtime
 * here); everything it runs is the same source. It sets OHCOMMODORE_BINARY
 * to itself, so VMs get a copy of it, exactly as a compiled binary uploads
 * itself.
 */
const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const out = Deno.args[0] ?? `${root}/dist/dev/ohcommodore`;
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
exec ${q(deno)} run -A --quiet --no-prompt --config ${q(`${root}/deno.json`)} ${
  q(`${root}/main.ts`)
} "$@"
`;
await Deno.mkdir(out.slice(0, out.lastIndexOf("/")), { recursive: true });
const tmp = `${out}.tmp.${Deno.pid}`;
await Deno.writeTextFile(tmp, script, { mode: 0o755 });
await Deno.chmod(tmp, 0o755);
await Deno.rename(tmp, out);
console.log(out);
