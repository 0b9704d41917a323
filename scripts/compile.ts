/**
 * Builds a release (lib/release.ts): `<out>/ohcommodore-<target>` for
 * Linux and macOS on x86_64 and aarch64, and `<out>/SHA256SUMS` over every
 * binary there. Publish the directory as it is; VMs given its URL
 * (OHCOMMODORE_RELEASE_URL) download their binary from it.
 *
 *   deno task compile [--out DIR] [TARGET ...]     (default: dist/, every target)
 *
 * Each target is compiled from a scratch copy of the program whose
 * node_modules holds that target's DuckDB bindings only: `deno install
 * --os <os> --arch <arch>` fetches them (only direct dependencies are
 * linked at the top of node_modules, and the host's install holds the
 * host's bindings, glibc and musl), then every other bindings package is
 * removed. `--self-extracting` unpacks the tree beside the binary on its
 * first run, so DuckDB's addon finds libduckdb next to it
 * (denoland/deno#29203).
 *
 * `deno compile` downloads its runtime (denort) per version and target
 * from dl.deno.land; where that cannot be reached, set DENORT_BIN to a
 * denort of this Deno's version for the target (one target per run then).
 */
import {
  RELEASE_TARGETS,
  releaseBinary,
  sha256sums,
  SUMS_FILE,
} from "../lib/release.ts";
import {
  bindingsIn,
  copyFiles,
  keepBindingsOf,
  programFiles,
  root,
  sh,
} from "./program_tree.ts";

const USAGE = `usage: deno task compile [--out DIR] [TARGET ...]
targets: ${Object.keys(RELEASE_TARGETS).join(", ")} (default: all)`;

function usage(message: string): never {
  console.error(`error: ${message}\n${USAGE}`);
  Deno.exit(2);
}

function parseArgs(args: string[]): { out: string; targets: string[] } {
  let out = `${root}/dist`;
  const targets: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--help" || a === "-h") {
      console.log(USAGE);
      Deno.exit(0);
    } else if (a === "--out") {
      if (!args[i + 1]) usage("--out needs a directory");
      out = args[++i];
    } else if (a.startsWith("-")) {
      usage(`unknown option ${a}`);
    } else if (!RELEASE_TARGETS[a]) {
      usage(`unknown target ${a}`);
    } else if (!targets.includes(a)) {
      targets.push(a);
    }
  }
  return {
    out: out.replace(/\/+$/, "") || "/",
    targets: targets.length ? targets : Object.keys(RELEASE_TARGETS),
  };
}

/**
 * Whether `deno compile` can get denort for `target`: DENORT_BIN, a
 * cached download, or dl.deno.land answering.
 */
async function runtimeReachable(target: string): Promise<boolean> {
  if (Deno.env.get("DENORT_BIN")) return true;
  const file = `release/v${Deno.version.deno}/denort-${target}.zip`;
  const denoDir = Deno.env.get("DENO_DIR") ??
    `${Deno.env.get("HOME")}/.cache/deno`;
  try {
    await Deno.stat(`${denoDir}/dl/${file}`);
    return true;
  } catch { /* not cached */ }
  try {
    const r = await fetch(`https://dl.deno.land/${file}`, {
      method: "HEAD",
      signal: AbortSignal.timeout(10_000),
    });
    return r.ok;
  } catch {
    return false;
  }
}

async function sha256Hex(path: string): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", await Deno.readFile(path));
  return Array.from(new Uint8Array(d), (x) => x.toString(16).padStart(2, "0"))
    .join("");
}

async function compileTarget(
  target: string,
  files: string[],
  out: string,
): Promise<void> {
  const platform = RELEASE_TARGETS[target];
  const [os, arch] = platform.split("-");
  const scratch = await Deno.makeTempDir({ prefix: `ohc-compile-${target}-` });
  try {
    await copyFiles(files, scratch);
    console.error(`==> ${target}: deno install --os ${os} --arch ${arch}`);
    await sh(Deno.execPath(), ["install", "--os", os, "--arch", arch], scratch);
    await keepBindingsOf(`${scratch}/node_modules`, platform);
    const have = await bindingsIn(`${scratch}/node_modules`);
    if (have.join() !== platform) {
      throw new Error(
        `${target}: expected DuckDB bindings for ${platform} only, found ${
          have.join(", ") || "none"
        }`,
      );
    }
    const binary = `${out}/${releaseBinary(target)}`;
    const tmp = `${out}/.${releaseBinary(target)}.tmp`;
    console.error(`==> ${target}: deno compile`);
    // manual: embed node_modules as pruned, not set up again; the type
    // check is `deno task check`'s.
    await sh(Deno.execPath(), [
      "compile",
      "-A",
      "--no-check",
      "--self-extracting",
      "--node-modules-dir=manual",
      "--target",
      target,
      "--output",
      tmp,
      "--include",
      "cloudinit/init.sh",
      "main.ts",
    ], scratch);
    await Deno.rename(tmp, binary);
    const size = (await Deno.stat(binary)).size;
    console.log(`${binary}: ${(size / 1e6).toFixed(1)} MB`);
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}

/** SHA256SUMS over every release binary in `out`. */
async function writeSums(out: string): Promise<void> {
  const sums: Record<string, string> = {};
  for (const target of Object.keys(RELEASE_TARGETS)) {
    const name = releaseBinary(target);
    try {
      sums[name] = await sha256Hex(`${out}/${name}`);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
  }
  const tmp = `${out}/.${SUMS_FILE}.tmp`;
  await Deno.writeTextFile(tmp, sha256sums(sums));
  await Deno.rename(tmp, `${out}/${SUMS_FILE}`);
  console.log(`${out}/${SUMS_FILE}: ${Object.keys(sums).length} binaries`);
}

if (import.meta.main) {
  const { out, targets } = parseArgs(Deno.args);
  if (Deno.env.get("DENORT_BIN") && targets.length > 1) {
    usage("with DENORT_BIN (one runtime), name one target");
  }
  for (const target of targets) {
    if (!(await runtimeReachable(target))) {
      console.error(
        `error: deno compile needs Deno's runtime for ${target} from dl.deno.land, which cannot be reached: set DENORT_BIN to a denort ${Deno.version.deno} for ${target}`,
      );
      Deno.exit(1);
    }
  }
  await Deno.mkdir(out, { recursive: true });
  const files = await programFiles();
  try {
    for (const target of targets) await compileTarget(target, files, out);
  } catch (e) {
    const lines = (e as Error).message.trim().split("\n");
    console.error(
      `error: ${lines[0]}${lines.length > 1 ? `: ${lines.at(-1)}` : ""}`,
    );
    Deno.exit(1);
  } finally {
    await writeSums(out);
  }
}
