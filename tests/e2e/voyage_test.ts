/**
 * Voyages end to end on the local provider through the CLI: the flagship's
 * queue, real ships, the agents, git landing, verify.
 */
import assert from "node:assert/strict";
import {
  type CliResult,
  exists,
  listDir,
  localFleet,
  ohc,
  ohcOk,
  scratchHome,
  teardown,
} from "../helpers/cli.ts";
import { writePlan } from "../helpers/plans.ts";
import { until } from "../helpers/wait.ts";
import {
  sailOk,
  type VoyageStatusJson,
  voyageTasks,
  waitVoyage,
} from "../helpers/voyage.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

async function git(dir: string, ...args: string[]): Promise<string> {
  const r = await new Deno.Command("git", { args, cwd: dir }).output();
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
  return new TextDecoder().decode(r.stdout);
}

Deno.test("the demo plan sails on 3 ships, verifies, and clones with every task's commit", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const id = await sailOk(home, [
    `${root}/examples/plans/demo`,
    "--agent",
    "shell",
    "--ships",
    "3",
  ]);
  const s = await waitVoyage(home, id);
  assert.equal(s.voyage.state, "verified");
  assert.equal(s.voyage.verify_code, 0);
  assert.equal(s.counts.done, 6);
  await ohcOk(home, ["voyage", "clone", id, "-d", `${home}/result`]);
  const log = await git(`${home}/result`, "log", "--format=%s");
  for (let i = 1; i <= 6; i++) {
    assert.match(log, new RegExp(`^task ${i}: `, "m"));
  }
  assert.ok(await exists(`${home}/result/REPORT.md`));
  const logs = await ohcOk(home, ["voyage", "logs", id, "--grep", "exit 0"]);
  assert.equal(logs.stdout.trim().split("\n").length, 6, logs.stdout);
});

Deno.test("20 tasks (fan-out, fan-in, a 7-task chain) on 8 ships: each once, never before its blockers", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const times = `${home}/times.log`;
  const agent = `${home}/agent.sh`;
  await Deno.writeTextFile(
    agent,
    `#!/bin/bash
set -e
echo "start $OHC_TASK_ID $(date +%s%N) $OHC_SHIP" >> "${times}"
cmd=$("${Deno.execPath()}" eval 'console.log(JSON.parse(Deno.readTextFileSync(Deno.args[0])).command)' "${root}/examples/plans/twenty/tasks/$OHC_TASK_ID.json")
bash -c "$cmd"
echo "end $OHC_TASK_ID $(date +%s%N)" >> "${times}"
`,
  );
  const id = await sailOk(home, [
    `${root}/examples/plans/twenty`,
    "--ships",
    "8",
    "--agent",
    "custom",
    "--agent-command",
    `bash ${agent}`,
  ]);
  const s = await waitVoyage(home, id, 180_000);
  assert.equal(s.voyage.state, "verified", JSON.stringify(s));
  assert.equal(s.counts.done, 20);

  const start = new Map<string, number>();
  const end = new Map<string, number>();
  for (const line of (await Deno.readTextFile(times)).trim().split("\n")) {
    const [kind, task, ns] = line.split(" ");
    const m = kind === "start" ? start : end;
    assert.ok(!m.has(task), `task ${task} ${kind}ed twice`);
    m.set(task, Number(ns));
  }
  assert.equal(start.size, 20);
  assert.equal(end.size, 20);
  for (let i = 1; i <= 20; i++) {
    const task = JSON.parse(
      await Deno.readTextFile(`${root}/examples/plans/twenty/tasks/${i}.json`),
    );
    for (const b of task.blockedBy) {
      assert.ok(
        start.get(String(i))! >= end.get(String(b))!,
        `task ${i} started before blocker ${b} ended`,
      );
    }
  }
  const ships = new Set((await voyageTasks(home, id)).map((t) => t.ship));
  assert.ok(ships.size > 1, "the work should spread over ships");
  await ohcOk(home, ["voyage", "clone", id, "-d", `${home}/result`]);
  const files = await listDir(`${home}/result/twenty`);
  assert.equal(files.filter((f) => /^\d\d\.txt$/.test(f)).length, 20);
});

Deno.test("8 ships racing on 100 tiny tasks: none runs twice", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const ran = `${home}/ran.log`;
  const plan = await writePlan(
    `${home}/plan100`,
    Array.from({ length: 100 }, (_, i) => ({
      id: String(i + 1),
      command: `echo ${i + 1} >> "${ran}" && echo ${i + 1} > t${i + 1}.txt`,
    })),
    { ships: 8 },
  );
  const id = await sailOk(home, [plan, "--agent", "shell"]);
  const s = await waitVoyage(home, id, 300_000);
  assert.equal(s.voyage.state, "verified");
  const lines = (await Deno.readTextFile(ran)).trim().split("\n");
  assert.equal(lines.length, 100);
  assert.equal(new Set(lines).size, 100);
  assert.ok((await voyageTasks(home, id)).every((t) => t.attempts === 1));
});

Deno.test("a ship destroyed mid-task: another ship finishes its task", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  // The first attempt runs until its ship is destroyed (however long that
  // takes on a loaded machine); the second finishes.
  const first = `${home}/first-attempt`;
  const plan = await writePlan(`${home}/plan`, [
    {
      id: "1",
      command:
        `if mkdir ${first} 2>/dev/null; then exec sleep 600; fi; echo slow > slow.txt`,
    },
  ], { ships: 2, verify: "#!/bin/bash\ntest -f slow.txt\n" });
  const env = { OHCOMMODORE_TASK_LEASE: "3" };
  const id = await sailOk(home, [plan, "--agent", "shell"], env);
  // Destroyed before its agent started, the victim would leave the slow
  // attempt to the other ship: wait for the first attempt itself.
  await until("the first attempt to start", () => exists(first), {
    timeoutMs: 60_000,
  });
  const victim = await until(
    "the task to run",
    async () =>
      (await voyageTasks(home, id)).find((t) => t.status === "running")
        ?.ship,
  );
  await ohcOk(home, ["ship", "destroy", victim]);
  const s = await waitVoyage(home, id);
  assert.equal(s.voyage.state, "verified");
  const [t] = await voyageTasks(home, id);
  assert.equal(t.status, "done");
  assert.notEqual(t.ship, victim);
  assert.equal(t.attempts, 2);
});

Deno.test("two tasks editing the same line: one lands, the other fails naming the file, its work kept", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  // examples/plans/conflict, with a barrier: each of the two edits waits
  // until the other has started, so they run side by side on the two ships
  // even when one ship is slow to start (else one ship may do both in turn,
  // the second on top of the first, and nothing conflicts).
  const barrier = `${home}/barrier`;
  await Deno.mkdir(barrier);
  const edit = (me: string, other: string, text: string) =>
    `test -f greeting.txt && touch ${barrier}/${me} && ` +
    `for _ in $(seq 600); do [ -e ${barrier}/${other} ] && break; sleep 0.1; done && ` +
    `printf '${text}\\n' > greeting.txt`;
  const plan = await writePlan(`${home}/plan`, [
    { id: "1", command: "printf 'hello\\n' > greeting.txt" },
    { id: "2", command: edit("2", "3", "hello, world"), blockedBy: ["1"] },
    { id: "3", command: edit("3", "2", "bonjour, le monde"), blockedBy: ["1"] },
  ], {
    verify: await Deno.readTextFile(
      `${root}/examples/plans/conflict/verify.sh`,
    ),
  });
  const id = await sailOk(home, [plan, "--agent", "shell", "--ships", "2"]);
  const s = await waitVoyage(home, id);
  assert.equal(s.voyage.state, "failed");
  const ts = await voyageTasks(home, id);
  const failed = ts.filter((t) => t.status === "failed");
  assert.equal(failed.length, 1, JSON.stringify(ts));
  assert.deepEqual(failed[0].conflict, ["greeting.txt"]);
  assert.match(failed[0].error ?? "", /greeting\.txt/);
  assert.ok(failed[0].side_branch);
  assert.equal(ts.filter((t) => t.status === "done").length, 2);
  await ohcOk(home, ["voyage", "clone", id, "-d", `${home}/result`]);
  const side = await git(
    `${home}/result`,
    "show",
    `origin/${failed[0].side_branch}:greeting.txt`,
  );
  assert.match(side, /hello, world|bonjour, le monde/);
  const landed = await Deno.readTextFile(`${home}/result/greeting.txt`);
  assert.notEqual(landed.trim(), side.trim());
});

Deno.test("bad plans exit 2 before any VM exists", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const before = await listDir(`${home}/.ohcommodore/local`);
  const cases: [string[], RegExp][] = [
    [[`${root}/tests/fixtures/plans/cycle`], /cycle/],
    [
      [`${root}/tests/fixtures/plans/unknown-blocker`],
      /blocker|unknown|not a task/i,
    ],
    [[`${root}/tests/fixtures/plans/bad-json`], /bad JSON/],
    [[`${root}/examples/plans/demo`, "--agent", "custom"], /--agent-command/],
    [[`${root}/examples/plans/demo`, "--ships", "0"], /--ships/],
    [[`${home}/nope`], /not found/],
    // The agent's credential is checked before any VM exists.
    [
      [`${root}/examples/plans/demo`],
      /^error: the claude agent needs a credential: set CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_API_KEY/m,
    ],
    [
      [`${root}/examples/plans/demo`, "--agent", "codex"],
      /the codex agent needs a credential: set CODEX_API_KEY or OPENAI_API_KEY/,
    ],
    [
      [`${root}/examples/plans/demo`, "--agent", "shell", "--model", "opus"],
      /--model is for the claude and codex agents \(the agent is shell\)/,
    ],
    [
      [`${root}/examples/plans/demo`, "--model", "-x"],
      /--model "-x" is not a model name/,
    ],
  ];
  for (const [args, re] of cases) {
    const r: CliResult = await ohc(home, ["voyage", "sail", ...args]);
    assert.equal(r.code, 2, `${args.join(" ")}: ${r.stderr}`);
    assert.match(r.stderr, re);
  }
  assert.deepEqual(await listDir(`${home}/.ohcommodore/local`), before);
  assert.equal(
    (await ohcOk(home, ["voyage", "list"])).stdout.trim(),
    "No voyages.",
  );
});

Deno.test("the claude agent (fake Claude Code): token from a 0600 file, stream outcome decides", async () => {
  const home = await scratchHome();
  await using _ = { [Symbol.asyncDispose]: () => teardown(home) };
  // The fake refuses root like the real one, unless IS_SANDBOX=1, which
  // OHCOMMODORE_CLAUDE_ALLOW_ROOT=1 sets for it (everything runs as root here).
  const bin = `${home}/fakebin`;
  await Deno.mkdir(bin);
  await Deno.symlink(`${root}/tests/fakes/claude`, `${bin}/claude`);
  const token = "sk-ant-oat-test-token-0123456789";
  const plan = await writePlan(`${home}/plan`, [
    { id: "1", command: "unused" },
    { id: "2", command: "unused", blockedBy: ["1"] },
  ]);
  // Task 2's description tells the fake to fail the way a real agent reports it.
  const t2 = JSON.parse(await Deno.readTextFile(`${plan}/tasks/2.json`));
  t2.description = "FAKE: false";
  await Deno.writeTextFile(`${plan}/tasks/2.json`, JSON.stringify(t2));
  // The flagship's daemon (which drives the ships) keeps init's environment.
  const env = {
    OHCOMMODORE_CLAUDE_ALLOW_ROOT: "1",
    OHCOMMODORE_TASK_ATTEMPTS: "1",
    PATH: `${bin}:${Deno.env.get("PATH")}`,
  };
  await ohcOk(home, ["init"], { env });
  const id = await sailOk(home, [plan, "--agent", "claude", "--ships", "1"], {
    ...env,
    CLAUDE_CODE_OAUTH_TOKEN: token,
  });
  const s = await waitVoyage(home, id);
  const ts = await voyageTasks(home, id);
  assert.equal(ts[0].status, "done", JSON.stringify(ts));
  assert.equal(ts[1].status, "failed");
  assert.match(ts[1].error ?? "", /did not finish task 2/);
  assert.equal(s.voyage.state, "failed");
  await ohcOk(home, ["voyage", "clone", id, "-d", `${home}/result`]);
  assert.ok(await exists(`${home}/result/done-1.txt`));
  // The token sits in 0600 files only.
  const grep = await new Deno.Command("grep", { args: ["-rl", token, home] })
    .output();
  const files = new TextDecoder().decode(grep.stdout).trim().split("\n").filter(
    Boolean,
  );
  assert.ok(files.length > 0);
  for (const f of files) {
    assert.equal((await Deno.stat(f)).mode! & 0o777, 0o600, f);
  }
});

Deno.test("voyage sink stops a voyage and destroys its ships; it asks first", async () => {
  await using fleet = await localFleet("keeper");
  const home = fleet.home;
  const plan = await writePlan(`${home}/plan`, [{
    id: "1",
    command: "sleep 30",
  }], { ships: 2 });
  const id = await sailOk(home, [plan, "--agent", "shell"]);
  for (
    const args of [["voyage", "sink"], ["voyage", "sink", id], [
      "voyage",
      "sink",
      id,
      "--all",
    ]]
  ) {
    assert.equal((await ohc(home, args)).code, 2, args.join(" "));
  }
  const r = JSON.parse(
    (await ohcOk(home, ["voyage", "sink", id, "--force", "--json"])).stdout,
  );
  assert.equal(r[0].voyage, id);
  const s: VoyageStatusJson = JSON.parse(
    (await ohcOk(home, ["voyage", "status", id, "--json"])).stdout,
  );
  assert.equal(s.voyage.state, "sunk");
  const left = JSON.parse(
    (await ohcOk(home, ["ship", "list", "--json"])).stdout,
  );
  assert.deepEqual(left.map((x: { name: string }) => x.name), ["keeper"]);
});

Deno.test("a ship without the agent's program fails the voyage at once, with one reason, before any task runs", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  // No claude on this machine's PATH (the real client is not on it).
  const id = await sailOk(home, [
    `${root}/examples/plans/demo`,
    "--agent",
    "claude",
    "--ships",
    "2",
  ], { ANTHROPIC_API_KEY: "sk-ant-unused" });
  const wait = await ohc(home, ["voyage", "status", id, "--wait"]);
  assert.equal(wait.code, 1);
  assert.match(wait.stdout, /: failed$/m);
  assert.match(
    wait.stdout,
    /^ {2}reason: ship \S+ has no claude executable on its PATH \(/m,
  );
  const tasks = await voyageTasks(home, id);
  assert.equal(tasks.length, 6);
  for (const t of tasks) {
    assert.equal(t.status, "failed");
    assert.equal(t.attempts, 0, "no task was tried");
    assert.match(
      t.error ?? "",
      /^not started: ship \S+ has no claude executable on its PATH/,
    );
  }
});
