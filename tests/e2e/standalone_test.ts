/**
 * The standalone artifact (deno task artifact --standalone), the stand-in
 * for the compiled release: one file that unpacks itself beside itself on
 * its first run, safely when many first runs race, elsewhere when it may
 * not write there, and that alone runs a fleet on a machine holding only
 * the OS.
 */
import assert from "node:assert/strict";
import { VERSION } from "../../lib/version.ts";
import { bareRootSkipReason, runInBareRoot } from "../helpers/bare_root.ts";
import { standaloneArtifact } from "../helpers/standalone.ts";

const dec = new TextDecoder();
const BASE_ENV = { PATH: "/usr/bin:/bin", LANG: "C.UTF-8" };

async function copyTo(dir: string): Promise<string> {
  const bin = `${dir}/ohcommodore`;
  await Deno.copyFile(await standaloneArtifact(), bin);
  await Deno.chmod(bin, 0o755);
  return bin;
}

async function version(
  bin: string,
  env: Record<string, string>,
  ids?: { uid: number; gid: number },
) {
  const r = await new Deno.Command(bin, {
    args: ["--version"],
    env: { ...BASE_ENV, ...env },
    clearEnv: true,
    stdin: "null",
    ...ids,
  }).output();
  return { code: r.code, out: dec.decode(r.stdout), err: dec.decode(r.stderr) };
}

Deno.test("standalone: eight first runs at once unpack it once, beside it", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ohc-sa-" });
  try {
    const bin = await copyTo(dir);
    const runs = await Promise.all(
      Array.from({ length: 8 }, () => version(bin, { HOME: dir })),
    );
    for (const r of runs) {
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out.trim(), `ohcommodore ${VERSION}`);
    }
    // One <hash> directory, and no half-unpacked copy left behind.
    const entries = [...Deno.readDirSync(`${dir}/.ohcommodore`)].map((e) =>
      e.name
    );
    assert.equal(entries.length, 1, entries.join(" "));
    assert.match(entries[0], /^[0-9a-f]{20}$/);
    const tree = `${dir}/.ohcommodore/${entries[0]}`;
    assert.ok(Deno.statSync(`${tree}/deno`).isFile);
    assert.ok(Deno.statSync(`${tree}/app/cloudinit/init.sh`).isFile);
    // This platform's DuckDB bindings only.
    const nm = [...Deno.readDirSync(`${tree}/app/node_modules/.deno`)]
      .map((e) => e.name).filter((n) => n.includes("node-bindings-"));
    assert.deepEqual(nm, ["@duckdb+node-bindings-linux-x64@1.5.5-r.5"]);
    // Later runs reuse it.
    const again = await version(bin, { HOME: dir });
    assert.equal(again.code, 0);
    assert.equal([...Deno.readDirSync(`${dir}/.ohcommodore`)].length, 1);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test({
  name:
    "standalone: where it may not write beside itself, it unpacks under ~/.local/share",
  ignore: Deno.build.os !== "linux",
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "ohc-sa-" });
    try {
      await Deno.chmod(dir, 0o755);
      const binDir = `${dir}/readonly`;
      await Deno.mkdir(binDir);
      const bin = await copyTo(binDir);
      const home = `${dir}/home`;
      await Deno.mkdir(home);
      // Root writes anywhere: run as nobody then.
      const ids = Deno.uid() === 0 ? { uid: 65534, gid: 65534 } : undefined;
      if (ids) await Deno.chown(home, ids.uid, ids.gid);
      else await Deno.chmod(binDir, 0o555);
      const r = await version(bin, { HOME: home }, ids);
      assert.equal(r.code, 0, r.err);
      assert.equal(r.out.trim(), `ohcommodore ${VERSION}`);
      assert.deepEqual([...Deno.readDirSync(binDir)].map((e) => e.name), [
        "ohcommodore",
      ]);
      const share = [...Deno.readDirSync(`${home}/.local/share/ohcommodore`)];
      assert.equal(share.length, 1);
      assert.match(share[0].name, /^[0-9a-f]{20}$/);
    } finally {
      await Deno.chmod(`${dir}/readonly`, 0o755).catch(() => {});
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name:
    "standalone alone in a root holding only the OS: init --provider local, ship create, inbox send --wait",
  ignore: bareRootSkipReason() !== null,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "ohc-sa-root-" });
    try {
      const root = `${dir}/root`;
      await Deno.mkdir(`${root}/root`, { recursive: true });
      await copyTo(`${root}/root`);
      const steps = [
        "./ohcommodore init --provider local",
        "./ohcommodore ship create alpha",
        "./ohcommodore inbox send --wait captain@alpha 'echo hi'",
        "command -v deno node npm; ls -A /usr/local; test -e /work || echo no-checkout",
        "./ohcommodore fleet sink --scuttle --force",
      ];
      const script = "cd /root\n" +
        steps.map((s, i) => `echo "== step ${i}"\n${s}\necho "== rc $?"`)
          .join("\n") +
        "\n";
      const r = await runInBareRoot(root, script, {
        ...BASE_ENV,
        PATH: "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        HOME: "/root",
        USER: "root",
      });
      assert.equal(r.code, 0, r.stderr);
      const parts = r.stdout.split(/^== step \d+\n/m).slice(1);
      assert.equal(parts.length, steps.length, r.stdout + r.stderr);
      parts.forEach((p, i) =>
        assert.match(p, /== rc 0\n$/, `${steps[i]}:\n${p}\n${r.stderr}`)
      );
      assert.equal(parts[2], "hi\n== rc 0\n");
      assert.equal(parts[3], "no-checkout\n== rc 0\n");
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
