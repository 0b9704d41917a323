/**
 * `ship ssh` (a real terminal, driven through tmux) and deploying from
 * plain source.
 */
import assert from "node:assert/strict";
import {
  ARTIFACT,
  ensureArtifact,
  exists,
  localFleet,
  ohc,
  scratchHome,
} from "../helpers/cli.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const hasTmux = (() => {
  try {
    return new Deno.Command("tmux", { args: ["-V"] }).outputSync().success;
  } catch {
    return false;
  }
})();
if (!hasTmux && Deno.env.get("CI") !== "true") {
  console.error(
    "NOTICE: interactive ship ssh test skipped: tmux is not installed",
  );
}

Deno.test("ship ssh <name> -- cmd runs the command on the ship", async () => {
  await using fleet = await localFleet("alpha");
  const home = fleet.home;
  const r = await ohc(home, [
    "ship",
    "ssh",
    "alpha",
    "--",
    "sh",
    "-c",
    "echo $HOME; exit 4",
  ]);
  assert.equal(r.code, 4);
  assert.equal(r.stdout.trim(), `${home}/.ohcommodore/local/alpha`);
});

Deno.test({
  name: "ship ssh opens an interactive shell on the ship (tmux)",
  ignore: !hasTmux && Deno.env.get("CI") !== "true",
  fn: async () => {
    await ensureArtifact();
    await using fleet = await localFleet("alpha");
    const home = fleet.home;
    const sock = `${home}/tmux.sock`;
    const tmux = (...args: string[]) =>
      new Deno.Command("tmux", { args: ["-S", sock, ...args] }).output();
    await tmux(
      "new-session",
      "-d",
      "-x",
      "200",
      "-y",
      "20",
      `env -i HOME=${home} PATH=${
        Deno.env.get("PATH")
      } SHELL=/bin/sh TERM=xterm ${ARTIFACT} ship ssh alpha; sleep 30`,
    );
    try {
      const marker = `${home}/.ohcommodore/local/alpha/typed-here`;
      for (let i = 0; i < 100 && !(await exists(marker)); i++) {
        await tmux(
          "send-keys",
          "touch typed-here && echo HOME-IS-$HOME",
          "Enter",
        );
        await new Promise((r) => setTimeout(r, 100 + i * 20));
      }
      const pane = new TextDecoder().decode(
        (await tmux("capture-pane", "-p")).stdout,
      );
      assert.ok(await exists(marker), pane);
      assert.match(
        pane,
        new RegExp(`HOME-IS-${home}/.ohcommodore/local/alpha`),
      );
    } finally {
      await tmux("kill-server");
    }
  },
});

Deno.test("init from plain source, without OHCOMMODORE_BINARY, names both ways out", async () => {
  const home = await scratchHome();
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", `${root}/main.ts`, "init"],
    env: { HOME: home, PATH: Deno.env.get("PATH") ?? "" },
    clearEnv: true,
    cwd: home,
  }).output();
  const stderr = new TextDecoder().decode(r.stderr);
  assert.equal(r.code, 1);
  assert.match(stderr, /OHCOMMODORE_BINARY/);
  assert.match(stderr, /compiled/);
  assert.match(stderr, /deno task artifact/);
  assert.equal(await exists(`${home}/.ohcommodore/config.json`), false);
  assert.equal(await exists(`${home}/.ohcommodore/local/flagship`), false);
});

Deno.test("init: provider flags in the wrong place, an unreachable exe.dev (nothing written)", async () => {
  const home = await scratchHome();
  for (
    const args of [
      ["--provider", "exedev", "--root", "/tmp"],
      ["--provider", "local", "--lobby", "x.example"],
      ["--provider", "sprites", "--ssh-config", "/etc/hosts"],
      ["--provider", "exedev", "--ssh-config", `${home}/missing`],
    ]
  ) {
    const r = await ohc(home, ["init", ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
  }
  const cfg = `${home}/ssh_config`;
  await Deno.writeTextFile(
    cfg,
    "Host exe.dev\n  HostName 127.0.0.1\n  Port 1\n",
  );
  const r = await ohc(home, [
    "init",
    "--provider",
    "exedev",
    "--ssh-config",
    cfg,
  ]);
  assert.equal(r.code, 1);
  assert.match(r.stderr, /^error: .*exe\.dev/m);
  assert.equal(await exists(`${home}/.ohcommodore/config.json`), false);
});
