/**
 * Deploy moves little: gzip on the wire, nothing when the VM already holds
 * the same build, and never a binary that did not arrive whole. Driven
 * through the local transport (a VM that is a folder) with a stand-in
 * binary that answers --version as ohcommodore does.
 */
import assert from "node:assert/strict";
import { deploy, deployOptions, sha256Hex } from "../lib/deploy.ts";
import { OhcError } from "../lib/errors.ts";
import { LocalTransport } from "../lib/transport/local.ts";
import { VERSION } from "../lib/version.ts";

const ON = { compress: true, reuse: true };

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
      const plain = await deploy(t, { compress: false, reuse: true });
      assert.equal(plain.sent, size);
      const forced = await deploy(t, { compress: true, reuse: false });
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

Deno.test("deploy settings: 0 or 1, anything else names the setting", () => {
  const saved = Deno.env.get("OHCOMMODORE_DEPLOY_COMPRESS");
  try {
    Deno.env.set("OHCOMMODORE_DEPLOY_COMPRESS", "0");
    assert.deepEqual(deployOptions(), { compress: false, reuse: true });
    Deno.env.set("OHCOMMODORE_DEPLOY_COMPRESS", "abc");
    assert.throws(
      () => deployOptions(),
      (e: Error) =>
        e instanceof OhcError &&
        e.message === 'OHCOMMODORE_DEPLOY_COMPRESS must be 0 or 1, not "abc"',
    );
  } finally {
    if (saved === undefined) Deno.env.delete("OHCOMMODORE_DEPLOY_COMPRESS");
    else Deno.env.set("OHCOMMODORE_DEPLOY_COMPRESS", saved);
  }
});
