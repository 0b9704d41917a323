/**
 * The inbox end to end on the local provider: every hop is a real daemon
 * and a real link (the same path SSH carries), driven through the CLI.
 */
import assert from "node:assert/strict";
import { type CliResult, localFleet, ohc, ohcOk } from "../helpers/cli.ts";
import { until } from "../helpers/wait.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");
const vmHome = (home: string, vm: string) => `${home}/.ohcommodore/local/${vm}`;

/** `ohcommodore ...` run on a VM, as its own user would. */
function onVm(home: string, vm: string, args: string[]): Promise<CliResult> {
  return ohc(home, ["ship", "exec", vm, "--", "ohcommodore", ...args]);
}

interface Listed {
  messages: {
    id: string;
    status: string;
    sender: string;
    recipient: string;
    command: string;
    exit_code: number | null;
  }[];
  queued: { id: string }[];
}

async function listOn(
  home: string,
  vm: string | null,
  status?: string,
): Promise<Listed> {
  const args = [
    "inbox",
    "list",
    "--json",
    ...(status ? ["--status", status] : []),
  ];
  const r = vm ? await onVm(home, vm, args) : await ohc(home, args);
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout);
}

const sentId = (r: CliResult) => {
  const m = /^Message sent: ([0-9a-f-]{36}) -> /.exec(r.stdout);
  assert.ok(m, r.stdout + r.stderr);
  return m[1];
};

Deno.test("seed 001's examples, from a ship and from the laptop", async () => {
  await using fleet = await localFleet("alpha", "beta");
  const home = fleet.home;

  assert.equal(
    (await onVm(home, "alpha", ["inbox", "identity"])).stdout.trim(),
    "captain@alpha",
  );
  assert.equal(
    (await ohcOk(home, ["inbox", "identity"])).stdout.trim(),
    "commodore@flagship",
  );

  // Ship to ship.
  const toBeta = sentId(
    await onVm(home, "alpha", [
      "inbox",
      "send",
      "captain@beta",
      "echo cargo test > cargo.txt",
    ]),
  );
  await until(
    "beta ran it",
    async () =>
      (await listOn(home, "beta", "done")).messages.find((m) =>
        m.id === toBeta
      ),
  );
  assert.equal(
    await Deno.readTextFile(`${vmHome(home, "beta")}/cargo.txt`),
    "cargo test\n",
  );
  // Ship to the commodore by its bare name, as the help offers it.
  const bare = sentId(
    await onVm(home, "alpha", ["inbox", "send", "commodore", "echo bare"]),
  );
  await until(
    "the flagship ran the bare-named one",
    async () =>
      (await listOn(home, null, "done")).messages.find((m) => m.id === bare),
  );
  // Ship to the commodore, by full name.
  const toCommodore = sentId(
    await onVm(home, "alpha", [
      "inbox",
      "send",
      "commodore@flagship",
      "echo 'Report from ship'",
    ]),
  );
  const got = await until(
    "the flagship ran it",
    async () =>
      (await listOn(home, null, "done")).messages.find((m) =>
        m.id === toCommodore
      ),
  );
  assert.equal(got.sender, "captain@alpha");
  assert.equal(got.exit_code, 0);
  // From the laptop (the flagship's inbox sends it on).
  const fromLaptop = sentId(
    await ohcOk(home, ["inbox", "send", "captain@alpha", "true"]),
  );
  await until(
    "alpha ran it",
    async () =>
      (await listOn(home, "alpha", "done")).messages.find((m) =>
        m.id === fromLaptop
      ),
  );

  // Manual handling: the flagship's scheduler is held, so messages stay
  // unread until a person handles them.
  await ohcOk(vmHome(home, "flagship"), ["daemon", "pause"]);
  const ids: string[] = [];
  for (let i = 0; i < 3; i++) {
    ids.push(
      sentId(
        await ohcOk(home, ["inbox", "send", "commodore", `echo manual ${i}`]),
      ),
    );
  }
  const unread = (await listOn(home, null, "unread")).messages.map((m) => m.id);
  for (const id of ids) {
    assert.ok(unread.includes(id), `${id} should be unread`);
  }

  // The 8-character ids `inbox list` shows work, and so does any unique
  // prefix of 4 or more; the answers name the whole id.
  const read = await ohcOk(home, ["inbox", "read", ids[0].slice(0, 8)]);
  assert.equal(JSON.parse(read.stdout).status, "pending");
  assert.equal(
    (await ohcOk(home, ["inbox", "done", ids[0].slice(0, 6)])).stdout,
    `Marked done: ${ids[0]}\n`,
  );
  await ohcOk(home, ["inbox", "read", ids[1]]);
  assert.equal(
    (await ohcOk(home, [
      "inbox",
      "error",
      ids[1].slice(0, 8),
      "could not do it",
    ]))
      .stdout,
    `Marked error: ${ids[1]}\n`,
  );
  assert.equal(
    (await ohcOk(home, ["inbox", "delete", ids[2].slice(0, 8)])).stdout,
    `Deleted: ${ids[2]}\n`,
  );
  const tooShort = await ohc(home, ["inbox", "show", ids[1].slice(0, 3)]);
  assert.equal(tooShort.code, 2);
  assert.match(tooShort.stderr, /4 characters or more/);

  const all = (await listOn(home, null)).messages;
  assert.equal(all.find((m) => m.id === ids[0])?.status, "done");
  assert.equal(all.find((m) => m.id === ids[1])?.status, "error");
  assert.equal(all.find((m) => m.id === ids[2]), undefined);
  const shown = JSON.parse(
    (await ohcOk(home, ["inbox", "show", ids[1].slice(0, 8), "--json"]))
      .stdout,
  );
  assert.equal(shown.record.error, "could not do it");
  // A done message is not claimed again; an unknown id is a usage error.
  assert.equal((await ohc(home, ["inbox", "read", ids[0]])).code, 2);
  assert.equal((await ohc(home, ["inbox", "done", "no-such-id"])).code, 2);
  await ohcOk(vmHome(home, "flagship"), ["daemon", "resume"]);
});

Deno.test("daemon pause holds the scheduler over a restart; resume runs what waited", async () => {
  await using fleet = await localFleet("alpha");
  const home = fleet.home;
  const paused = await onVm(home, "alpha", ["daemon", "pause"]);
  assert.equal(paused.code, 0, paused.stderr);
  assert.match(paused.stdout, /^paused: nothing new starts/);
  const id = sentId(
    await ohcOk(home, ["inbox", "send", "captain@alpha", "echo ran"]),
  );
  // It arrives, and stays unread: nothing starts while paused...
  await until(
    "the message reached alpha",
    async () => (await listOn(home, "alpha")).messages.find((m) => m.id === id),
  );
  const st = JSON.parse(
    (await onVm(home, "alpha", ["daemon", "status", "--json"])).stdout,
  );
  assert.equal(st.paused, true);
  assert.match(
    (await onVm(home, "alpha", ["daemon", "status"])).stdout,
    /the scheduler is paused/,
  );
  // ...not even after a restart (maintenance outlives it).
  assert.equal((await onVm(home, "alpha", ["daemon", "restart"])).code, 0);
  const after = (await listOn(home, "alpha")).messages.find((m) => m.id === id);
  assert.equal(after?.status, "unread");
  const resumed = await onVm(home, "alpha", ["daemon", "resume", "--json"]);
  assert.deepEqual(JSON.parse(resumed.stdout), { paused: false, running: 0 });
  const done = await until(
    "alpha ran it after resume",
    async () =>
      (await listOn(home, "alpha", "done")).messages.find((m) => m.id === id),
  );
  assert.equal(done.exit_code, 0);
  // On the laptop it is refused like the other daemon verbs.
  const laptop = await ohc(home, ["daemon", "pause"]);
  assert.equal(laptop.code, 2);
  assert.equal(laptop.stderr.trim().split("\n").length, 1, laptop.stderr);
});

Deno.test("bad input: recipients, statuses, timeouts, arguments", async () => {
  await using fleet = await localFleet("alpha");
  const home = fleet.home;
  for (
    const args of [
      ["inbox", "send", "captain@nosuch", "true"],
      ["inbox", "send", "root@alpha", "true"],
      ["inbox", "send", "captain@alpha"],
      ["inbox", "send", "captain@alpha", "true", "extra"],
      ["inbox", "send", "captain@alpha", "true", "--timeout", "-1"],
      ["inbox", "list", "--status", "bogus"],
      ["inbox", "error", "some-id"],
    ]
  ) {
    const r = await ohc(home, args);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
  }
  assert.deepEqual((await listOn(home, null)).messages, []);
  assert.deepEqual((await listOn(home, "alpha")).messages, []);
  const fromShip = await onVm(home, "alpha", [
    "inbox",
    "send",
    "captain@nosuch",
    "true",
  ]);
  assert.equal(fromShip.code, 2);
  assert.match(fromShip.stderr, /unknown recipient "captain@nosuch"/);
});

Deno.test("--wait returns the command's exit code and output, across ships", async () => {
  await using fleet = await localFleet("alpha", "beta");
  const home = fleet.home;
  const seven = await ohc(home, [
    "inbox",
    "send",
    "--wait",
    "captain@alpha",
    "exit 7",
  ]);
  assert.equal(seven.code, 7);
  const out = await onVm(home, "beta", [
    "inbox",
    "send",
    "--wait",
    "captain@alpha",
    "echo out; echo err >&2; exit 3",
  ]);
  assert.equal(out.code, 3);
  assert.equal(out.stdout, "out\n");
  assert.match(out.stderr, /^err$/m);
});

Deno.test("hard commands: 10 MB of output, no end, stdin, quoting", async () => {
  await using fleet = await localFleet("alpha");
  const home = fleet.home;
  const wait = (cmd: string, ...flags: string[]) =>
    ohc(home, [
      "inbox",
      "send",
      "--wait",
      "--json",
      ...flags,
      "captain@alpha",
      cmd,
    ]);

  const big = JSON.parse(
    (await wait("head -c 10000000 /dev/zero | tr '\\0' x; echo tail >&2"))
      .stdout,
  );
  assert.equal(big.status, "done");
  assert.equal(big.stdout_truncated, true);
  assert.equal(atob(big.stdout_b64), "x".repeat(64 * 1024));
  assert.equal(atob(big.stderr_b64), "tail\n");

  const forever = await ohc(home, [
    "inbox",
    "send",
    "--wait",
    "--timeout",
    "1",
    "captain@alpha",
    "sleep 600",
  ]);
  assert.notEqual(forever.code, 0);
  assert.match(forever.stderr, /timed out after 1s/);

  const stdin = JSON.parse((await wait("cat; echo read-eof")).stdout);
  assert.equal(stdin.status, "done");
  assert.equal(atob(stdin.stdout_b64), "read-eof\n");

  const nasty =
    `printf '%s|' "it's" "$(echo sub)" \`echo tick\` "a\nb" '$HOME'\necho "line 2"`;
  const quoted = await ohc(home, [
    "inbox",
    "send",
    "--wait",
    "captain@alpha",
    nasty,
  ]);
  assert.equal(quoted.code, 0, quoted.stderr);
  assert.equal(quoted.stdout, "it's|sub|tick|a\nb|$HOME|line 2\n");

  const shown = JSON.parse(
    (await onVm(home, "alpha", ["inbox", "list", "--json"])).stdout,
  );
  assert.ok(
    shown.messages.some((m: { command: string }) => m.command === nasty),
  );
});

async function sendersRace(killTarget: boolean) {
  const senders = ["s1", "s2", "s3", "s4"];
  await using fleet = await localFleet("target", ...senders);
  const home = fleet.home;
  const perSender = 250;
  const procs = senders.map((s) =>
    new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        `${root}/tests/helpers/sender.ts`,
        "captain@target",
        String(perSender),
      ],
      env: {
        HOME: vmHome(home, s),
        PATH: Deno.env.get("PATH") ?? "",
        OHCOMMODORE_BINARY: `${vmHome(home, s)}/.ohcommodore/bin/ohcommodore`,
      },
      clearEnv: true,
      stdout: "piped",
      stderr: "piped",
    }).output()
  );
  let kills = 0;
  if (killTarget) {
    for (const delay of [1500, 2500]) {
      await new Promise((r) => setTimeout(r, delay));
      if (await killDaemonOf(vmHome(home, "target"))) kills++;
    }
  }
  const results = await Promise.all(procs);
  const sent: string[] = [];
  for (const r of results) {
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
    sent.push(...JSON.parse(new TextDecoder().decode(r.stdout)));
  }
  assert.equal(sent.length, senders.length * perSender);
  assert.equal(new Set(sent).size, sent.length);

  const final = await until(
    "every message reaches a terminal state",
    async () => {
      const l = await listOn(home, "target");
      const terminal = l.messages.filter((m) =>
        m.status === "done" || m.status === "error"
      );
      return terminal.length === sent.length ? l : undefined;
    },
    { timeoutMs: 400_000 },
  );
  const byId = new Map(final.messages.map((m) => [m.id, m]));
  for (const id of sent) assert.ok(byId.has(id), `message ${id} was lost`);

  const ran = (await Deno.readTextFile(`${vmHome(home, "target")}/ids.txt`))
    .trim().split("\n");
  const counts = new Map<string, number>();
  for (const id of ran) counts.set(id, (counts.get(id) ?? 0) + 1);
  for (const [id, n] of counts) assert.equal(n, 1, `${id} ran ${n} times`);
  for (const m of final.messages) {
    if (m.status === "done") {
      assert.ok(counts.has(m.id), `${m.id} done but never ran`);
    } else {assert.match(
        (await onVmShow(home, "target", m.id)).error ?? "",
        /interrupted/,
      );}
  }
  if (!killTarget) {
    assert.equal(ran.length, sent.length);
    assert.ok(final.messages.every((m) => m.status === "done"));
  } else {
    assert.equal(kills, 2, "the target's daemon should have been killed twice");
  }
}

async function onVmShow(home: string, vm: string, id: string) {
  const r = await onVm(home, vm, ["inbox", "show", id, "--json"]);
  return JSON.parse(r.stdout).record as { error: string | null };
}

/** SIGKILLs a VM's `daemon run` process (its supervisor restarts it). */
async function killDaemonOf(vm: string): Promise<boolean> {
  const r = await new Deno.Command("sh", {
    args: [
      "-c",
      `for p in $(pgrep -f 'daemon run'); do if [ "$(readlink /proc/$p/cwd)" = "$1" ] || tr '\\0' '\\n' < /proc/$p/environ 2>/dev/null | grep -qx "HOME=$1"; then kill -9 $p && echo $p; fi; done`,
      "sh",
      vm,
    ],
  }).output();
  return new TextDecoder().decode(r.stdout).trim() !== "";
}

Deno.test("4 senders x 250 messages to one ship: each runs exactly once", async () => {
  await sendersRace(false);
});

Deno.test("the same while the receiving daemon is SIGKILLed twice: none lost, none run twice", async () => {
  await sendersRace(true);
});

/**
 * Makes a ship unreachable (no program to answer its link, no daemon) until
 * the returned function brings it back.
 */
async function cutOff(home: string, vm: string): Promise<() => Promise<void>> {
  const bin = `${vmHome(home, vm)}/.ohcommodore/bin/ohcommodore`;
  await Deno.rename(bin, `${bin}.away`);
  await new Deno.Command("sh", {
    args: [
      "-c",
      `kill -9 -$(cat "${vmHome(home, vm)}/.ohcommodore/run/daemon.pid")`,
    ],
  }).output();
  await until("the link to go down", async () => {
    const s = JSON.parse(
      (await ohcOk(home, ["fleet", "status", "--json"])).stdout,
    );
    return s.ships.find((x: { name: string }) => x.name === vm).link.state !==
      "up";
  });
  return () => Deno.rename(`${bin}.away`, bin);
}

Deno.test("a message for a ship whose link is down waits in the flagship's outbox and flows when it is back", async () => {
  await using fleet = await localFleet("alpha");
  const home = fleet.home;
  const alpha = vmHome(home, "alpha");
  const restore = await cutOff(home, "alpha");
  const id = sentId(
    await ohcOk(home, [
      "inbox",
      "send",
      "captain@alpha",
      "echo delivered > late.txt",
    ]),
  );
  const queued = await listOn(home, null);
  assert.ok(queued.queued.some((q) => q.id === id), JSON.stringify(queued));
  const text = (await ohcOk(home, ["inbox", "list"])).stdout;
  assert.match(text, /^QUEUED \(1\):$/m);

  await restore();
  await until(
    "the message to run once the link is back",
    async () =>
      await Deno.readTextFile(`${alpha}/late.txt`).catch(() => "") ===
        "delivered\n",
  );
  await until(
    "the flagship's outbox to empty",
    async () => (await listOn(home, null)).queued.length === 0,
  );
});

Deno.test("ship to ship while the target's link is down: the flagship takes the message over, it runs once the link is back, its result returns", async () => {
  await using fleet = await localFleet("alpha", "beta");
  const home = fleet.home;
  const restore = await cutOff(home, "beta");
  const id = sentId(
    await onVm(home, "alpha", [
      "inbox",
      "send",
      "captain@beta",
      "echo from-beta",
    ]),
  );
  // The flagship acknowledges only what it stored: alpha's outbox empties
  // and the message waits in the flagship's.
  await until(
    "alpha's outbox to empty",
    async () => (await listOn(home, "alpha")).queued.length === 0,
  );
  assert.deepEqual((await listOn(home, null)).queued.map((q) => q.id), [id]);

  await restore();
  const sent = await until("the result back at alpha", async () => {
    const r = await onVm(home, "alpha", ["inbox", "show", id, "--json"]);
    const rec = JSON.parse(r.stdout).record;
    return rec.status === "done" ? rec : undefined;
  });
  assert.equal(atob(sent.stdout_b64), "from-beta\n");
  await until(
    "the flagship's outbox to empty",
    async () => (await listOn(home, null)).queued.length === 0,
  );
  const ran = await listOn(home, "beta");
  assert.deepEqual(ran.messages.map((m) => [m.id, m.status]), [[id, "done"]]);
});

Deno.test("daemon status/stop/start/restart on a ship; commands that need it start it", async () => {
  await using fleet = await localFleet("alpha");
  const home = fleet.home;
  const status = async () =>
    JSON.parse(
      (await onVm(home, "alpha", ["daemon", "status", "--json"])).stdout,
    );
  const s1 = await status();
  assert.equal(s1.running, true);
  assert.equal(s1.identity, "captain@alpha");
  assert.match(
    (await onVm(home, "alpha", ["daemon", "stop"])).stdout,
    /stopped/,
  );
  const down = await onVm(home, "alpha", ["daemon", "status"]);
  assert.equal(down.code, 1);
  assert.match(down.stdout, /stopped/);
  // `inbox list` needs the daemon and starts it.
  assert.equal((await onVm(home, "alpha", ["inbox", "list"])).code, 0);
  assert.equal((await status()).running, true);
  const before = (await status()).pid;
  assert.equal((await onVm(home, "alpha", ["daemon", "restart"])).code, 0);
  assert.notEqual((await status()).pid, before);
  const laptop = await ohc(home, ["daemon", "status"]);
  assert.equal(laptop.code, 2);
  assert.match(laptop.stderr, /ship exec/);
  // The daemon's own processes skip the command parser (main.ts), and
  // refuse the laptop the same way: one line, exit 2, nothing written.
  const laptopRun = `${home}/.ohcommodore/run`;
  await Deno.remove(laptopRun, { recursive: true }).catch(() => {});
  for (const verb of ["run", "supervise"]) {
    const r = await ohc(home, ["daemon", verb]);
    assert.equal(r.code, 2, r.stderr);
    assert.equal(
      r.stderr,
      `error: 'daemon ${verb}' runs on the flagship or a ship; from here: ohcommodore ship exec <ship> -- ohcommodore daemon ${verb}\n`,
    );
    assert.equal(r.stdout, "");
    const help = await ohc(home, ["daemon", verb, "--help"]);
    assert.equal(help.code, 0);
    assert.match(help.stdout, new RegExp(`^Usage: ohcommodore daemon ${verb}`));
  }
  await assert.rejects(Deno.stat(laptopRun), Deno.errors.NotFound);
  // On a ship, the supervisor's `daemon run` is that entry: it is up.
  assert.equal(daemonProcesses(vmHome(home, "alpha"), "run").length, 1);
});

/** `ohcommodore daemon <verb>` processes whose HOME is `home`. */
function daemonProcesses(home: string, verb: "supervise" | "run"): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
      if (!cmd.includes(`daemon\0${verb}`)) continue;
      const env = Deno.readTextFileSync(`/proc/${e.name}/environ`);
      if (env.split("\0").includes(`HOME=${home}`)) out.push(Number(e.name));
    } catch { /* gone */ }
  }
  return out;
}

Deno.test("commands racing to start a stopped daemon start one, and 'daemon stop' stops it", async () => {
  await using fleet = await localFleet("alpha");
  const home = fleet.home;
  const ship = vmHome(home, "alpha");
  await onVm(home, "alpha", ["daemon", "stop"]);
  assert.deepEqual(daemonProcesses(ship, "supervise"), []);
  const lists = await Promise.all(
    Array.from({ length: 4 }, () => onVm(home, "alpha", ["inbox", "list"])),
  );
  for (const r of lists) assert.equal(r.code, 0, r.stderr);
  assert.equal(daemonProcesses(ship, "supervise").length, 1);
  assert.equal(daemonProcesses(ship, "run").length, 1);
  await onVm(home, "alpha", ["daemon", "stop"]);
  assert.deepEqual(daemonProcesses(ship, "supervise"), []);
  assert.deepEqual(daemonProcesses(ship, "run"), []);
});
