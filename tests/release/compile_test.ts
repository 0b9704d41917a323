/**
 * deno task compile (scripts/compile.ts): a release directory per target,
 * each binary with its own target's DuckDB bindings only, SHA256SUMS
 * beside them; offline without DENORT_BIN, one line naming DENORT_BIN.
 * Deno's runtime (denort) cannot be downloaded here, so the build runs with
 * DENORT_BIN set to this deno: the binary it makes starts Deno's REPL
 * instead of ohcommodore, but everything compile.ts does is real.
 */
import assert from "node:assert/strict";
import { releaseBinary, SUMS_FILE } from "../../lib/release.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const dec = new TextDecoder();

async function compile(args: string[], env: Record<string, string>) {
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `${root}/scripts/compile.ts`, ...args],
    cwd: root,
    env: {
      PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
      HOME: Deno.env.get("HOME") ?? "/root",
      ...env,
    },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: r.code,
    stdout: dec.decode(r.stdout),
    stderr: dec.decode(r.stderr),
  };
}

const exists = (p: string) => Deno.stat(p).then(() => true, () => false);

Deno.test("compile: offline without DENORT_BIN, one line naming DENORT_BIN and nothing built", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "ohc-compile-" });
  try {
    const r = await compile(["--out", `${tmp}/out`], {
      DENO_DIR: `${tmp}/deno-dir`, // no cached runtime
      HTTPS_PROXY: "http://127.0.0.1:9", // and no network
      HTTP_PROXY: "http://127.0.0.1:9",
    });
    assert.equal(r.code, 1, r.stderr);
    assert.equal(r.stdout, "");
    const lines = r.stderr.trim().split("\n");
    assert.equal(lines.length, 1, r.stderr);
    assert.match(
      lines[0],
      /^error: deno compile needs Deno's runtime for x86_64-unknown-linux-gnu from dl\.deno\.land, which cannot be reached: set DENORT_BIN to a denort \S+ for x86_64-unknown-linux-gnu$/,
    );
    assert.equal(await exists(`${tmp}/out`), false);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test("compile: misuse is exit 2 before anything", async () => {
  const tmp = await Deno.makeTempDir({ prefix: "ohc-compile-" });
  try {
    const bad = await compile(
      ["--out", `${tmp}/out`, "x86_64-pc-windows-msvc"],
      {},
    );
    assert.equal(bad.code, 2);
    assert.match(bad.stderr, /^error: unknown target x86_64-pc-windows-msvc\n/);
    const two = await compile(
      [
        "--out",
        `${tmp}/out`,
        "x86_64-unknown-linux-gnu",
        "aarch64-apple-darwin",
      ],
      { DENORT_BIN: Deno.execPath() },
    );
    assert.equal(two.code, 2);
    assert.match(
      two.stderr,
      /with DENORT_BIN \(one runtime\), name one target/,
    );
    assert.equal(await exists(`${tmp}/out`), false);
  } finally {
    await Deno.remove(tmp, { recursive: true });
  }
});

Deno.test({
  name:
    "compile: a target from a scratch copy holding its DuckDB bindings only, its size, and SHA256SUMS",
  ignore: Deno.build.target !== "x86_64-unknown-linux-gnu",
  async fn() {
    const tmp = await Deno.makeTempDir({ prefix: "ohc-compile-" });
    try {
      const out = `${tmp}/out`;
      await Deno.mkdir(`${tmp}/t`);
      const target = Deno.build.target;
      const r = await compile(["--out", out, target], {
        DENORT_BIN: Deno.execPath(),
        TMPDIR: `${tmp}/t`,
        DENO_DIR: Deno.env.get("DENO_DIR") ??
          `${Deno.env.get("HOME")}/.cache/deno`,
      });
      assert.equal(r.code, 0, r.stderr);
      const bin = `${out}/${releaseBinary(target)}`;
      const size = (await Deno.stat(bin)).size;
      assert.equal(
        r.stdout,
        `${bin}: ${
          (size / 1e6).toFixed(1)
        } MB\n${out}/${SUMS_FILE}: 1 binaries\n`,
      );
      // One libduckdb (about 70 MB) beside the runtime, not glibc's and musl's.
      const runtime = (await Deno.stat(Deno.execPath())).size;
      assert.ok(size - runtime > 60e6, `${size - runtime} bytes embedded`);
      assert.ok(size - runtime < 100e6, `${size - runtime} bytes embedded`);
      const check = await new Deno.Command("sha256sum", {
        args: ["-c", SUMS_FILE],
        cwd: out,
      }).output();
      assert.equal(dec.decode(check.stdout), `${releaseBinary(target)}: OK\n`);
      // Modules reached only through lazy imports are in it too (main.ts →
      // cli/run.ts → … → commands/voyage_shell.ts, whose tmux line this is):
      // with Deno's lazy dynamic imports on for compile, they are left out.
      const lazy = await new Deno.Command("grep", {
        args: ["-a", "-q", "-F", "new-session -A -s voyage -n captain", bin],
      }).output();
      assert.ok(lazy.success, "voyage_shell.ts is not in the binary");
      // The scratch copy is gone.
      assert.deepEqual([...Deno.readDirSync(`${tmp}/t`)], []);
    } finally {
      await Deno.remove(tmp, { recursive: true });
    }
  },
});
