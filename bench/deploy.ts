/**
 * What deploying costs a laptop: the bytes it sends and the time for
 * `init` plus `ship create` of 3 ships on the exe.dev emulator, with
 * deploy's compression and reuse off (the baseline: the binary sent as it
 * is), on, and each alone, and with OHCOMMODORE_RELEASE_URL (VMs download
 * the release themselves), all in one run, as ratios to the baseline. Then
 * deploying again to a flagship that already holds the build, with reuse
 * on and off. Prints, never asserts.
 *
 *   deno run -A bench/deploy.ts [--uplink-mbit N]   (default 20; 0: no limit)
 *
 * The laptop's ssh connections (to the lobby and to the flagship) go
 * through bench/uplink_proxy.ts as ProxyCommand, which counts every byte sent and
 * holds the upload to the uplink's rate, as a home connection would; VM
 * to VM traffic (the flagship installing ships) stays on loopback. The
 * binary is the standalone artifact with an uncompressed payload (about
 * 170 MB: this Deno and the program's files as they are), standing in for
 * a `deno compile --self-extracting` release, which embeds its files
 * uncompressed too. VMs are bare (only the OS), so they run nothing but
 * what they are sent.
 *
 * Needs what the emulator needs: Linux, root, openssh-server, util-linux.
 */
import { deploy } from "../lib/deploy.ts";
import { SshTransport } from "../lib/transport/ssh.ts";
import { buildStandalone } from "../scripts/standalone.ts";
import { closeMasters, exeDevFleet } from "../tests/helpers/exedev_fleet.ts";
import { publish, serveRelease } from "../tests/helpers/release.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const i = Deno.args.indexOf("--uplink-mbit");
const uplinkMbit = i >= 0 ? Number(Deno.args[i + 1]) : 20;
if (!(uplinkMbit >= 0)) {
  console.error("usage: deno run -A bench/deploy.ts [--uplink-mbit N]");
  Deno.exit(2);
}
const rate = uplinkMbit * 1e6 / 8;

const mb = (n: number) => `${(n / 1e6).toFixed(1)} MB`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Bytes the relays under `prefix` sent, once every one of them has ended
 * (bounded), and how many connections there were.
 */
async function relayTotals(
  prefix: string,
  wait = true,
): Promise<{ sent: number; n: number }> {
  const dir = prefix.slice(0, prefix.lastIndexOf("/"));
  const base = prefix.slice(dir.length + 1) + ".";
  const deadline = Date.now() + 30_000;
  for (;;) {
    const rows: string[][] = [];
    for await (const e of Deno.readDir(dir)) {
      if (!e.name.startsWith(base) || e.name.endsWith(".tmp")) continue;
      const t = await Deno.readTextFile(`${dir}/${e.name}`).catch(() => "");
      rows.push(t.trim().split(" ")); // unreadable: counts as open
    }
    const open = rows.some((r) => r[2] !== "closed");
    if (!wait || !open || Date.now() > deadline) {
      return {
        sent: rows.reduce((a, r) => a + Number(r[0]), 0),
        n: rows.length,
      };
    }
    await sleep(100);
  }
}

interface Row {
  name: string;
  env: Record<string, string>;
  release?: boolean;
  redeploy?: boolean;
}

const ROWS: Row[] = [
  {
    name: "baseline: compress 0, reuse 0",
    env: { OHCOMMODORE_DEPLOY_COMPRESS: "0", OHCOMMODORE_DEPLOY_REUSE: "0" },
  },
  {
    name: "compress 1, reuse 0",
    env: { OHCOMMODORE_DEPLOY_COMPRESS: "1", OHCOMMODORE_DEPLOY_REUSE: "0" },
  },
  {
    name: "compress 0, reuse 1",
    env: { OHCOMMODORE_DEPLOY_COMPRESS: "0", OHCOMMODORE_DEPLOY_REUSE: "1" },
  },
  { name: "compress 1, reuse 1 (default)", env: {}, redeploy: true },
  { name: "OHCOMMODORE_RELEASE_URL", env: {}, release: true },
];

const bin = `${root}/dist/standalone-plain/ohcommodore`;
await buildStandalone(bin, { gzip: false });
const size = (await Deno.stat(bin)).size;
console.log(
  `binary ${mb(size)} (standalone artifact, uncompressed payload); uplink ${
    uplinkMbit ? `${uplinkMbit} Mbit/s` : "unlimited"
  }; bare exe.dev VMs`,
);
const relDir = await Deno.makeTempDir({ prefix: "ohc-bench-release-" });
await publish(relDir, bin);
await using srv = serveRelease(relDir);

const results: {
  name: string;
  sent: number;
  init: number;
  ships: number;
  conns: number;
}[] = [];
const redeploys: {
  name: string;
  sent: number;
  payload: number;
  ms: number;
  action: string;
}[] = [];
try {
  for (const row of ROWS) {
    const counts = `${relDir}/counts-${results.length}`;
    const f = await exeDevFleet({
      bareVms: true,
      noInit: true,
      env: {
        OHCOMMODORE_BINARY: bin,
        OHC_OFFLINE: "1",
        ...row.env,
        ...(row.release ? { OHCOMMODORE_RELEASE_URL: srv.url } : {}),
      },
    });
    try {
      const cfg = await Deno.readTextFile(f.userSsh.config);
      await Deno.writeTextFile(
        f.userSsh.config,
        cfg.replace(
          /^Host exe\.dev \*\.exe\.xyz\n/m,
          (h) =>
            `${h}  ProxyCommand ${Deno.execPath()} run -A --quiet ${root}/bench/uplink_proxy.ts %h %p ${counts} ${rate}\n`,
        ),
      );
      const t0 = performance.now();
      await f.ok([
        "init",
        "--provider",
        "exedev",
        "--ssh-config",
        f.userSsh.config,
      ]);
      const t1 = performance.now();
      await f.ok(["ship", "create", "alpha", "beta", "gamma"]);
      const t2 = performance.now();
      await closeMasters(f.home);
      const { sent, n } = await relayTotals(counts);
      results.push({
        name: row.name,
        sent,
        init: t1 - t0,
        ships: t2 - t1,
        conns: n,
      });
      console.log(
        `  ${row.name}: sent ${mb(sent)} over ${n} connections; init ${
          ((t1 - t0) / 1000).toFixed(1)
        } s, 3 ships ${((t2 - t1) / 1000).toFixed(1)} s`,
      );
      if (row.redeploy) {
        // Deploy again to the flagship, which holds this build.
        const config = JSON.parse(
          await Deno.readTextFile(`${f.home}/.ohcommodore/config.json`),
        );
        // This process deploys as that laptop (its deploy cache, not ours).
        for (const reuse of [true, false]) {
          const before = await relayTotals(counts, false);
          const t = new SshTransport({
            dest: config.flagship.ssh_dest,
            configFile: f.userSsh.config,
            knownHostsFile: `${f.home}/.ohcommodore/ssh/known_hosts`,
            controlDir: await Deno.makeTempDir({ prefix: "ohc-b-" }),
          });
          const s0 = performance.now();
          const r = await deploy(t, {
            compress: true,
            reuse,
            releaseUrl: null,
            cacheDir: `${f.home}/.ohcommodore/cache/deploy`,
            binary: bin,
          });
          const ms = performance.now() - s0;
          await t.close?.();
          const after = await relayTotals(counts);
          redeploys.push({
            name: `redeploy, reuse ${reuse ? 1 : 0}`,
            sent: after.sent - before.sent,
            payload: r.sent,
            ms,
            action: r.action,
          });
        }
      }
    } finally {
      await f.stop();
    }
  }
} finally {
  await Deno.remove(relDir, { recursive: true }).catch(() => {});
}

const base = results[0];
const total = (r: typeof base) => r.init + r.ships;
console.log(
  `\ninit + 3 ships, bytes sent from the laptop and time, vs the baseline (${
    mb(base.sent)
  }, ${(total(base) / 1000).toFixed(1)} s):`,
);
for (const r of results) {
  console.log(
    `  ${r.name.padEnd(32)} ${mb(r.sent).padStart(9)}  ×${
      (r.sent / base.sent).toFixed(3)
    }   ${(total(r) / 1000).toFixed(1).padStart(6)} s  ×${
      (total(r) / total(base)).toFixed(2)
    }   (init ${(r.init / 1000).toFixed(1)} s${
      rate ? `; the upload alone ${(r.sent / rate).toFixed(1)} s` : ""
    })`,
  );
}
console.log("\ndeploy again to a flagship that holds the build:");
for (const r of redeploys) {
  console.log(
    `  ${r.name.padEnd(32)} ${mb(r.sent).padStart(9)}   ${
      (r.ms / 1000).toFixed(2)
    } s  (${r.action}, deploy's payload ${mb(r.payload)})`,
  );
}
