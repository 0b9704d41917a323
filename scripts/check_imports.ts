/**
 * The module graph's rules (issue #14): no file under lib/ imports roles/;
 * no import cycle, type-only imports and dynamic `import()` included (a
 * cycle through a type is still two modules that cannot be understood
 * apart); and the process's HOME is read only where a process starts
 * (lib/process_home.ts is imported by the entry modules alone).
 * Prints one line per breach; exit 1 when there is one.
 *
 *   deno run -A scripts/check_imports.ts [ROOT]
 */

/** Relative specifiers a module imports, however it imports them. */
export function importsOf(source: string): string[] {
  const code = source
    .replace(/\/\*[\s\S]*?\*\//g, "")
    .replace(/(^|[^:"'`\\])\/\/.*$/gm, "$1");
  const found = new Set<string>();
  const patterns = [
    // import x from "..."; import type { X } from "..."; export * from "..."
    /\b(?:import|export)\b[^;"'`]*?\bfrom\s*["']([^"']+)["']/g,
    // import "...";
    /\bimport\s*["']([^"']+)["']/g,
    // import("...") and typeof import("...")
    /\bimport\s*\(\s*["']([^"']+)["']\s*\)/g,
  ];
  for (const re of patterns) {
    for (const m of code.matchAll(re)) {
      if (m[1].startsWith(".")) found.add(m[1]);
    }
  }
  return [...found];
}

/** `spec` from the file `from`, as a path relative to the root. */
function resolve(from: string, spec: string): string {
  const parts = from.split("/").slice(0, -1);
  for (const p of spec.split("/")) {
    if (p === "..") parts.pop();
    else if (p !== ".") parts.push(p);
  }
  return parts.join("/");
}

/** Where a process starts: the only importers of the process's HOME. */
const PROCESS_HOME = "lib/process_home.ts";
const ENTRIES = ["main.ts", "lib/cli/run.ts"];

export interface Breach {
  kind: "lib_imports_roles" | "cycle" | "home_below_entry";
  /** The importer and what it imports; for a cycle, the modules in order. */
  modules: string[];
}

/** The breaches in a graph of root-relative paths to what they import. */
export function breaches(graph: Map<string, string[]>): Breach[] {
  const out: Breach[] = [];
  for (const [file, deps] of graph) {
    if (deps.includes(PROCESS_HOME) && !ENTRIES.includes(file)) {
      out.push({ kind: "home_below_entry", modules: [file, PROCESS_HOME] });
    }
    if (!file.startsWith("lib/")) continue;
    for (const d of deps) {
      if (d.startsWith("roles/")) {
        out.push({ kind: "lib_imports_roles", modules: [file, d] });
      }
    }
  }
  // Tarjan's strongly connected components; each with more than one
  // module (or a module importing itself) is a cycle.
  let index = 0;
  const idx = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const visit = (v: string) => {
    idx.set(v, index);
    low.set(v, index++);
    stack.push(v);
    onStack.add(v);
    for (const w of graph.get(v) ?? []) {
      if (!graph.has(w)) continue;
      if (!idx.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v)!, low.get(w)!));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v)!, idx.get(w)!));
    }
    if (low.get(v) === idx.get(v)) {
      const scc: string[] = [];
      let w: string;
      do {
        w = stack.pop()!;
        onStack.delete(w);
        scc.push(w);
      } while (w !== v);
      if (scc.length > 1 || (graph.get(v) ?? []).includes(v)) {
        out.push({ kind: "cycle", modules: cyclePath(graph, scc) });
      }
    }
  };
  for (const v of [...graph.keys()].sort()) if (!idx.has(v)) visit(v);
  return out;
}

/** One concrete cycle through a component, for a readable message. */
function cyclePath(graph: Map<string, string[]>, scc: string[]): string[] {
  const inScc = new Set(scc);
  const start = [...scc].sort()[0];
  const prev = new Map<string, string>();
  const queue = [start];
  while (queue.length) {
    const v = queue.shift()!;
    for (const w of graph.get(v) ?? []) {
      if (!inScc.has(w)) continue;
      if (w === start) {
        const path = [v];
        while (path[0] !== start) path.unshift(prev.get(path[0])!);
        return [...path, start];
      }
      if (!prev.has(w)) {
        prev.set(w, v);
        queue.push(w);
      }
    }
  }
  return [...scc, scc[0]];
}

/** The graph of every .ts file under lib/ and roles/, and main.ts. */
export async function readGraph(root: string): Promise<Map<string, string[]>> {
  const graph = new Map<string, string[]>();
  const add = async (rel: string) => {
    const src = await Deno.readTextFile(`${root}/${rel}`);
    graph.set(rel, importsOf(src).map((s) => resolve(rel, s)));
  };
  const walk = async (dir: string) => {
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(`${root}/${dir}`)];
    } catch {
      return;
    }
    for (const e of entries) {
      const rel = `${dir}/${e.name}`;
      if (e.isDirectory) await walk(rel);
      else if (e.isFile && rel.endsWith(".ts")) await add(rel);
    }
  };
  await walk("lib");
  await walk("roles");
  await add("main.ts").catch(() => {});
  return graph;
}

export function describe(b: Breach): string {
  return b.kind === "cycle"
    ? `import cycle: ${b.modules.join(" -> ")}`
    : b.kind === "home_below_entry"
    ? `reads the process's HOME below an entry: ${b.modules[0]} -> ${
      b.modules[1]
    } (take the machine's home as a parameter)`
    : `lib/ imports roles/: ${b.modules[0]} -> ${b.modules[1]}`;
}

if (import.meta.main) {
  const root = Deno.args[0] ??
    new URL("..", import.meta.url).pathname.replace(/\/$/, "");
  const found = breaches(await readGraph(root));
  for (const b of found) console.error(describe(b));
  if (found.length) {
    console.error(`check_imports: ${found.length} breach(es)`);
    Deno.exit(1);
  }
}
