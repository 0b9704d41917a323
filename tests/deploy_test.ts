/**
 * Deploy moves little: gzip on the wire, nothing when the VM already holds
 * the same build, and never a binary that did not arrive whole. Driven
 * through the local transport (a VM that is a folder) with a stand-in
 * binary that answers --version as ohcommodore does.
 */
import assert from "node:assert/strict";
import {
  deploy,
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

async function withBinary<T>(bin: string, fn: () => Promise<T>): Promise<T> {
  const saved = Deno.env.get("OHCOMMODORE_BINARY");
  Deno.env.set("OHCOMMODORE_BINARY", bin);
  try {
    return await fn();
  } finally {
    if (saved === undefined) Deno.env.delete("OHCOMMODORE_BINARY");
    else Deno.env.set("OHCOMMODORE_BINARY", saved);
  }
}

const installed = (home: string) => `${home}/.ohcommodore/bin/ohcommodore`;

Deno.test("deploy: gzip on the wire, then nothing while the VM holds the same build", async () => {
  const { dir, bin, home, t } = await setup();
  try {
    await withBinary(bin, async () => {
      const size = (await Deno.stat(bin)).size;
      const first = await deploy(t, ON);
      assert.equal(first.action, "uploaded");
      assert.equal(first.size, size);
      assert.ok(first.sent > 0 && first.sent < size / 10, `sent ${first.sent}`);
      assert.deepEqual(
        await Deno.readFile(installed(home)),
        await Deno.readFile(bin),
      );
      assert.equal((await Deno.stat(installed(home))).mode! & 0o777, 0o755);
      assert.equal(first.sha256, await sha256Hex(await Deno.readFile(bin)));

      const again = await deploy(t, ON);
      assert.equal(again.action, "reused");
      assert.equal(again.sent, 0);

      // A different build on the VM is replaced.
      await Deno.writeTextFile(installed(home), "#!/bin/sh\necho old\n");
      assert.equal((await deploy(t, ON)).action, "uploaded");
      assert.deepEqual(
        await Deno.readFile(installed(home)),
        await Deno.readFile(bin),
      );
    });
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("deploy: compression and reuse can be turned off", async () => {
  const { dir, bin, home, t } = await setup();
  try {
    await withBinary(bin, async () => {
      const size = (await Deno.stat(bin)).size;
      const plain = await deploy(t, { ...ON, compress: false });
      assert.equal(plain.sent, size);
      const forced = await deploy(t, { ...ON, reuse: false });
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
  const { dir, bin, home, t } = await setup();
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
    const savedPath = Deno.env.get("PATH")!;
    Deno.env.set("PATH", `${fakeBin}:${savedPath}`);
    try {
      await withBinary(bin, async () => {
        const err = await deploy(t, ON).catch((e) => e);
        assert.ok(err instanceof OhcError, String(err));
        assert.equal(err.code, "deploy_failed");
        assert.match(
          err.message,
          /^installing ohcommodore on .* failed: the received binary has sha256 [0-9a-f]{64}, not [0-9a-f]{64}$/,
        );
      });
    } finally {
      Deno.env.set("PATH", savedPath);
    }
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
      new Settings({
        OHCOMMODORE_DEPLOY_COMPRESS: "0",
        OHCOMMODORE_RELEASE_URL: "https://example.com/r/v1/",
      }, () => undefined),
    ),
    {
      compress: false,
      reuse: true,
      releaseUrl: "https://example.com/r/v1",
    },
  );
  const bad = (k: string, v: string) => () =>
    deployOptions(new Settings({ [k]: v }, () => undefined));
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
    await withBinary(`${dir}/none`, async () => {
      const r = await deploy(t, { ...ON, releaseUrl: srv.url });
      assert.equal(r.action, "downloaded");
      assert.equal(r.sent, 0);
      assert.deepEqual(srv.asked, [`/${SUMS_FILE}`, `/${name}`]);
      assert.deepEqual(
        await Deno.readFile(installed(home)),
        await Deno.readFile(bin),
      );
      const again = await deploy(t, { ...ON, releaseUrl: srv.url });
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
    const opts = { ...ON, releaseUrl: srv.url };
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
