/**
 * The standalone artifact: one executable file standing in for
 * `deno compile --self-extracting` where Deno's runtime (denort) cannot be
 * downloaded. A POSIX sh header, then a gzip'd tar holding this Deno, the
 * program's modules (main.ts's graph, deno.json, deno.lock,
 * cloudinit/init.sh) and this platform's node_modules (DuckDB's glibc
 * bindings, none of the others).
 *
 * On its first run it unpacks itself beside itself, as a self-extracting
 * binary does: `<dir>/.<name>/<hash>/`, or `$XDG_DATA_HOME/<name>/<hash>`
 * (default ~/.local/share) when that directory is not writable. It unpacks
 * into a temporary directory and renames it into place, so concurrent
 * first runs are safe: one rename wins, the others drop their copy. Then it
 * runs the program with that Deno, `--cached-only`, and sets
 * OHCOMMODORE_BINARY to itself, as the dev artifact does. The header needs
 * only sh, readlink, dirname, basename, mkdir, tail, gzip, tar, mv and rm.
 *
 * Built once per content: the key (Deno, every module, the lockfile) is
 * kept beside the file, and a rebuild with the same key does nothing.
 */
import {
  copyFiles,
  hostPlatform,
  keepBindingsOf,
  programFiles,
  root,
  sh,
} from "./program_tree.ts";

/** Names the format in the key (the scripts' own text is in it too). */
const FORMAT = "standalone-1";

async function sha256(data: Uint8Array | string): Promise<string> {
  const bytes = typeof data === "string"
    ? new TextEncoder().encode(data)
    : data;
  const d = await crypto.subtle.digest("SHA-256", bytes as BufferSource);
  return Array.from(new Uint8Array(d), (x) => x.toString(16).padStart(2, "0"))
    .join("");
}

/** The key of a build: Deno, every file of the program, the lockfile. */
async function buildKey(files: string[], gzip: boolean): Promise<string> {
  const deno = Deno.execPath();
  const st = await Deno.stat(deno);
  const parts = [
    FORMAT,
    gzip ? "gzip" : "tar",
    Deno.version.deno,
    `${deno} ${st.size} ${st.mtime?.getTime()}`,
    hostPlatform(),
  ];
  // The program, and how it is packed (this script and its helper).
  for (
    const f of [...files, "scripts/standalone.ts", "scripts/program_tree.ts"]
  ) {
    parts.push(`${f} ${await sha256(await Deno.readFile(`${root}/${f}`))}`);
  }
  return await sha256(parts.join("\n"));
}

async function copyProgram(files: string[], app: string): Promise<void> {
  await copyFiles(files, app);
  // node_modules as `deno install` laid it out, this platform's only.
  await sh("cp", ["-a", `${root}/node_modules`, `${app}/node_modules`]);
  await keepBindingsOf(`${app}/node_modules`, hostPlatform());
}

const quote = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** The sh header; `skip` is its own length in bytes. */
function header(hash: string, skip: number, gzip: boolean): string {
  return `#!/bin/sh
# ohcommodore standalone artifact (deno task artifact --standalone): Deno, the
# program and its node_modules in a ${
    gzip ? "gzip'd " : ""
  }tar after this header, unpacked on
# the first run beside this file (like deno compile --self-extracting).
set -e
hash=${hash}
skip=${skip}
self=$(readlink -f "$0")
name=$(basename "$self")
base="$(dirname "$self")/.$name"
if [ ! -d "$base/$hash" ] && ! { mkdir -p "$base" 2>/dev/null && [ -w "$base" ]; }; then
  base="\${XDG_DATA_HOME:-$HOME/.local/share}/$name"
fi
dir="$base/$hash"
if [ ! -d "$dir" ]; then
  mkdir -p "$base"
  tmp="$base/.$hash.$$"
  rm -rf "$tmp"
  mkdir "$tmp"
  if ! tail -c +$((skip + 1)) "$self" | ${
    gzip ? "gzip -dc | " : ""
  }tar -x --no-same-owner -C "$tmp" -f -; then
    rm -rf "$tmp"
    echo "$name: cannot unpack into $base" >&2
    exit 1
  fi
  # Whoever renames first wins; the others drop their copy.
  mv -T "$tmp" "$dir" 2>/dev/null || rm -rf "$tmp"
fi
OHCOMMODORE_BINARY="\${OHCOMMODORE_BINARY:-$self}"
DENO_DIR="$dir/cache"
[ -w "$dir" ] || DENO_DIR="\${XDG_CACHE_HOME:-$HOME/.cache}/$name-$hash"
export OHCOMMODORE_BINARY DENO_DIR
# Lazy dynamic imports: see scripts/artifact.ts.
exec "$dir/deno" run -A --quiet --no-prompt --unstable-lazy-dynamic-imports --cached-only --node-modules-dir=manual --config "$dir/app/deno.json" "$dir/app/main.ts" "$@"
`;
}

function headerFor(hash: string, gzip: boolean): string {
  let skip = 0;
  for (;;) {
    const h = header(hash, skip, gzip);
    const n = new TextEncoder().encode(h).length;
    if (n === skip) return h;
    skip = n;
  }
}

/**
 * Writes the standalone artifact at `out` unless the one there was built
 * from the same content; returns whether it built. Concurrent callers wait
 * on a lock beside it. `gzip: false` leaves the tar uncompressed, as a
 * compiled release embeds its files (bench/deploy.ts uses that).
 */
export async function buildStandalone(
  out: string,
  opts: { gzip: boolean; log?: (m: string) => void } = { gzip: true },
): Promise<boolean> {
  const log = opts.log ?? ((m: string) => console.error(m));
  const outDir = out.slice(0, out.lastIndexOf("/"));
  await Deno.mkdir(outDir, { recursive: true });
  using lock = await Deno.open(`${out}.lock`, {
    create: true,
    write: true,
  });
  await lock.lock(true);
  const files = await programFiles();
  const key = await buildKey(files, opts.gzip);
  const keyFile = `${out}.key`;
  const had = await Deno.readTextFile(keyFile).catch(() => "");
  const present = await Deno.stat(out).then(() => true, () => false);
  if (had.trim() === key && present) return false;

  const stage = await Deno.makeTempDir({ dir: outDir, prefix: ".stage-" });
  try {
    log(`building the standalone artifact (${files.length} files)`);
    await Deno.mkdir(`${stage}/tree/app`, { recursive: true });
    await Deno.copyFile(Deno.execPath(), `${stage}/tree/deno`);
    await Deno.chmod(`${stage}/tree/deno`, 0o755);
    await copyProgram(files, `${stage}/tree/app`);
    // Reproducible: the same content gives the same bytes, so VMs that
    // hold it are not sent it again.
    await sh("sh", [
      "-c",
      `tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C ${
        quote(`${stage}/tree`)
      } -cf - .${opts.gzip ? " | gzip -n -6" : ""} > ${
        quote(`${stage}/payload.tgz`)
      }`,
    ]);
    const payload = await Deno.readFile(`${stage}/payload.tgz`);
    const hash = (await sha256(payload)).slice(0, 20);
    const head = new TextEncoder().encode(headerFor(hash, opts.gzip));
    const whole = new Uint8Array(head.length + payload.length);
    whole.set(head);
    whole.set(payload, head.length);
    const tmp = `${out}.tmp.${Deno.pid}`;
    await Deno.writeFile(tmp, whole, { mode: 0o755 });
    await Deno.chmod(tmp, 0o755);
    await Deno.rename(tmp, out);
    await Deno.writeTextFile(keyFile, key + "\n");
    log(
      `${out}: ${(payload.length / 1e6).toFixed(1)} MB (payload ${hash})`,
    );
    return true;
  } finally {
    await Deno.remove(stage, { recursive: true }).catch(() => {});
  }
}
