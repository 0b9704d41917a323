/**
 * One definition of a valid plan, through the CLI: what `voyage check`
 * accepts sails and runs on the ships (odd ids included), what cannot work
 * is exit 2 at check and at sail with the reason, only regular files inside
 * the plan are read, and a refused sail leaves nothing on the flagship.
 */
import assert from "node:assert/strict";
import {
  listDir,
  localFleet,
  ohc,
  ohcOk,
  scratchHome,
} from "../helpers/cli.ts";
import { writePlan } from "../helpers/plans.ts";
import { sailOk, voyageTasks, waitVoyage } from "../helpers/voyage.ts";

/** The flagship's voyages/ folder in a local fleet. */
async function flagshipVoyages(home: string): Promise<string[]> {
  const root = `${home}/.ohcommodore/local`;
  const out: string[] = [];
  for (const vm of await listDir(root)) {
    const id = JSON.parse(
      await Deno.readTextFile(`${root}/${vm}/.ohcommodore/identity.json`)
        .catch(() => "{}"),
    );
    if (id.role === "commodore") {
      out.push(...await listDir(`${root}/${vm}/.ohcommodore/voyages`));
    }
  }
  return out;
}

Deno.test("ids with dots, slashes, a leading dash or .lock check, sail and land; subjects print escaped", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const ids = ["1.1", "a/b", "-x", "a.lock", "my_task"];
  // Task files named 1.json..5.json, holding the odd ids.
  const plan = await writePlan(`${home}/plan`, [], {
    verify: `#!/bin/bash\nfor i in 0 1 2 3 4; do test -f out-$i.txt; done\n`,
  });
  ids.forEach((id, i) =>
    Deno.writeTextFileSync(
      `${plan}/tasks/${i + 1}.json`,
      JSON.stringify({
        id,
        // Escape sequences and newlines from subjects are shown escaped.
        subject: `task ${id}\x1b[31m red\r\nsecond line`,
        description: "d",
        blockedBy: id === "a/b" ? ["1.1"] : [],
        command: `echo ${i} > out-${i}.txt`,
      }),
    )
  );
  const check = await ohcOk(home, ["voyage", "check", plan]);
  assert.ok(!/[\r]/.test(check.stdout) && !check.stdout.includes("\x1b"));
  assert.match(check.stdout, /task 1\.1\\x1b\[31m red\\r\\nsecond line$/m);
  // A repo-less voyage: GH_TOKEN goes nowhere.
  const token = "ghp_never_copied_0123456789";
  const id = await sailOk(home, [plan, "--agent", "shell", "--ships", "2"], {
    GH_TOKEN: token,
  });
  const s = await waitVoyage(home, id);
  const grep = await new Deno.Command("grep", {
    args: ["-rl", token, `${home}/.ohcommodore`],
  }).output();
  assert.equal(new TextDecoder().decode(grep.stdout), "");
  const ts = await voyageTasks(home, id);
  assert.equal(s.voyage.state, "verified", JSON.stringify(ts));
  assert.deepEqual(
    ts.map((t) => [t.id, t.attempts]).sort(),
    [
      ...ids.map((i) => [i, 1]),
    ].sort(),
  );
  const table = (await ohcOk(home, ["voyage", "tasks", id])).stdout;
  assert.ok(!/[\r]/.test(table) && !table.includes("\x1b"));
  assert.equal(table.trim().split("\n").length, 1 + ids.length, table);
  assert.match(table, /task a\/b\\x1b\[31m red\\r\\nsecond line$/m);
  // Each under its slug: the log names on the ships.
  const logs = await ohcOk(home, ["voyage", "logs", id, "--grep", "exit 0"]);
  for (const slug of ["1_2e1", "a_2fb", "-x", "a_2elock", "my_5ftask"]) {
    assert.match(logs.stdout, new RegExp(`task-${slug}\\]`), logs.stdout);
  }
});

Deno.test("ids and sizes that cannot work are exit 2 at check and at sail, with the reason", async () => {
  const home = await scratchHome();
  try {
    const cases: [string, (dir: string) => Promise<void>, RegExp][] = [
      ["a newline in an id", async (dir) => {
        await Deno.writeTextFile(
          `${dir}/tasks/1.json`,
          JSON.stringify({ id: "x\ny", subject: "s", command: "true" }),
        );
      }, /"id" "x\\ny" contains a control character/],
      ["a long id", async (dir) => {
        await Deno.writeTextFile(
          `${dir}/tasks/1.json`,
          JSON.stringify({ id: "x".repeat(65), subject: "s", command: "true" }),
        );
      }, /longer than 64 characters/],
      ["a 20 MB description", async (dir) => {
        await Deno.writeTextFile(
          `${dir}/tasks/1.json`,
          JSON.stringify({
            id: "1",
            subject: "s",
            description: "d".repeat(20 << 20),
            command: "true",
          }),
        );
      }, /tasks\/1\.json: is \d+ bytes; at most 262144/],
      ["a 100 KB description", async (dir) => {
        await Deno.writeTextFile(
          `${dir}/tasks/1.json`,
          JSON.stringify({
            id: "1",
            subject: "s",
            description: "d".repeat(100_000),
            command: "true",
          }),
        );
      }, /"description" is 100000 bytes; at most 65536/],
      ["10000 recommended ships", async (dir) => {
        await Deno.writeTextFile(
          `${dir}/voyage.json`,
          JSON.stringify({ repo: "empty", recommended_ships: 10000 }),
        );
      }, /"recommended_ships" is 10000; a voyage sails with at most 100 ships/],
      ["a FIFO as a task file", async (dir) => {
        const r = await new Deno.Command("mkfifo", {
          args: [`${dir}/tasks/2.json`],
        }).output();
        assert.ok(r.success);
      }, /tasks\/2\.json: is not a regular file/],
      ["a task file linked from outside", async (dir) => {
        await Deno.writeTextFile(
          `${home}/outside.json`,
          JSON.stringify({ id: "9", subject: "s", command: "true" }),
        );
        await Deno.symlink(`${home}/outside.json`, `${dir}/tasks/9.json`);
      }, /tasks\/9\.json: is a symbolic link leading outside the plan/],
      ["verify.sh linked to /etc/passwd", async (dir) => {
        await Deno.remove(`${dir}/verify.sh`);
        await Deno.symlink("/etc/passwd", `${dir}/verify.sh`);
      }, /verify\.sh: is a symbolic link leading outside the plan/],
      ["tasks/ linked from outside", async (dir) => {
        await Deno.rename(`${dir}/tasks`, `${home}/elsewhere`);
        await Deno.symlink(`${home}/elsewhere`, `${dir}/tasks`);
      }, /tasks: is a symbolic link leading outside the plan/],
      ["verify.sh a directory", async (dir) => {
        await Deno.remove(`${dir}/verify.sh`);
        await Deno.mkdir(`${dir}/verify.sh`);
      }, /verify\.sh: is a directory/],
    ];
    let n = 0;
    for (const [what, spoil, re] of cases) {
      const dir = await writePlan(`${home}/plan-${n++}`, [
        { id: "1", command: "true" },
      ]);
      await spoil(dir);
      for (
        const args of [
          ["voyage", "check", dir],
          ["voyage", "sail", dir, "--agent", "shell"],
        ]
      ) {
        const r = await ohc(home, args, { timeoutMs: 60_000 });
        assert.equal(r.code, 2, `${what}, ${args[1]}: ${r.stderr}`);
        assert.match(r.stderr, re, `${what}, ${args[1]}`);
        assert.doesNotMatch(r.stderr, /--ships/, what);
        assert.doesNotMatch(r.stderr, /root:/, what); // nothing of the target
        assert.equal(r.stdout, "");
      }
    }
    // A link inside the plan is fine.
    const ok = await writePlan(`${home}/plan-ok`, [{ id: "1", command: "x" }]);
    await Deno.rename(`${ok}/verify.sh`, `${ok}/check.sh`);
    await Deno.symlink("check.sh", `${ok}/verify.sh`);
    await ohcOk(home, ["voyage", "check", ok]);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});

Deno.test("a sail the flagship refuses leaves no folder in its voyages/", async () => {
  await using fleet = await localFleet();
  const home = fleet.home;
  const plan = await writePlan(`${home}/plan`, [{ id: "1", command: "true" }]);
  // A directory that is not a repository: the laptop passes it on, the
  // flagship's clone fails.
  await Deno.mkdir(`${home}/not-a-repo`);
  const r = await ohc(home, [
    "voyage",
    "sail",
    plan,
    "--agent",
    "shell",
    "--repo",
    `${home}/not-a-repo`,
  ]);
  assert.notEqual(r.code, 0, r.stderr);
  assert.deepEqual(await flagshipVoyages(home), []);
  const big = await ohc(home, [
    "voyage",
    "sail",
    plan,
    "--agent",
    "shell",
    "--ships",
    "101",
  ]);
  assert.equal(big.code, 2);
  assert.match(big.stderr, /--ships must be between 1 and 100, not 101/);
  assert.deepEqual(await flagshipVoyages(home), []);
  assert.equal(
    (await ohcOk(home, ["voyage", "list"])).stdout.trim(),
    "No voyages.",
  );
});
