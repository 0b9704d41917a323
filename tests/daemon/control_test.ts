/**
 * lib/daemon/control.ts against processes that are not ours: a pidfile
 * outlives its supervisor, its pid is reused, and nothing of the stranger's
 * may be signalled. And the systemd unit lands in the home it is given.
 */
import assert from "node:assert/strict";
import {
  daemonState,
  stopDaemon,
  useSystemd,
} from "../../lib/daemon/control.ts";
import {
  processStart,
  readPidfile,
  stillOurs,
  writePidfile,
} from "../../lib/daemon/pidfile.ts";
import { paths } from "../../lib/state/paths.ts";

const hasProc = (() => {
  try {
    Deno.statSync("/proc/self/stat");
    return true;
  } catch {
    return false;
  }
})();

/** The state letter /proc shows (T: stopped). */
function procState(pid: number): string {
  const s = Deno.readTextFileSync(`/proc/${pid}/stat`);
  return s.slice(s.lastIndexOf(")") + 2).split(" ")[0];
}

async function vmHome(): Promise<string> {
  const home = await Deno.makeTempDir();
  await Deno.mkdir(paths.runDir(home), { recursive: true });
  return home;
}

/** A process in its own group that ignores SIGTERM, with these argv. */
function stranger(...argv: string[]): Deno.ChildProcess {
  return new Deno.Command("setsid", {
    args: ["sh", "-c", 'trap "" TERM; while :; do sleep 1; done', ...argv],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
}

async function end(p: Deno.ChildProcess) {
  try {
    p.kill("SIGKILL");
  } catch { /* gone */ }
  await p.status;
}

Deno.test({
  name: "control: a stopped stranger named by a stale pidfile stays stopped",
  ignore: !hasProc,
  async fn() {
    const home = await vmHome();
    const p = new Deno.Command("sleep", { args: ["60"], stdout: "null" })
      .spawn();
    try {
      Deno.kill(p.pid, "SIGSTOP");
      await Deno.writeTextFile(paths.daemonPid(home), `${p.pid}\n`);
      const st = await daemonState(home);
      assert.equal(st.pid, null);
      assert.equal(st.running, false);
      assert.equal(procState(p.pid), "T"); // no SIGCONT reached it
    } finally {
      await end(p);
      await Deno.remove(home, { recursive: true });
    }
  },
});

Deno.test({
  name: "control: stop signals no stranger that holds a stale pidfile's pid",
  ignore: !hasProc,
  async fn() {
    const home = await vmHome();
    // "supervise" among its arguments, as the old check asked.
    const p = stranger("sh", "supervise", "x");
    try {
      // setsid forks when it leads a group already: find the shell.
      const pid = p.pid;
      const want = (q: number) =>
        Deno.readTextFileSync(`/proc/${q}/cmdline`).includes("supervise");
      for (let i = 0; i < 500 && !want(pid); i++) {
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(want(pid));
      await Deno.writeTextFile(paths.daemonPid(home), `${pid}\n`);
      assert.equal(await stopDaemon(home), false);
      assert.notEqual(await processStart(pid), null); // still there
      // A pidfile with a start time that is not the process's: not ours.
      await Deno.writeTextFile(paths.daemonPid(home), `${pid} 1\n`);
      assert.equal(await stopDaemon(home), false);
      assert.notEqual(await processStart(pid), null);
      assert.notEqual(procState(pid), "Z");
    } finally {
      await end(p);
      await Deno.remove(home, { recursive: true });
    }
  },
});

Deno.test("pidfile: our own process is ours; a restarted pid or a dead one is not", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const file = `${dir}/x.pid`;
    await writePidfile(file);
    const rec = (await readPidfile(file))!;
    assert.equal(rec.pid, Deno.pid);
    assert.ok(await stillOurs(rec));
    assert.equal(await stillOurs({ ...rec, start: "0" }), false);
    const p = new Deno.Command("true").spawn();
    await p.status;
    assert.equal(await stillOurs({ pid: p.pid, start: null }), false);
    await Deno.writeTextFile(file, "garbage\n");
    assert.equal(await readPidfile(file), null);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("control: the systemd unit goes under the home it is given, running that home's binary", async () => {
  const home = await Deno.makeTempDir();
  const bin = await Deno.makeTempDir();
  try {
    // A user manager that says yes to everything and notes what it was told.
    await Deno.writeTextFile(
      `${bin}/systemctl`,
      `#!/bin/sh\necho "$*" >>"${bin}/calls"\n`,
      { mode: 0o755 },
    );
    // Its PATH finds that systemctl; no OHCOMMODORE_BINARY is set.
    const env = (k: string) =>
      k === "PATH" ? `${bin}:${Deno.env.get("PATH") ?? ""}` : undefined;
    assert.equal(await useSystemd(home, env), true);
    const unit = await Deno.readTextFile(
      `${home}/.config/systemd/user/ohcommodore.service`,
    );
    assert.ok(
      unit.includes(
        `\nExecStart=${home}/.ohcommodore/bin/ohcommodore daemon run\n`,
      ),
      unit,
    );
    assert.match(
      await Deno.readTextFile(`${bin}/calls`),
      /enable ohcommodore\.service/,
    );
  } finally {
    await Deno.remove(home, { recursive: true });
    await Deno.remove(bin, { recursive: true });
  }
});

Deno.test({
  name:
    "local VM destroy: stops the process its pidfile names, not a reused pid",
  ignore: !hasProc,
  async fn() {
    const { LocalProvider } = await import("../../lib/providers/local.ts");
    const root = await Deno.makeTempDir();
    const sleeper = () =>
      new Deno.Command("setsid", {
        args: ["sleep", "600"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).spawn();
    const ours = sleeper();
    const other = sleeper();
    try {
      const p = new LocalProvider(root);
      await p.create("a");
      const run = paths.runDir(`${root}/a`);
      await Deno.mkdir(run, { recursive: true });
      await Deno.writeTextFile(
        `${run}/daemon.pid`,
        `${ours.pid} ${await processStart(ours.pid)}\n`,
      );
      // A pidfile whose process is gone, its pid now another's.
      await Deno.writeTextFile(`${run}/old.pid`, `${other.pid} 1\n`);
      await p.destroy("a");
      // Bounded: a destroy that missed it leaves it sleeping.
      let timer: ReturnType<typeof setTimeout> | undefined;
      const ended = await Promise.race([
        ours.status.then((st) => st.signal),
        new Promise((r) =>
          timer = setTimeout(() => r("still running"), 30_000)
        ),
      ]);
      clearTimeout(timer);
      assert.equal(ended, "SIGTERM");
      assert.equal(procState(other.pid), "S");
    } finally {
      await end(ours);
      await end(other);
      await Deno.remove(root, { recursive: true });
    }
  },
});
