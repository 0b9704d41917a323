/**
 * What a built ohcommodore holds of this checkout, for the standalone
 * artifact (scripts/standalone.ts) and the release binaries
 * (scripts/compile.ts): main.ts's module graph, the files it reads at run
 * time, and node_modules with one platform's DuckDB bindings only.
 */

export const root = new URL("..", import.meta.url).pathname.replace(
  /\/$/,
  "",
);

export async function sh(
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
  if (!r.success) {
    const err = new TextDecoder().decode(r.stderr).trim();
    throw new Error(`${cmd} ${args.join(" ")}: exit ${r.code}: ${err}`);
  }
  return new TextDecoder().decode(r.stdout);
}

/** The program's files, relative to the checkout: main.ts's module graph. */
export async function programFiles(): Promise<string[]> {
  const info = JSON.parse(
    await sh(Deno.execPath(), ["info", "--json", `${root}/main.ts`]),
  ) as { modules: { specifier: string }[] };
  const prefix = `file://${root}/`;
  const files = info.modules.map((m) => m.specifier)
    .filter((s) => s.startsWith(prefix))
    .map((s) => decodeURIComponent(s.slice(prefix.length)));
  // Read at run time, not imported (lib/bootstrap.ts), and the config.
  files.push("cloudinit/init.sh", "deno.json", "deno.lock");
  return [...new Set(files)].sort();
}

/** Copies these files of the checkout into `dest`, keeping their paths. */
export async function copyFiles(files: string[], dest: string): Promise<void> {
  for (const f of files) {
    const to = `${dest}/${f}`;
    await Deno.mkdir(to.slice(0, to.lastIndexOf("/")), { recursive: true });
    await Deno.copyFile(`${root}/${f}`, to);
  }
}

/** This machine's @duckdb/node-bindings-<platform> name part. */
export function hostPlatform(): string {
  const arch = Deno.build.arch === "aarch64" ? "arm64" : "x64";
  return `${Deno.build.os}-${arch}`;
}

/**
 * Removes every DuckDB bindings package but `node-bindings-<platform>`
 * (the musl build is as large as the glibc one) from a `deno install`ed
 * node_modules, and the links left dangling.
 */
export async function keepBindingsOf(
  nodeModules: string,
  platform: string,
): Promise<void> {
  const store = `${nodeModules}/.deno`;
  for await (const e of Deno.readDir(store)) {
    const m = e.name.match(/^@duckdb\+node-bindings-([^@]+)@/);
    if (m && m[1] !== platform) {
      await Deno.remove(`${store}/${e.name}`, { recursive: true });
    }
  }
  await sh("find", [nodeModules, "-xtype", "l", "-delete"]);
}

/** The bindings packages a node_modules holds, e.g. ["linux-x64"]. */
export async function bindingsIn(nodeModules: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(`${nodeModules}/.deno`)) {
    const m = e.name.match(/^@duckdb\+node-bindings-([^@]+)@/);
    if (m) out.push(m[1]);
  }
  return out.sort();
}
