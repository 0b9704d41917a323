/**
 * Deploy moves little: gzip on the wire, nothing when the VM already holds
 * the same build, and never a binary that did not arrive whole. Driven
 * through the local transport (a VM that is a folder) with a stand-in
 * binary that answers --version as ohcommodore does.
 */
import assert from "node:assert/strict";
import {
  deploy,
  type DeployOptions,
  deployOptions,
  DOWNLOAD_SCRIPT,
  sha256Hex,
} from "../lib/deploy.ts";
import { OhcError, UsageError } from "../lib/errors.ts";
import {
  RELEASE_TARGETS,
  releaseBinary,
  sha256sums,
  SUMS_FILE,
} from "../lib/release.ts";
import { publish, serveRelease } from "./helpers/release.ts";
import { Settings } from "../lib/settings.ts";
import { LocalTransport } from "../lib/transport/local.ts";
import type { RemoteProcess, SpawnOptions } from "../lib/transport/types.ts";
import { VERSION } from "../lib/version.ts";

const ON = { compress: true, reuse: true, releaseUrl: null };

async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "ohc-deploy-" });
  const bin = `${dir}/ohcommodore`;
  // Compressible, like a real binary's padding and tables.
  const body = `#!/bin/sh\necho "ohcommodore ${VERSION}"\nexit 0\n` +
    `# ${"filler ".repeat(20_000)}\n`;
  await Deno.writeTextFile(bin, body, { mode: 0o755 });
  const home = `${dir}/vm`;
  await Deno.mkdir(home);
  return { dir, bin, home, t: new LocalTransport(home) };
}

/**
 * Runs fn as the machine that deploys: it installs `bin`, and its deploy
 * cache is under `home`, default a "laptop" beside `bin`.
 */
function withBinary<T>(
  bin: string,
  fn: (on: DeployOptions) => Promise<T>,
  home = `${bin.slice(0, bin.lastIndexOf("/"))}/laptop`,
): Promise<T> {
  return fn({
    ...ON,
    binary: bin,
    cacheDir: `${home}/.ohcommodore/cache/deploy`,
  });
}

/** A VM whose PATH finds `fakeBin` first (its own gzip, say). */
class DamagingGzip extends LocalTransport {
  constructor(home: string, readonly fakeBin: string) {
    super(home);
  }
  override spawn(argv: string[], opts?: SpawnOptions): RemoteProcess {
    return super.spawn([
      "env",
      `PATH=${this.fakeBin}:${Deno.env.get("PATH")}`,
      ...argv,
    ], opts);
  }
}

const files = (dir: string) =>
  [...Deno.readDirSync(dir)].map((e) => e.name).sort();

const installed = (home: string) => `${home}/.ohcommodore/bin/ohcommodore`;

Deno.test("deploy: gzip on the wire, then nothing while the VM holds the same build", async () => {
  const { dir, bin, home, t } = await setup();
  try {
    await withBinary(bin, async (on) => {
      const size = (await Deno.stat(bin)).size;
      const first = await deploy(t, on);
      assert.equal(first.action, "uploaded");
      assert.equal(first.size, size);
      assert.ok(first.sent > 0 && first.sent < size / 10, `sent ${first.sent}`);
      assert.deepEqual(
        await Deno.readFile(installed(home)),
        await Deno.readFile(bin),
      );
      assert.equal((await Deno.stat(installed(home))).mode! & 0o777, 0o755);
      assert.equal(first.sha256, await sha256Hex(await Deno.readFile(bin)));

      const again = await deploy(t, on);
      assert.equal(again.action, "reused");
      assert.equal(again.sent, 0);

      // A different build on the VM is replaced.
      await Deno.writeTextFile(installed(home), "#!/bin/sh\necho old\n");
      assert.equal((await deploy(t, on)).action, "uploaded");
      assert.deepEqual(
        await Deno.readFile(installed(home)),
        await Deno.readFile(bin),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy: a flagship keeps the gzip'd binary it got and passes it on without compressing again", async () => {
  const { dir, bin, home, t } = await setup();
  try {
    const sha = await sha256Hex(await Deno.readFile(bin));
    await withBinary(bin, async (on) => {
      await deploy(t, on, { keepCompressed: true });
    });
    const laptopCache = `${dir}/laptop/.ohcommodore/cache/deploy`;
    const vmCache = `${home}/.ohcommodore/cache/deploy`;
    assert.deepEqual(files(laptopCache), [`${sha}.gz`]);
    assert.deepEqual(files(vmCache), [`${sha}.gz`]);
    assert.deepEqual(
      await Deno.readFile(`${vmCache}/${sha}.gz`),
      await Deno.readFile(`${laptopCache}/${sha}.gz`),
    );
    // A gzip of its own in the flagship's cache shows which one travels.
    const gz9 = new Deno.Command("gzip", {
      args: ["-9", "-c", bin],
      stdout: "piped",
    }).outputSync().stdout;
    await Deno.writeFile(`${vmCache}/${sha}.gz`, gz9);
    const ship = `${dir}/ship`;
    await Deno.mkdir(ship);
    const r = await withBinary(
      installed(home),
      (on) => deploy(new LocalTransport(ship), on),
      home,
    );
    assert.equal(r.action, "uploaded");
    assert.equal(r.sent, gz9.length);
    assert.deepEqual(
      await Deno.readFile(installed(ship)),
      await Deno.readFile(bin),
    );
    // A ship keeps no copy.
    assert.equal(await exists(`${ship}/.ohcommodore/cache`), false);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy: a temp file left by an upload that was killed goes; a live upload's stays", async () => {
  const { dir, bin, home, t } = await setup();
  const live = new Deno.Command("sleep", { args: ["60"] }).spawn();
  try {
    await withBinary(bin, async (on) => {
      await Deno.mkdir(`${home}/.ohcommodore/bin`, { recursive: true });
      // Pids that no longer run (a child that has exited), and one that does.
      const gone = new Deno.Command("true").spawn();
      await gone.status;
      const dead = `${installed(home)}.tmp.${gone.pid}`;
      const busy = `${installed(home)}.tmp.${live.pid}`;
      await Deno.writeTextFile(dead, "half a binary");
      await Deno.writeTextFile(busy, "being written");
      assert.equal((await deploy(t, on)).action, "uploaded");
      assert.deepEqual(
        [...Deno.readDirSync(`${home}/.ohcommodore/bin`)].map((e) => e.name)
          .sort(),
        ["ohcommodore", `ohcommodore.tmp.${live.pid}`],
      );
    });
  } finally {
    live.kill();
    await live.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy: compression and reuse can be turned off", async () => {
  const { dir, bin, home, t } = await setup();
  try {
    await withBinary(bin, async (on) => {
      const size = (await Deno.stat(bin)).size;
      const plain = await deploy(t, { ...on, compress: false });
      assert.equal(plain.sent, size);
      const forced = await deploy(t, { ...on, reuse: false });
      assert.equal(forced.action, "uploaded");
      assert.ok(forced.sent < size);
      assert.deepEqual(
        await Deno.readFile(installed(home)),
        await Deno.readFile(bin),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy: a binary that arrives damaged is refused and the installed one kept", async () => {
  const { dir, bin, home } = await setup();
  try {
    await Deno.mkdir(`${home}/.ohcommodore/bin`, { recursive: true });
    await Deno.writeTextFile(installed(home), "#!/bin/sh\necho old\n", {
      mode: 0o755,
    });
    // This VM's gzip damages what it unpacks.
    const fakeBin = `${dir}/fakebin`;
    await Deno.mkdir(fakeBin);
    await Deno.writeTextFile(
      `${fakeBin}/gzip`,
      '#!/bin/sh\n/bin/gzip "$@" | tr f g\n',
      { mode: 0o755 },
    );
    const damaging = new DamagingGzip(home, fakeBin);
    await withBinary(bin, async (on) => {
      const err = await deploy(damaging, on).catch((e) => e);
      assert.ok(err instanceof OhcError, String(err));
      assert.equal(err.code, "deploy_failed");
      assert.match(
        err.message,
        /^installing ohcommodore on .* failed: the received binary has sha256 [0-9a-f]{64}, not [0-9a-f]{64}$/,
      );
    });
    assert.equal(
      await Deno.readTextFile(installed(home)),
      "#!/bin/sh\necho old\n",
    );
    const left = [...Deno.readDirSync(`${home}/.ohcommodore/bin`)].map((e) =>
      e.name
    );
    assert.deepEqual(left, ["ohcommodore"], "no temp file left behind");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy settings: checked where read, a bad value names itself", () => {
  assert.deepEqual(
    deployOptions(
      "/h",
      new Settings({
        OHCOMMODORE_DEPLOY_COMPRESS: "0",
        OHCOMMODORE_RELEASE_URL: "https://example.com/r/v1/",
      }, () => undefined),
    ),
    {
      cacheDir: "/h/.ohcommodore/cache/deploy",
      compress: false,
      reuse: true,
      releaseUrl: "https://example.com/r/v1",
    },
  );
  const bad = (k: string, v: string) => () =>
    deployOptions("/h", new Settings({ [k]: v }, () => undefined));
  assert.throws(
    bad("OHCOMMODORE_DEPLOY_COMPRESS", "abc"),
    (e: Error) =>
      e instanceof UsageError &&
      e.message ===
        'OHCOMMODORE_DEPLOY_COMPRESS="abc" is not valid: 1 or 0',
  );
  assert.throws(
    bad("OHCOMMODORE_RELEASE_URL", "ftp://x"),
    (e: Error) =>
      e instanceof UsageError &&
      /^OHCOMMODORE_RELEASE_URL="ftp:\/\/x" is not valid: an http/.test(
        e.message,
      ),
  );
});

Deno.test("deploy from a release URL: the VM downloads its platform's binary, checks it, and reuses it", async () => {
  const { dir, bin, home, t } = await setup();
  try {
    const rel = `${dir}/release`;
    await Deno.mkdir(rel);
    const name = await publish(rel, bin);
    await using srv = serveRelease(rel);
    // The laptop's own binary is not needed.
    await withBinary(`${dir}/none`, async (on) => {
      const r = await deploy(t, { ...on, releaseUrl: srv.url });
      assert.equal(r.action, "downloaded");
      assert.equal(r.sent, 0);
      assert.deepEqual(srv.asked, [`/${SUMS_FILE}`, `/${name}`]);
      assert.deepEqual(
        await Deno.readFile(installed(home)),
        await Deno.readFile(bin),
      );
      const again = await deploy(t, { ...on, releaseUrl: srv.url });
      assert.equal(again.action, "reused");
      assert.deepEqual(srv.asked.slice(2), [`/${SUMS_FILE}`]);
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy from a release URL: a binary that does not match SHA256SUMS, a missing target, another version", async () => {
  const { dir, bin, home, t } = await setup();
  try {
    const rel = `${dir}/release`;
    await Deno.mkdir(rel);
    await using srv = serveRelease(rel);
    const opts = { ...ON, cacheDir: `${dir}/cache`, releaseUrl: srv.url };
    const fail = async () => {
      const e = await deploy(t, opts).catch((e) => e);
      assert.ok(e instanceof OhcError, String(e));
      return e.message as string;
    };

    const name = await publish(
      rel,
      bin,
      sha256sums({
        [releaseBinary(Deno.build.target)]: "ab".repeat(32),
      }),
    );
    assert.equal(
      await fail(),
      `${home} could not install ohcommodore from the release at ${srv.url}: ${srv.url}/${name} has sha256 ${await sha256Hex(
        await Deno.readFile(bin),
      )}, not ${"ab".repeat(32)} as SHA256SUMS says`,
    );
    assert.equal(await exists(installed(home)), false);

    await Deno.writeTextFile(`${rel}/${SUMS_FILE}`, sha256sums({ x: "0" }));
    assert.match(await fail(), new RegExp(`SHA256SUMS names no ${name}$`));

    await Deno.remove(`${rel}/${SUMS_FILE}`);
    assert.match(await fail(), /cannot download .*\/SHA256SUMS$/);

    const old = `${dir}/old`;
    await Deno.writeTextFile(old, '#!/bin/sh\necho "ohcommodore 0.0.1"\n');
    await publish(rel, old);
    assert.equal(
      await fail(),
      `ohcommodore on ${home} is ohcommodore 0.0.1, not ${VERSION} as here (from ${srv.url})`,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the download script knows every release target", () => {
  for (const target of Object.keys(RELEASE_TARGETS)) {
    assert.ok(DOWNLOAD_SCRIPT.includes(`t=${target} ;;`), target);
  }
});

async function exists(p: string) {
  return await Deno.stat(p).then(() => true, () => false);
}
