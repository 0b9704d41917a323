/**
 * The release binary is the thing proven: exe.dev VMs that hold only the
 * OS (tests/helpers/bare_root.ts: no host deno, node, checkout or caches)
 * run the standalone artifact, which carries everything it needs, through
 * the whole lifecycle and a voyage. The dev artifact, a script calling
 * this machine's deno on this checkout, fails on the same VMs: the
 * negative control that shows the isolation holds.
 */
import assert from "node:assert/strict";
import { exeDevSkipReason } from "./emulators/exedev.ts";
import { exeDevFleet } from "../helpers/exedev_fleet.ts";
import { exists } from "../helpers/cli.ts";
import { sha256Hex } from "../../lib/deploy.ts";
import { SUMS_FILE } from "../../lib/release.ts";
import { publish, serveRelease } from "../helpers/release.ts";
import { standaloneArtifact } from "../helpers/standalone.ts";
import { DEMO_SAIL, sailOk, waitVoyage } from "../helpers/voyage.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

Deno.test({
  name:
    "bare exe.dev VMs: the dev artifact cannot run there (negative control)",
  ignore: exeDevSkipReason() !== null,
  async fn() {
    await using f = await exeDevFleet({ bareVms: true, noInit: true });
    const r = await f.run([
      "init",
      "--provider",
      "exedev",
      "--ssh-config",
      f.userSsh.config,
    ]);
    assert.equal(r.code, 1, r.stderr);
    assert.match(
      r.stderr,
      /error: ohcommodore on \S+ did not start: .*deno: not found/,
    );
    assert.deepEqual(await f.emu.listVms(), [], "init removed its VM");
  },
});

Deno.test({
  name:
    "bare exe.dev VMs: the standalone artifact runs init, 3 ships, exec, inbox, destroy, a voyage and sink --scuttle",
  ignore: exeDevSkipReason() !== null,
  async fn() {
    const bin = await standaloneArtifact();
    await using f = await exeDevFleet({
      bareVms: true,
      env: { OHCOMMODORE_BINARY: bin, OHC_OFFLINE: "1" },
    });
    await f.ok(["ship", "create", "alpha", "beta", "gamma"]);
    // The flagship keeps the gzip'd build it got, to pass on to its ships;
    // a ship keeps none.
    const sha = await sha256Hex(await Deno.readFile(bin));
    const cache = (h: string) => `${h}/.ohcommodore/cache/deploy`;
    assert.deepEqual(
      [...Deno.readDirSync(cache(await f.vmHome("flagship")))].map((e) =>
        e.name
      ),
      [`${sha}.gz`],
    );
    assert.equal(await exists(cache(await f.vmHome("alpha"))), false);

    // A ship sees only the OS and what was uploaded.
    const look = await f.ok([
      "ship",
      "exec",
      "alpha",
      "--",
      "sh",
      "-c",
      "hostname; ls -A /usr/local; command -v deno node npm; ls -A /tmp /root; test -e /work || echo no-checkout; ls ~/.ohcommodore/bin",
    ]);
    const lines = look.stdout.trim().split("\n");
    assert.equal(lines[0], await f.vmName("alpha"));
    assert.ok(lines.includes("no-checkout"), look.stdout);
    assert.ok(
      !/deno|node|npm/.test(
        lines.slice(1).join(" ").replace("ohcommodore", ""),
      ),
      look.stdout,
    );

    const hi = await f.ok([
      "inbox",
      "send",
      "--wait",
      "captain@alpha",
      "echo hi",
    ]);
    assert.equal(hi.stdout, "hi\n");

    await f.ok(["ship", "destroy", "beta"]);
    const st = await f.status();
    assert.deepEqual(st.ships.map((s) => s.name).sort(), ["alpha", "gamma"]);

    const id = await sailOk((a) => f.ok(a), DEMO_SAIL(root, 2));
    const v = await waitVoyage((a) => f.ok(a), id, 240_000);
    assert.equal(v.voyage.state, "verified", JSON.stringify(v));
    assert.equal(v.counts.done, 6);

    assert.deepEqual(await f.scuttle(), []);
  },
});

Deno.test({
  name:
    "bare exe.dev VMs: with OHCOMMODORE_RELEASE_URL each VM downloads the release itself; the laptop sends no binary",
  ignore: exeDevSkipReason() !== null,
  async fn() {
    const rel = await Deno.makeTempDir({ prefix: "ohc-release-" });
    try {
      const name = await publish(rel, await standaloneArtifact());
      await using srv = serveRelease(rel);
      await using f = await exeDevFleet({
        bareVms: true,
        env: {
          // The laptop has no binary at all.
          OHCOMMODORE_BINARY: `${rel}/no-such-file`,
          OHCOMMODORE_RELEASE_URL: srv.url,
          OHC_OFFLINE: "1",
        },
      });
      await f.ok(["ship", "create", "alpha"]);
      // The flagship, then alpha: each asked for the sums and the binary.
      assert.deepEqual(srv.asked, [
        `/${SUMS_FILE}`,
        `/${name}`,
        `/${SUMS_FILE}`,
        `/${name}`,
      ]);
      const hi = await f.ok([
        "inbox",
        "send",
        "--wait",
        "captain@alpha",
        "echo hi",
      ]);
      assert.equal(hi.stdout, "hi\n");
      const settings = await f.ok(["fleet", "config", "get"]);
      assert.match(
        settings.stdout,
        new RegExp(`OHCOMMODORE_RELEASE_URL.*${srv.url}`),
      );
      assert.deepEqual(await f.scuttle(), []);
    } finally {
      await Deno.remove(rel, { recursive: true });
    }
  },
});
