/** `inbox ...` and `daemon ...` against fakes, nothing spawned. */
import assert from "node:assert/strict";
import type { InboxApi } from "../../lib/inbox/api.ts";
import { CAPTAIN, runWith } from "../helpers/cli_context.ts";

const b64 = (s: string) => btoa(s);

Deno.test("inbox send: misuse is exit 2 with nothing sent", async () => {
  for (
    const [args, line] of [
      [
        ["--timeout", "0"],
        '--timeout must be a positive number of seconds, not "0"',
      ],
      [
        ["--timeout", "x"],
        '--timeout must be a positive number of seconds, not "x"',
      ],
      [
        ["--timeout", "99999999"],
        "--timeout must be at most 2147483 seconds (about 24 days), not 99999999",
      ],
    ] as const
  ) {
    const r = await runWith({}, ["inbox", "send", ...args, "captain@a", "ls"]);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, `error: ${line}\n`);
    assert.deepEqual(r.calls, []);
  }
  const r = await runWith({}, ["inbox", "send", "captain@a", ""]);
  assert.equal(r.code, 2);
  assert.equal(r.stderr, "error: the command must not be empty\n");
});

Deno.test("inbox send --wait: the command's output and exit code", async () => {
  const inbox: Partial<InboxApi> = {
    send: (recipient, command, timeout) =>
      Promise.resolve({ id: "m1", recipient, command, timeout } as never),
    wait: () =>
      Promise.resolve({
        status: "done",
        exit_code: 7,
        stdout_b64: b64("out\n"),
        stderr_b64: b64("err\n"),
      } as never),
  };
  let r = await runWith({ inbox }, ["inbox", "send", "captain@a", "ls"]);
  assert.equal(r.stdout, "Message sent: m1 -> captain@a\n");
  assert.deepEqual(r.calls, [["inbox.send", "captain@a", "ls", null]]);
  r = await runWith({ inbox }, [
    "inbox",
    "send",
    "--wait",
    "--timeout",
    "5",
    "captain@a",
    "ls",
  ]);
  assert.equal(r.code, 7);
  assert.equal(r.stdout, "out\n");
  assert.equal(r.stderr, "err\n");
  // A command that never ran: its error, exit 1.
  inbox.wait = () =>
    Promise.resolve({
      status: "error",
      exit_code: null,
      error: "timed out",
      stdout_b64: null,
      stderr_b64: null,
    } as never);
  r = await runWith({ inbox }, ["inbox", "send", "--wait", "captain@a", "ls"]);
  assert.equal(r.code, 1);
  assert.equal(r.stderr, "error: timed out\n");
});

Deno.test("inbox list: statuses and limits checked, messages and the queue shown", async () => {
  let r = await runWith({}, ["inbox", "list", "--status", "nope"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /^error: invalid status "nope": one of unread/);
  r = await runWith({}, ["inbox", "list", "--limit", "0"]);
  assert.equal(r.code, 2);
  assert.deepEqual(r.calls, []);
  const now = new Date().toISOString();
  r = await runWith({
    inbox: {
      list: () =>
        Promise.resolve({
          messages: [{
            id: "0123456789",
            status: "done",
            sender: "commodore@f",
            recipient: "captain@a",
            command: "echo   hi\nthere",
            exit_code: 0,
            received_at: now,
          }] as never,
          queued: [{
            id: "abcdefghij",
            kind: "message",
            recipient: "captain@b",
            command: "ls",
            created_at: now,
          }],
        }),
    },
  }, ["inbox", "list", "--limit", "5"]);
  assert.equal(r.code, 0);
  assert.deepEqual(r.calls, [["inbox.list", { status: undefined, limit: 5 }]]);
  assert.match(
    r.stdout,
    /01234567\s+done\s+commodore@f\s+captain@a\s+echo hi there\s+0/,
  );
  assert.match(
    r.stdout,
    /QUEUED \(1\):[\s\S]*abcdefgh\s+message\s+captain@b\s+ls/,
  );
});

Deno.test("inbox show, read, done, error, delete, identity", async () => {
  const rec = {
    id: "m1",
    status: "pending",
    stdout_b64: b64("so"),
    stderr_b64: b64("se"),
    stdout_truncated: false,
    stderr_truncated: true,
  };
  const inbox: Partial<InboxApi> = {
    show: () => Promise.resolve({ kind: "inbox", record: rec as never }),
    set: (id) => Promise.resolve({ ...rec, id } as never),
    delete: (id) => Promise.resolve({ deleted: id }),
    identity: () => Promise.resolve("captain@alpha"),
  };
  let r = await runWith({ inbox }, ["inbox", "show", "m1"]);
  assert.match(r.stdout, /^id\s+m1\nstatus\s+pending\n/);
  assert.match(r.stdout, /--- stdout\nso--- stderr \(truncated\)\nse$/);
  r = await runWith({ inbox }, ["inbox", "done", "m1"]);
  assert.equal(r.stdout, "Marked done: m1\n");
  r = await runWith({ inbox }, ["inbox", "read", "m1"]);
  assert.equal(JSON.parse(r.stdout).id, "m1"); // read prints the message
  r = await runWith({ inbox }, ["inbox", "error", "m1", "bad"]);
  assert.equal(r.stdout, "Marked error: m1\n");
  assert.deepEqual(r.calls, [["inbox.set", "m1", "error", "bad"]]);
  r = await runWith({ inbox }, ["inbox", "delete", "m1"]);
  assert.equal(r.stdout, "Deleted: m1\n");
  r = await runWith({ inbox }, ["inbox", "identity"]);
  assert.equal(r.stdout, "captain@alpha\n");
  r = await runWith({ inbox }, ["inbox", "error", "m1"]);
  assert.equal(r.code, 2);
  assert.match(r.stderr, /missing required argument 'message'/);
});

Deno.test("daemon: refused on the user's machine with exit 2, one line", async () => {
  for (
    const verb of ["status", "start", "stop", "restart", "pause", "resume"]
  ) {
    const r = await runWith({}, ["daemon", verb]);
    assert.equal(r.code, 2, verb);
    assert.equal(
      r.stderr,
      `error: 'daemon ${verb}' runs on the flagship or a ship; from here: ohcommodore ship exec <ship> -- ohcommodore daemon ${verb}\n`,
    );
  }
});

Deno.test("daemon status on a VM: stopped is exit 1 with a hint", async () => {
  const home = await Deno.makeTempDir();
  try {
    const r = await runWith(
      { identity: CAPTAIN, home, env: { OHCOMMODORE_NO_SYSTEMD: "1" } },
      ["daemon", "status"],
    );
    assert.equal(r.code, 1);
    assert.equal(r.stdout, "stopped\n");
    assert.equal(
      r.stderr,
      "error: the daemon is not running\nhint: ohcommodore daemon start\n",
    );
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
