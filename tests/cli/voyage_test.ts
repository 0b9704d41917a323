/** `voyage ...` against a fake VoyageApi, nothing spawned. */
import assert from "node:assert/strict";
import type { VoyageApi } from "../../lib/voyage/api.ts";
import type { VoyageStatus } from "../../lib/voyage/rpc.ts";
import { CAPTAIN, runWith } from "../helpers/cli_context.ts";
import { writePlan } from "../helpers/plans.ts";

function status(state: string, id = "v-abc"): VoyageStatus {
  return {
    voyage: {
      id,
      name: null,
      state,
      repo: null,
      branch: `voyage/${id}`,
      agent: "shell",
      created_at: new Date().toISOString(),
      verify_code: state === "verified" ? 0 : null,
    },
    counts: { pending: 0, running: 0, done: 2, failed: 0 },
    ships: [{
      ship: `${id}-ship-0`,
      state: "idle",
      stale: false,
      current_task: null,
      task_started_at: null,
      last_heartbeat: null,
    }],
    reason: null,
  } as unknown as VoyageStatus;
}

Deno.test("voyage commands on a ship: exit 2, the flagship not asked", async () => {
  for (const args of [["voyage", "list"], ["status"], ["voyage", "logs"]]) {
    const r = await runWith({ identity: CAPTAIN }, args);
    assert.equal(r.code, 2, args.join(" "));
    assert.match(
      r.stderr,
      /runs on your own machine or on the flagship, not on ship "alpha"\n$/,
    );
    assert.deepEqual(r.calls, []);
  }
});

Deno.test("voyage status: the table; --wait polls until the voyage ends, exit 1 unless verified", async () => {
  let r = await runWith({
    voyage: { status: () => Promise.resolve(status("running")) },
  }, ["voyage", "status"]);
  assert.equal(r.code, 0);
  assert.match(r.stdout, /^VOYAGE v-abc: running\n/);
  assert.match(r.stdout, /tasks: 2 done, 0 running, 0 pending, 0 failed/);
  const states = ["running", "failed"];
  r = await runWith({
    voyage: { status: () => Promise.resolve(status(states.shift()!)) },
  }, ["status", "--wait", "--json"]);
  assert.equal(r.code, 1);
  assert.equal(JSON.parse(r.stdout).voyage.state, "failed");
  assert.deepEqual(r.calls.map((c) => c.slice(0, 2)), [
    ["voyage.status", undefined],
    ["voyage.status", "v-abc"],
  ]);
});

Deno.test("voyage tasks: ocaptain's status names are ours", async () => {
  const r = await runWith({
    voyage: {
      tasks: () =>
        Promise.resolve({
          voyage: "v-abc",
          tasks: [{
            id: "t1",
            status: "running",
            ship: "s0",
            attempts: 1,
            blocked_by: [],
            commit_sha: null,
            subject: "do it",
            error: null,
          }],
        } as never),
    },
  }, ["tasks", "-s", "in_progress"]);
  assert.equal(r.code, 0);
  assert.deepEqual(r.calls, [["voyage.tasks", {
    id: undefined,
    status: "running",
  }]]);
  assert.match(r.stdout, /t1\s+running\s+s0\s+1\s+-\s+-\s+do it/);
  const bad = await runWith({}, ["voyage", "tasks", "--status", "nope"]);
  assert.equal(bad.code, 2);
  assert.deepEqual(bad.calls, []);
});

Deno.test("voyage logs: lines as they come, split across chunks; a bad --grep or --tail is exit 2", async () => {
  const enc = new TextEncoder();
  const r = await runWith({
    voyage: {
      logs: (_a, onData) => {
        onData(enc.encode("one\ntw"));
        onData(enc.encode("o\nthree"));
        return Promise.resolve(null);
      },
    },
  }, ["logs", "v-abc", "--tail", "3", "-g", "o"]);
  assert.equal(r.stdout, "one\ntwo\nthree\n");
  assert.deepEqual(r.calls[0][1], {
    id: "v-abc",
    ship: undefined,
    follow: false,
    raw: false,
    grep: "o",
    tail: 3,
  });
  for (
    const [args, line] of [
      [["--grep", "("], /^error: --grep: /],
      [
        ["--tail", "0"],
        /^error: --tail must be a positive whole number, not "0"\n$/,
      ],
    ] as const
  ) {
    const b = await runWith({}, ["voyage", "logs", ...args]);
    assert.equal(b.code, 2);
    assert.match(b.stderr, line);
    assert.deepEqual(b.calls, []);
  }
});

Deno.test("voyage sink: misuse is exit 2 before anything is asked; --all sinks each", async () => {
  for (
    const [args, line] of [
      [[], "name a voyage, or pass --all"],
      [["v-1", "--all"], "give a voyage id or --all, not both"],
      [
        ["v-1"],
        "refusing to sink without a terminal to confirm on; pass --force",
      ],
    ] as const
  ) {
    const r = await runWith({}, ["voyage", "sink", ...args]);
    assert.equal(r.code, 2, args.join(" "));
    assert.equal(r.stderr, `error: ${line}\n`);
    assert.deepEqual(r.calls, []);
  }
  const voyage: Partial<VoyageApi> = {
    list: () =>
      Promise.resolve([status("running", "v-1"), status("failed", "v-2")]),
    sink: (a) =>
      Promise.resolve({ voyage: a.id, destroyed: ["s"], purged: !!a.purge }),
  };
  let r = await runWith({ voyage, tty: true, answers: ["no"] }, [
    "sink",
    "--all",
  ]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /This will stop v-1, v-2 and destroy its ships\.\n/);
  assert.ok(!r.calls.some((c) => c[0] === "voyage.sink"));
  r = await runWith({ voyage }, ["sink", "--all", "--force", "-s"]);
  assert.equal(r.code, 0);
  assert.equal(
    r.stdout,
    "Sank voyage v-1: 1 ship(s) destroyed; its record removed.\n" +
      "Sank voyage v-2: 1 ship(s) destroyed; its record removed.\n",
  );
});

Deno.test("voyage list: the table and the ids completion offers", async () => {
  const home = await Deno.makeTempDir();
  try {
    const r = await runWith({
      home,
      voyage: { list: () => Promise.resolve([status("verified", "v-1")]) },
    }, ["voyage", "list"]);
    assert.match(r.stdout, /v-1\s+verified\s+2\s+0\s+2\s+1/);
    assert.equal(
      await Deno.readTextFile(`${home}/.ohcommodore/cache/voyages`),
      "v-1\n",
    );
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("voyage sail: the plan and the agent are checked before the flagship is asked; secrets travel apart", async () => {
  const dir = await writePlan(await Deno.makeTempDir(), [
    { id: "t1", command: "true" },
  ]);
  let r = await runWith({}, ["sail", dir, "--agent", "claude"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /CLAUDE_CODE_OAUTH_TOKEN/);
  assert.deepEqual(r.calls, []);
  r = await runWith({}, ["sail", dir, "--ships", "0"]);
  assert.equal(r.code, 2);
  r = await runWith({}, ["sail", "/no/such/plan", "--agent", "shell"]);
  assert.equal(r.code, 2);
  assert.deepEqual(r.calls, []);
  r = await runWith({
    env: { CLAUDE_CODE_OAUTH_TOKEN: "sk-secret", GH_TOKEN: "gh" },
    voyage: {
      sail: (_a, _secrets) =>
        Promise.resolve({ id: "v-9", ships: ["a", "b"], tasks: 3 } as never),
    },
  }, ["voyage", "sail", dir, "--model", "sonnet"]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^Voyage v-9 is sailing: 3 tasks on 2 ships\.\n/);
  const [, args, secrets] = r.calls[0] as [
    string,
    Record<string, unknown>,
    Record<string, string>,
  ];
  assert.equal(args.agent, "claude");
  assert.equal(args.model, "sonnet");
  assert.ok(!JSON.stringify(args).includes("sk-secret"));
  // An empty repository needs no GH_TOKEN: it is not sent.
  assert.deepEqual(secrets, { CLAUDE_CODE_OAUTH_TOKEN: "sk-secret" });
});
