/**
 * Starting the daemon where no runtime supervises it (lib/daemon/control.ts
 * on a local VM): a pidfile that outlived its supervisor (a reboot, a
 * sprite's cold wake) and now names some other live process does not stop
 * the daemon from starting.
 */
import assert from "node:assert/strict";
import { localFleet, ohc } from "../helpers/cli.ts";

Deno.test("a stale daemon pidfile naming another live process: the daemon still starts", async () => {
  await using fleet = await localFleet("alpha");
  const vm = `${fleet.home}/.ohcommodore/local/alpha`;
  const onVm = (args: string[]) =>
    ohc(fleet.home, ["ship", "exec", "alpha", "--", "ohcommodore", ...args]);
  assert.equal((await onVm(["daemon", "stop"])).code, 0);
  // Some process that is not ours holds the pid the file names.
  const stranger = new Deno.Command("sleep", { args: ["600"] }).spawn();
  try {
    await Deno.writeTextFile(
      `${vm}/.ohcommodore/run/daemon.pid`,
      `${stranger.pid}\n`,
    );
    const r = await onVm(["inbox", "list"]);
    assert.equal(r.code, 0, r.stderr);
    const st = JSON.parse((await onVm(["daemon", "status", "--json"])).stdout);
    assert.equal(st.running, true);
    assert.notEqual(st.pid, stranger.pid);
    assert.equal(st.supervisor, "pidfile");
  } finally {
    stranger.kill("SIGKILL");
    await stranger.status;
  }
});
