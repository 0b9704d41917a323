/**
 * The tmux runner, for real: every test starts its own tmux server on a
 * private socket (`tmux -S <tmpdir>/tmux.sock`), never touching a person's
 * sessions, and kills it at the end. Covers exit codes, output in the log and
 * in the pane, a person attaching, two tasks at once, abort, Ctrl-C, a
 * window killed by hand, and environment values kept out of every argv.
 * runDirect (no tmux) is held to the same contract.
 */
import assert from "node:assert/strict";
import { OhcError } from "../../lib/errors.ts";
import {
  attachArgv,
  capturePane,
  hasTmux,
  killServer,
  listWindows,
} from "../../lib/voyage/ship/tmux.ts";
import { envFileText } from "../../lib/voyage/ship/run_files.ts";
import {
  killRun,
  readRun,
  runDirect,
  runInTmux,
  type RunOptions,
  runTask,
  startRun,
  type TmuxRunOptions,
  waitRun,
} from "../../lib/voyage/ship/runner.ts";
import { agentCommand } from "../../lib/voyage/ship/agents/command.ts";
import { findExecutable } from "../../lib/voyage/ship/agents/os_user.ts";
import { quoteArgv } from "../../lib/transport/shell_quote.ts";
import { buildPrompt } from "../../lib/voyage/ship/prompt.ts";

const root = new URL("../../", import.meta.url).pathname;
const FAKE_CLAUDE = `${root}tests/fakes/claude`;
const PATH = "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin";

interface World {
  dir: string;
  socket: string;
  cwd: string;
  log: string;
  /** runInTmux options on this world's private server. */
  opts(
    window: string,
    argv: string[],
    more?: Partial<TmuxRunOptions>,
  ): TmuxRunOptions;
  tmux(...args: string[]): Promise<{ code: number; out: string }>;
}

/** Runs fn against a private tmux server; kills it and removes files after. */
async function withTmux(fn: (w: World) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ohc-tmux-test-" });
  const socket = `${dir}/tmux.sock`;
  const cwd = `${dir}/repo`;
  await Deno.mkdir(cwd);
  const w: World = {
    dir,
    socket,
    cwd,
    log: `${dir}/logs/ship.log`,
    opts: (window, argv, more = {}) => ({
      socket,
      window,
      argv,
      env: { PATH },
      cwd,
      logFile: `${dir}/logs/${window}.log`,
      lingerSeconds: 30,
      ...more,
    }),
    async tmux(...args) {
      const r = await new Deno.Command("tmux", {
        args: ["-S", socket, ...args],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const dec = new TextDecoder();
      return {
        code: r.code,
        out: dec.decode(r.stdout) + dec.decode(r.stderr),
      };
    },
  };
  try {
    await fn(w);
  } finally {
    await killServer(socket);
    await Deno.remove(dir, { recursive: true }).catch(() => undefined);
  }
}

const delay = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitFor(
  what: string,
  cond: () => Promise<boolean>,
  ms = 5000,
): Promise<void> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (await cond()) return;
    await delay(25);
  }
  throw new Error(`timed out waiting for ${what}`);
}

async function psArgs(): Promise<string> {
  const r = await new Deno.Command("ps", {
    args: ["-eo", "pid,args"],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(r.stdout);
}

/** Exists and is not a zombie (tmux may reap a killed pane late). */
function alive(pid: number): boolean {
  try {
    return !/^\d+ \(.*\) Z/s.test(Deno.readTextFileSync(`/proc/${pid}/stat`));
  } catch {
    return false;
  }
}

Deno.test("hasTmux: tmux is installed here (CI installs it)", async () => {
  assert.equal(await hasTmux(), true);
});

Deno.test("runInTmux: exit codes 0 and 3 pass through; output in the log and the pane", async () => {
  await withTmux(async (w) => {
    const ok = await runInTmux(
      w.opts("task-1", ["bash", "-c", "echo out-one; echo err-one >&2"]),
    );
    assert.equal(ok.code, 0);
    assert.equal(ok.via, "tmux");
    const bad = await runInTmux(
      w.opts("task-2", ["bash", "-c", "echo out-two; exit 3"]),
    );
    assert.equal(bad.code, 3);

    const log1 = await Deno.readTextFile(`${w.dir}/logs/task-1.log`);
    assert.match(log1, /^\[ohc\] task-1 started \S+: bash -c /);
    assert.match(log1, /\nout-one\nerr-one\n/);
    assert.match(log1, /\[ohc\] task-1 exit 0 \S+\n$/);
    const log2 = await Deno.readTextFile(`${w.dir}/logs/task-2.log`);
    assert.match(log2, /\nout-two\n\[ohc\] task-2 exit 3 /);

    // The windows linger, showing the output to whoever attaches. (The
    // exit code is known before the wrapper prints its last line.)
    let pane = "";
    for (let i = 0; i < 100 && !/closes in/.test(pane); i++) {
      if (i) await new Promise((r) => setTimeout(r, 20));
      pane = await capturePane(bad.windowId!, { socket: w.socket });
    }
    assert.match(pane, /out-two/);
    assert.match(pane, /\[ohc\] task-2 exit 3/);
    assert.match(pane, /this window closes in 30 s/);
    const pane1 = await capturePane(ok.windowId!, { socket: w.socket });
    assert.match(pane1, /out-one\nerr-one/);
  });
});

Deno.test("runInTmux: two tasks at once in two windows; a person can attach and see them", async () => {
  await withTmux(async (w) => {
    const gate = `${w.dir}/gate`;
    const waitGate =
      `echo started; while [ ! -e ${gate} ]; do sleep 0.05; done; echo finished`;
    const a = runInTmux(
      w.opts("task-3", ["bash", "-c", waitGate + "; exit 0"]),
    );
    const b = runInTmux(
      w.opts("task-4", ["bash", "-c", waitGate + "; exit 7"]),
    );

    // Both run at the same time, each in its own window of session "voyage".
    await waitFor("two task windows", async () => {
      const names = (await listWindows({ socket: w.socket })).map((x) =>
        x.name
      );
      return names.includes("task-3") && names.includes("task-4");
    });
    const ls = await w.tmux("list-sessions", "-F", "#{session_name}");
    assert.equal(ls.out.trim(), "voyage");
    const lw = await w.tmux(
      "list-windows",
      "-t",
      "voyage",
      "-F",
      "#{window_name}",
    );
    assert.deepEqual(lw.out.trim().split("\n").sort(), [
      "captain",
      "task-3",
      "task-4",
    ]);

    // A person attaches (through a real terminal made by script(1)).
    const argv = attachArgv({ socket: w.socket });
    assert.deepEqual(argv, [
      "tmux",
      "-S",
      w.socket,
      "attach-session",
      "-t",
      "=voyage",
    ]);
    // (script(1) is util-linux; where it is missing the listing above is
    // what a person would see.)
    if (findExecutable("script")) {
      const person = new Deno.Command("script", {
        args: ["-q", "-c", quoteArgv(argv), "/dev/null"],
        env: { TERM: "xterm", PATH },
        stdin: "piped",
        stdout: "null",
        stderr: "null",
      }).spawn();
      try {
        await waitFor("the attached client", async () => {
          const c = await w.tmux("list-clients", "-F", "#{client_session}");
          return c.out.trim() === "voyage";
        });
      } finally {
        await w.tmux("detach-client", "-s", "voyage");
        await person.stdin.close().catch(() => undefined);
        await person.status;
      }
    }

    await waitFor("both tasks to print", async () => {
      const p3 = await capturePane("=voyage:=task-3", { socket: w.socket });
      const p4 = await capturePane("=voyage:=task-4", { socket: w.socket });
      return p3.includes("started") && p4.includes("started");
    });
    await Deno.writeTextFile(gate, "");
    const [ra, rb] = await Promise.all([a, b]);
    assert.equal(ra.code, 0);
    assert.equal(rb.code, 7);
    assert.notEqual(ra.windowId, rb.windowId);
  });
});

Deno.test("runInTmux: env values never appear in any argv; the env file is gone while it runs", async () => {
  await withTmux(async (w) => {
    const secret = `tok-${crypto.randomUUID()}`;
    const tokenFile = `${w.dir}/token`;
    await Deno.writeTextFile(tokenFile, secret, { mode: 0o600 });
    const promptFile = `${w.dir}/prompt.md`;
    await Deno.writeTextFile(
      promptFile,
      buildPrompt({
        objective: "o",
        task: {
          id: "5",
          subject: "slow",
          // Runs until the test has looked at every process.
          description:
            `FAKE: touch ${w.dir}/running; while [ ! -e ${w.dir}/go ]; do sleep 0.05; done`,
        },
        voyageId: "v",
        ship: "s",
        repoDir: w.cwd,
      }),
    );
    const inv = agentCommand("claude", {
      voyageId: "v",
      ship: "s",
      task: { id: "5", subject: "slow" },
      promptFile,
      checkout: w.cwd,
      tokenFile,
      claudeBin: FAKE_CLAUDE,
      allowRoot: true,
      env: {
        PATH,
        HOME: w.dir,
        FAKE_CLAUDE_ALLOW_ROOT: "1",
        FAKE_CLAUDE_EXPECT_TOKEN: secret,
        OTHER_VALUE: `plain-${secret}`,
      },
    });
    const run = runInTmux({
      ...w.opts("task-5", inv.argv),
      ...inv,
      logFile: w.log,
    });
    await waitFor("the agent to run", async () => {
      try {
        await Deno.stat(`${w.dir}/running`);
        return true;
      } catch {
        return false;
      }
    });
    let samples = 0;
    while (samples < 10) {
      const ps = await psArgs();
      assert.ok(ps.includes(FAKE_CLAUDE), "the agent is running");
      assert.ok(!ps.includes(secret), "a secret is in some process's argv");
      samples++;
      await delay(20);
    }
    // The wrapper (its script names its run dir, never a value) has already
    // deleted the env file it sourced.
    const ps = await psArgs();
    const runDir = ps.match(/bash (\/\S*\/ohc-run-[^/\s]+)\/run\.sh/)?.[1];
    assert.ok(runDir, "the wrapper is visible in ps");
    assert.ok((await Deno.stat(runDir)).isDirectory);
    await assert.rejects(
      () => Deno.stat(`${runDir}/env`),
      Deno.errors.NotFound,
    );
    await Deno.writeTextFile(`${w.dir}/go`, "");
    const r = await run;
    const log = await Deno.readTextFile(w.log);
    assert.equal(r.code, 0, log);
    assert.ok(log.includes('"subtype":"success"'), "the token was accepted");
    assert.ok(!log.includes(secret));
  });
});

Deno.test("runInTmux: the environment is exactly env (nothing inherited), stdin from a file", async () => {
  await withTmux(async (w) => {
    const stdinFile = `${w.dir}/in.txt`;
    await Deno.writeTextFile(stdinFile, "line from stdin\n");
    const r = await runInTmux(w.opts("task-6", [
      "bash",
      "-c",
      'cat; echo "A=$A"; echo "HOME=${HOME-unset}"; echo "Q=$Q"; pwd',
    ], {
      env: { PATH, A: 'it\'s "quoted" $(not run)\nsecond line', Q: "" },
      stdinFile,
    }));
    assert.equal(r.code, 0);
    const log = await Deno.readTextFile(`${w.dir}/logs/task-6.log`);
    assert.ok(log.includes("line from stdin\n"));
    assert.ok(log.includes(`A=it's "quoted" $(not run)\nsecond line\n`));
    assert.ok(log.includes("HOME=unset\n"), log);
    assert.ok(log.includes("Q=\n"));
    assert.ok(log.includes(`\n${w.cwd}\n`));
  });
});

Deno.test("runInTmux: abort kills the command and its window", async () => {
  await withTmux(async (w) => {
    const ac = new AbortController();
    const run = runInTmux(w.opts("task-7", [
      "bash",
      "-c",
      `echo $$ > ${w.dir}/pid; sleep 60`,
    ], { signal: ac.signal }));
    await waitFor("the command", async () => {
      try {
        return (await Deno.readTextFile(`${w.dir}/pid`)).trim() !== "";
      } catch {
        return false;
      }
    });
    const pid = Number((await Deno.readTextFile(`${w.dir}/pid`)).trim());
    assert.ok(alive(pid));
    const t0 = Date.now();
    ac.abort();
    const r = await run;
    assert.equal(r.aborted, true);
    assert.equal(r.code, 143);
    assert.ok(Date.now() - t0 < 2000, "abort is prompt");
    await waitFor("the process to die", () => Promise.resolve(!alive(pid)));
    const names = (await listWindows({ socket: w.socket })).map((x) => x.name);
    assert.ok(!names.includes("task-7"), `windows: ${names}`);

    // A command that ignores SIGTERM is killed after the grace period.
    const ac2 = new AbortController();
    const stubborn = runInTmux(w.opts("task-8", [
      "bash",
      "-c",
      `trap '' TERM; echo ready > ${w.dir}/ready; sleep 60`,
    ], { signal: ac2.signal, killGraceMs: 300 }));
    await waitFor("the stubborn command", async () => {
      try {
        await Deno.stat(`${w.dir}/ready`);
        return true;
      } catch {
        return false;
      }
    });
    ac2.abort();
    const r2 = await stubborn;
    assert.equal(r2.aborted, true);
    assert.equal(r2.code, 137);

    // Already aborted: nothing starts.
    const r3 = await runInTmux(
      w.opts("task-9", ["bash", "-c", `touch ${w.dir}/never`], {
        signal: AbortSignal.abort(),
      }),
    );
    assert.equal(r3.aborted, true);
    await assert.rejects(() => Deno.stat(`${w.dir}/never`));
  });
});

Deno.test("runInTmux: Ctrl-C in the window ends the command with 130, recorded", async () => {
  await withTmux(async (w) => {
    const run = runInTmux(w.opts("task-10", [
      "bash",
      "-c",
      `echo ready > ${w.dir}/ready; sleep 60`,
    ]));
    await waitFor("the command", async () => {
      try {
        await Deno.stat(`${w.dir}/ready`);
        return true;
      } catch {
        return false;
      }
    });
    await w.tmux("send-keys", "-t", "=voyage:=task-10", "C-c");
    const r = await run;
    assert.equal(r.code, 130);
    assert.ok(!r.lost);
  });
});

Deno.test("runInTmux: a window killed by hand is reported as lost", async () => {
  await withTmux(async (w) => {
    const run = runInTmux(w.opts("task-11", [
      "bash",
      "-c",
      `echo ready > ${w.dir}/ready; sleep 60`,
    ]));
    await waitFor("the command", async () => {
      try {
        await Deno.stat(`${w.dir}/ready`);
        return true;
      } catch {
        return false;
      }
    });
    await w.tmux("kill-window", "-t", "=voyage:=task-11");
    const r = await run;
    assert.equal(r.lost, true);
    assert.equal(r.code, 129);
  });
});

Deno.test("runInTmux: the window closes by itself after lingerSeconds", async () => {
  await withTmux(async (w) => {
    const r = await runInTmux(
      w.opts("task-12", ["true"], { lingerSeconds: 1 }),
    );
    assert.equal(r.code, 0);
    const names = async () =>
      (await listWindows({ socket: w.socket })).map((x) => x.name);
    assert.ok((await names()).includes("task-12"));
    await waitFor(
      "the window to close",
      async () => !(await names()).includes("task-12"),
    );
    const r0 = await runInTmux(
      w.opts("task-13", ["false"], { lingerSeconds: 0 }),
    );
    assert.equal(r0.code, 1);
    await waitFor(
      "the window to close at once",
      async () => !(await names()).includes("task-13"),
      1000,
    );
    // The session stays for the next task (its "captain" window).
    assert.deepEqual(await names(), ["captain"]);
  });
});

Deno.test("runInTmux: bad input fails before anything runs", async () => {
  await withTmux(async (w) => {
    await assert.rejects(
      () => runInTmux(w.opts("task-1", ["true"], { cwd: `${w.dir}/missing` })),
      (e: unknown) => e instanceof OhcError && e.code === "no_checkout",
    );
    await assert.rejects(
      () => runInTmux(w.opts("a:b", ["true"])),
      /invalid tmux window name/,
    );
    await assert.rejects(
      () => runInTmux(w.opts("task-1", ["true"], { env: { "BAD-NAME": "x" } })),
      /invalid environment variable name/,
    );
    assert.deepEqual(await listWindows({ socket: w.socket }), []);
  });
});

Deno.test("runInTmux: a long command (past tmux's 16 KiB message limit); a missing one is 127", async () => {
  await withTmux(async (w) => {
    const long = "x".repeat(50_000);
    const r = await runInTmux(
      w.opts("task-14", ["bash", "-c", `s=${long}; echo \${#s}`]),
    );
    assert.equal(r.code, 0);
    const log = await Deno.readTextFile(`${w.dir}/logs/task-14.log`);
    assert.ok(log.includes("\n50000\n"));
    const missing = await runInTmux(w.opts("task-15", ["no-such-command-x"]));
    assert.equal(missing.code, 127);
    assert.match(
      await Deno.readTextFile(`${w.dir}/logs/task-15.log`),
      /no-such-command-x: command not found/,
    );
  });
});

Deno.test("envFileText: one export per variable, single-quoted", () => {
  assert.equal(
    envFileText({ A: "x'y", B: "" }),
    "export A='x'\\''y'\nexport B=''\n",
  );
});

Deno.test("runDirect: the same contract without tmux", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ohc-direct-test-" });
  try {
    const stdinFile = `${dir}/in.txt`;
    await Deno.writeTextFile(stdinFile, "from stdin\n");
    const base: RunOptions = {
      argv: [
        "bash",
        "-c",
        'cat; echo "A=$A HOME=${HOME-unset}"; echo err >&2; exit 3',
      ],
      env: { PATH, A: "a b" },
      cwd: dir,
      logFile: `${dir}/logs/t.log`,
      stdinFile,
    };
    const r = await runDirect(base);
    assert.deepEqual(r, { code: 3, via: "direct" });
    const log = await Deno.readTextFile(`${dir}/logs/t.log`);
    assert.match(log, /^\[ohc\] started \S+: bash -c /);
    assert.ok(
      log.includes("\nfrom stdin\nA=a b HOME=unset\nerr\n[ohc] exit 3 "),
    );

    const ac = new AbortController();
    const slow = runDirect({
      ...base,
      argv: ["sleep", "60"],
      signal: ac.signal,
    });
    await delay(200);
    ac.abort();
    const ra = await slow;
    assert.equal(ra.aborted, true);
    assert.equal(ra.code, 143);

    // runTask picks tmux when present; tmux: false forces direct.
    const rt = await runTask({ ...base, window: "t", tmux: false });
    assert.equal(rt.via, "direct");
    assert.equal(rt.code, 3);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("startRun: the run outlives its starter; another waiter finds it by its dir, waits, or ends it (tmux and direct)", async () => {
  await withTmux(async (w) => {
    for (const viaTmux of [true, false]) {
      const gate = `${w.dir}/gate-${viaTmux}`;
      const dir = `${w.dir}/run-${viaTmux}`;
      const run = await startRun({
        ...w.opts(`task-p${viaTmux ? 1 : 2}`, [
          "bash",
          "-c",
          `while [ ! -e ${gate} ]; do sleep 0.05; done; echo done; exit 4`,
        ]),
        dir,
        tmux: viaTmux,
      });
      assert.equal(run.via, viaTmux ? "tmux" : "direct");
      // A waiter that gives up (its session ended) leaves it running.
      const gone = new AbortController();
      gone.abort();
      assert.deepEqual(await waitRun(run, gone.signal), { detached: true });
      assert.ok(alive(run.pid));
      // Another finds it by its dir alone and gets its exit code.
      const again = await readRun(dir);
      assert.ok(again);
      assert.equal(again.pid, run.pid);
      const waiting = waitRun(again);
      await Deno.writeTextFile(gate, "");
      const r = await waiting;
      assert.equal(r.code, 4);
      // Found even without run.json: its wrapper wrote its pid first.
      await Deno.remove(`${dir}/run.json`);
      assert.equal((await readRun(dir))?.pid, run.pid);
      assert.equal((await waitRun((await readRun(dir))!)).code, 4);
    }
    // killRun ends a run someone else started.
    const dir = `${w.dir}/run-kill`;
    const run = await startRun({
      ...w.opts("task-p3", ["sleep", "600"]),
      dir,
    });
    const found = (await readRun(dir))!;
    const k = await killRun(found, 500);
    assert.ok(k.code === 143 || k.code === 137, String(k.code));
    await waitFor("the run to end", () => Promise.resolve(!alive(run.pid)));
    assert.equal(await readRun(`${w.dir}/nothing-here`), null);
  });
});
