/**
 * What loading DuckDB costs a command: the median wall time of a cold
 * `deno run` (a new process each time) that imports @duckdb/node-api and
 * opens an in-memory database, against a `deno run` of an empty script.
 *
 *   deno run -A bench/duckdb_load.ts [--runs N]   (default 10)
 *
 * Runs are interleaved (empty, import, open, empty, ...) after one untimed
 * warm-up each, so Deno's module cache is warm and load noise is shared.
 * Each child also reports its own in-process timings (import, open).
 */

const ROOT = new URL("../", import.meta.url);
const CONFIG = new URL("deno.json", ROOT).pathname;

const SCRIPTS: Record<string, string> = {
  empty: `export {};\n`,
  import: `const t0 = performance.now();
const m = await import("@duckdb/node-api");
const t1 = performance.now();
if (!m.DuckDBInstance) throw new Error("no DuckDBInstance");
console.log(JSON.stringify({ import_ms: t1 - t0 }));
`,
  "import+open": `const t0 = performance.now();
const { DuckDBInstance } = await import("@duckdb/node-api");
const t1 = performance.now();
const db = await DuckDBInstance.create(":memory:");
const conn = await db.connect();
await conn.run("SELECT 1");
conn.closeSync();
db.closeSync();
const t2 = performance.now();
console.log(JSON.stringify({ import_ms: t1 - t0, open_ms: t2 - t1 }));
`,
};

function parseRuns(args: string[]): number {
  const i = args.indexOf("--runs");
  if (i === -1) return 10;
  const n = Number(args[i + 1]);
  if (!Number.isInteger(n) || n < 1) {
    console.error(`--runs needs a positive integer, got ${args[i + 1]}`);
    Deno.exit(2);
  }
  return n;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const mid = Math.floor(s.length / 2);
  return s.length % 2 ? s[mid] : (s[mid - 1] + s[mid]) / 2;
}

async function runOnce(
  file: string,
): Promise<{ wall: number; inner: Record<string, number> }> {
  const t0 = performance.now();
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--config", CONFIG, file],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const wall = performance.now() - t0;
  const stdout = new TextDecoder().decode(out.stdout).trim();
  if (!out.success) {
    throw new Error(
      `${file} failed (${out.code}): ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return { wall, inner: stdout ? JSON.parse(stdout) : {} };
}

async function main(): Promise<void> {
  const runs = parseRuns(Deno.args);
  const dir = await Deno.makeTempDir({ prefix: "duckdb_load_" });
  try {
    const files: Record<string, string> = {};
    for (const [name, code] of Object.entries(SCRIPTS)) {
      files[name] = `${dir}/${name.replace("+", "_")}.ts`;
      await Deno.writeTextFile(files[name], code);
      await runOnce(files[name]); // warm-up: module cache, page cache
    }
    const wall: Record<string, number[]> = {};
    const inner: Record<string, Record<string, number[]>> = {};
    for (let i = 0; i < runs; i++) {
      for (const name of Object.keys(SCRIPTS)) {
        const r = await runOnce(files[name]);
        (wall[name] ??= []).push(r.wall);
        for (const [k, v] of Object.entries(r.inner)) {
          ((inner[name] ??= {})[k] ??= []).push(v);
        }
      }
    }
    console.log(
      `cold \`deno run\` wall time, ${runs} runs each (Deno ${Deno.version.deno})`,
    );
    for (const name of Object.keys(SCRIPTS)) {
      const xs = wall[name];
      const extra = Object.entries(inner[name] ?? {})
        .map(([k, v]) => `${k} ${median(v).toFixed(1)}`)
        .join(", ");
      console.log(
        `  ${name.padEnd(12)} median ${median(xs).toFixed(1).padStart(7)} ms` +
          `  (min ${Math.min(...xs).toFixed(1)}, max ${
            Math.max(...xs).toFixed(1)
          })` + (extra ? `  in-process: ${extra} ms` : ""),
      );
    }
    const ratio = median(wall["import+open"]) / median(wall.empty);
    const extraMs = median(wall["import+open"]) - median(wall.empty);
    console.log(
      `  ratio import+open / empty: ${ratio.toFixed(2)}x` +
        ` (+${extraMs.toFixed(1)} ms per command that loads DuckDB)`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await main();
