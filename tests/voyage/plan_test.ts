/**
 * Plan loading: both task shapes, normalisation (ids, inverse `blocks`,
 * commands), and every kind of bad plan, each reported with its file, all
 * at once, as a UsageError (exit code 2).
 */
import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import {
  type Plan,
  PLAN_TASK_STATUSES,
  PlanError,
  type PlanTaskStatus,
} from "../../lib/voyage/plan/plan.ts";
import type { TaskStatus } from "../../lib/voyage/flagship/queue.ts";
import { badJsonMessage } from "../../lib/voyage/plan/problems.ts";
import { extractAcceptance } from "../../lib/voyage/plan/tasks.ts";
import {
  extractObjective,
  parseAddedTasks,
} from "../../lib/voyage/plan/check.ts";
import { loadPlan, readAddedTaskFiles } from "../../lib/voyage/plan/read.ts";
import { analyze } from "../../lib/voyage/plan/dag.ts";
import { checkJson, formatCheck } from "../../lib/voyage/plan/check_report.ts";

const root = new URL("../../", import.meta.url).pathname;
const fixture = (name: string) => `${root}tests/fixtures/plans/${name}`;
const example = (name: string) => `${root}examples/plans/${name}`;

/** Loads a plan that must fail; returns its problems as "file: message". */
async function problems(dir: string): Promise<string[]> {
  try {
    await loadPlan(dir);
  } catch (e) {
    assert.ok(e instanceof PlanError, `expected PlanError, got ${e}`);
    assert.ok(e instanceof UsageError);
    assert.equal(e.exitCode, 2);
    assert.equal(e.code, "usage");
    assert.match(e.hint ?? "", /voyage check/);
    return e.problems.map((p) => `${p.file}: ${p.message}`);
  }
  assert.fail(`${dir} loaded but should not have`);
}

function task(plan: Plan, id: string) {
  const t = plan.tasks.find((t) => t.id === id);
  assert.ok(t, `task ${id} missing`);
  return t;
}

Deno.test("new shape: the demo example loads with every field", async () => {
  const plan = await loadPlan(example("demo"));
  assert.equal(plan.repo, "empty");
  assert.equal(plan.recommendedShips, 3);
  assert.equal(plan.name, "demo-fleet-report");
  assert.equal(plan.voyage.total_tasks, 6, "other voyage.json fields kept");
  assert.deepEqual(plan.tasks.map((t) => t.id), ["1", "2", "3", "4", "5", "6"]);
  const t2 = task(plan, "2");
  assert.equal(t2.shape, "new");
  assert.equal(t2.subject, "Write the ships section");
  assert.equal(t2.activeForm, "Writing the ships section");
  assert.equal(t2.status, "pending");
  assert.deepEqual(t2.blockedBy, ["1"]);
  assert.deepEqual(t2.blocks, ["5"]);
  assert.deepEqual(t2.metadata, { voyage: "demo-fleet-report" });
  assert.match(t2.command ?? "", /report\/10-ships\.md/);
  assert.match(t2.acceptance ?? "", /starts with "## Ships"/);
  assert.equal(t2.file, "tasks/2.json");
  assert.deepEqual(task(plan, "5").blockedBy, ["2", "3", "4"]);
  assert.match(plan.objective, /^Build a tiny Markdown report/);
  assert.match(plan.spec, /## Exit Criteria/);
  assert.match(plan.verify, /^#!\/usr\/bin\/env bash/);
  assert.deepEqual(plan.warnings, []);
});

Deno.test("older shape: title, numeric ids, timestamps, blocks-only edges", async () => {
  const plan = await loadPlan(fixture("older"));
  assert.equal(plan.repo, "octocat/Hello-World");
  assert.equal(plan.voyage.created, "2026-01-25T12:00:00Z");
  assert.deepEqual(plan.tasks.map((t) => t.id), ["1", "2", "3", "4"]);
  const t1 = task(plan, "1");
  assert.equal(t1.shape, "older");
  assert.equal(t1.subject, "Old task 1");
  assert.equal(t1.created, "2026-01-25T12:00:00Z");
  assert.equal(t1.updated, "2026-01-25T12:00:00Z");
  assert.equal(t1.activeForm, undefined);
  assert.equal(t1.metadata.ship, "ship-0");
  // Task 1's file says it blocks 2 and 3 (3 as a number); 2 and 3 say nothing.
  assert.deepEqual(t1.blocks, ["2", "3"]);
  assert.deepEqual(task(plan, "2").blockedBy, ["1"]);
  assert.deepEqual(task(plan, "3").blockedBy, ["1"]);
  assert.deepEqual(task(plan, "4").blockedBy, ["2", "3"]);
  assert.deepEqual(task(plan, "2").blocks, ["4"]);
  // "Acceptance:" runs to the next "Label:" paragraph.
  assert.equal(t1.acceptance, "a exists.\nAnd is not empty.");
  const warnings = plan.warnings.map((w) => `${w.file}: ${w.message}`);
  assert.ok(
    warnings.some((w) => /^tasks: tasks 1, 2, 3, 4 name a ship/.test(w)),
    warnings.join("\n"),
  );
  assert.ok(
    warnings.some((w) => /tasks\/4\.json: task 4 has no description/.test(w)),
  );
});

Deno.test("command from either field, inverse blocks, relative repo, kept fields", async () => {
  const plan = await loadPlan(fixture("commands"));
  assert.equal(task(plan, "1").command, "echo one > one.txt");
  assert.equal(
    task(plan, "2").command,
    "echo two > two.txt",
    "metadata.command",
  );
  assert.equal(
    task(plan, "4").command,
    "echo a",
    "command wins over metadata.command",
  );
  // 3 is blocked by 1 itself and by 2 through 2's "blocks".
  assert.deepEqual(task(plan, "3").blockedBy, ["1", "2"]);
  assert.deepEqual(task(plan, "2").blocks, ["3"]);
  assert.equal(plan.repo, `${fixture("commands")}/seed-repo`);
  assert.equal(plan.voyage.repo, "./seed-repo", "voyage.json kept as written");
  assert.deepEqual(plan.voyage.custom, { kept: true });
  assert.equal(
    plan.objective,
    "First paragraph is the objective when there is no Objective heading.",
  );
  const t4 = task(plan, "4");
  assert.equal(t4.status, "completed");
  assert.equal(t4.owner, "ship-1");
  const warnings = plan.warnings.map((w) => w.message).join("\n");
  assert.match(warnings, /task 4 has no description/);
  assert.match(warnings, /task 4 has status "completed"/);
  assert.match(warnings, /both "command" and "metadata.command"/);
  assert.match(warnings, /task 4 name a ship/);
});

Deno.test("a repo override replaces voyage.json's and may stand in for it", async () => {
  const plan = await loadPlan(fixture("commands"), { repo: "me/other" });
  assert.equal(plan.repo, "me/other");

  const dir = await copyPlan(example("demo"));
  try {
    const v = JSON.parse(await Deno.readTextFile(`${dir}/voyage.json`));
    delete v.repo;
    await Deno.writeTextFile(`${dir}/voyage.json`, JSON.stringify(v));
    assert.deepEqual(await problems(dir), [
      `voyage.json: "repo" is missing (owner/name, a git URL, a path, or "empty"; or pass --repo)`,
    ]);
    assert.equal((await loadPlan(dir, { repo: "./here" })).repo, "./here");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("missing spec.md, verify.sh and tasks are all reported", async () => {
  assert.deepEqual(await problems(fixture("missing-files")), [
    "spec.md: missing",
    "verify.sh: missing",
    "tasks: missing: a plan needs a tasks/ directory with one JSON file per task",
  ]);
});

Deno.test("missing voyage.json", async () => {
  assert.deepEqual(await problems(fixture("no-voyage-json")), [
    "voyage.json: missing",
  ]);
});

Deno.test("a tasks directory with no JSON files", async () => {
  assert.deepEqual(await problems(fixture("no-tasks")), [
    "tasks: no tasks: the directory holds no *.json files",
  ]);
});

Deno.test("a plan path that is missing or not a directory", async () => {
  assert.deepEqual(await problems(`${root}tests/fixtures/plans/nope`), [
    ": plan directory not found",
  ]);
  const [p] = await problems(`${example("README.md")}`);
  assert.match(p, /^: is not a directory/);
});

Deno.test("bad JSON in voyage.json and task files, with positions", async () => {
  assert.deepEqual(await problems(fixture("bad-json")), [
    "voyage.json: bad JSON at line 1, column 1: comments are not allowed in JSON",
    "tasks/2.json: bad JSON at line 1, column 1: comments are not allowed in JSON",
    "tasks/3.json: bad JSON: the file is empty",
  ]);
});

Deno.test("bad JSON positions point at the mistake", async () => {
  const dir = await copyPlan(example("demo"));
  try {
    await Deno.writeTextFile(
      `${dir}/tasks/2.json`,
      '{\n  "id": "2",\n  "subject": "Two" "description": "x"\n}\n',
    );
    await Deno.writeTextFile(
      `${dir}/tasks/3.json`,
      '{ "id": "3", "subject": "x", }',
    );
    assert.deepEqual(await problems(dir), [
      "tasks/2.json: bad JSON at line 3, column 20: Expected ',' or '}' after property value",
      "tasks/3.json: bad JSON at line 1, column 30: Expected double-quoted property name",
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  assert.equal(
    badJsonMessage(
      '{"a": tru}',
      'Unexpected token \'}\', "{"a": tru}" is not valid JSON',
    ),
    "bad JSON at line 1, column 7: Unexpected token '}'",
  );
  assert.equal(
    badJsonMessage(
      '{"a": "x',
      "Unterminated string in JSON at position 8 (line 1 column 9)",
    ),
    "bad JSON at line 1, column 7: Unterminated string",
  );
});

Deno.test("wrong field types, every one", async () => {
  assert.deepEqual(await problems(fixture("wrong-types")), [
    `voyage.json: "repo" must be a non-empty string, not number 5`,
    `voyage.json: "recommended_ships" must be a whole number >= 1, not a string ("3")`,
    `voyage.json: "name" must be a string, not number 1`,
    `tasks/1.json: "subject" must be a string, not number 7`,
    `tasks/1.json: "blockedBy" must be a list of task ids, not a string ("2")`,
    `tasks/1.json: "blocks" must hold task ids (strings or whole numbers), not boolean true`,
    `tasks/2.json: "status" must be one of pending, in_progress, completed, not a string ("done")`,
    `tasks/2.json: "metadata" must be an object, not an array`,
    `tasks/2.json: "command" must be a string, not number 5`,
    `tasks/3.json: "id" must be a non-empty string or a whole number, not an object`,
    `tasks/4.json: "subject" is missing (or the older shape's "title")`,
    `tasks/5.json: must be a JSON object, not an array`,
  ]);
});

Deno.test("recommended_ships must be a positive whole number", async () => {
  for (const bad of [0, -1, 2.5, null]) {
    const dir = await copyPlan(example("demo"));
    try {
      await Deno.writeTextFile(
        `${dir}/voyage.json`,
        JSON.stringify({ repo: "empty", recommended_ships: bad }),
      );
      const [p] = await problems(dir);
      assert.match(
        p,
        /^voyage\.json: "recommended_ships" must be a whole number >= 1/,
      );
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("unknown blockers name the task and the blocker", async () => {
  assert.deepEqual(await problems(fixture("unknown-blocker")), [
    "tasks/2.json: task 2 is blocked by unknown task 9",
    "tasks/3.json: task 3 blocks unknown task 8",
  ]);
});

Deno.test("duplicate ids name both files", async () => {
  assert.deepEqual(await problems(fixture("duplicate-ids")), [
    "tasks/2-copy.json: duplicate task id 2: also in tasks/2.json",
  ]);
});

Deno.test("self-dependency", async () => {
  assert.deepEqual(await problems(fixture("self-dependency")), [
    "tasks/2.json: task 2 is blocked by itself",
  ]);
});

Deno.test("cycles are named, each one, inverse blocks included", async () => {
  const ps = await problems(fixture("cycle"));
  assert.equal(ps.length, 2, ps.join("\n"));
  assert.match(ps[0], /^tasks\/1\.json: dependency cycle 1 -> 3 -> 2 -> 1 /);
  assert.match(ps[0], /tasks\/1\.json, tasks\/3\.json, tasks\/2\.json/);
  assert.match(ps[1], /^tasks\/5\.json: dependency cycle 5 -> 6 -> 5 /);
});

Deno.test("the error message lists every problem with its path", async () => {
  const dir = fixture("unknown-blocker");
  await assert.rejects(loadPlan(dir), (e: Error) => {
    assert.equal(
      e.message,
      `invalid plan ${dir}: 2 problems\n` +
        `  ${dir}/tasks/2.json: task 2 is blocked by unknown task 9\n` +
        `  ${dir}/tasks/3.json: task 3 blocks unknown task 8`,
    );
    return true;
  });
  await assert.rejects(loadPlan(fixture("self-dependency")), (e: Error) => {
    assert.equal(
      e.message,
      `invalid plan: ${
        fixture("self-dependency")
      }/tasks/2.json: task 2 is blocked by itself`,
    );
    return true;
  });
});

Deno.test("ids are strings and sort numerically; file names may differ", async () => {
  const dir = await copyPlan(example("demo"));
  try {
    // Task 10 in 10.json blocked by the number 6; task 6's file renamed.
    await Deno.rename(`${dir}/tasks/6.json`, `${dir}/tasks/six.json`);
    await Deno.writeTextFile(
      `${dir}/tasks/10.json`,
      JSON.stringify({
        id: 10,
        subject: "Ten",
        description: "d",
        blockedBy: [6],
      }),
    );
    const plan = await loadPlan(dir);
    assert.deepEqual(plan.tasks.map((t) => t.id), [
      "1",
      "2",
      "3",
      "4",
      "5",
      "6",
      "10",
    ]);
    assert.deepEqual(task(plan, "10").blockedBy, ["6"]);
    assert.deepEqual(task(plan, "6").blocks, ["10"]);
    assert.equal(task(plan, "6").file, "tasks/six.json");
    assert.ok(
      plan.warnings.some((w) =>
        w.file === "tasks/six.json" && /file name suggests six/.test(w.message)
      ),
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("extractObjective and extractAcceptance", () => {
  assert.equal(
    extractObjective("# T\n\n## Objective\n\nDo it.\nWell.\n\n## Next\n\nx"),
    "Do it.\nWell.",
  );
  assert.equal(extractObjective("# T\n\nFirst.\n\nSecond."), "First.");
  assert.equal(extractObjective(""), "");
  assert.equal(
    extractAcceptance("Do x.\n\nFiles: a\n\nAcceptance: a works."),
    "a works.",
  );
  assert.equal(extractAcceptance("Do x."), undefined);
});

Deno.test("voyage check text and JSON for the examples", async () => {
  const demo = await loadPlan(example("demo"));
  const text = formatCheck(demo, analyze(demo.tasks));
  assert.match(text, /^Plan .*demo \(demo-fleet-report\)\n/);
  assert.ok(
    text.includes("Level 1 (3 tasks)\n  2  Write the ships section\n"),
    text,
  );
  assert.match(text, /Widest level: +3 \(level 1\)/);
  assert.match(text, /Critical path: +1 -> 2 -> 5 -> 6 \(4 tasks\)/);
  assert.match(
    text,
    /Recommended ships: +3 \(widest level 3, at most 8\); voyage.json suggests 3/,
  );
  assert.doesNotMatch(text, /Warnings/);

  const twenty = await loadPlan(example("twenty"));
  const json = checkJson(twenty, analyze(twenty.tasks));
  assert.equal(json.total_tasks, 20);
  assert.equal(json.max_parallel_width, 8);
  assert.equal(json.recommended_ships, 8);
  assert.equal(json.plan_recommended_ships, 8);
  assert.equal(json.tasks_with_command, 20);
  assert.deepEqual(json.warnings, []);
  assert.deepEqual(json.levels[0], {
    level: 0,
    tasks: [{ id: "1", subject: "Start the log" }],
  });
  assert.deepEqual(JSON.parse(JSON.stringify(json)), json, "plain JSON");

  const cmds = await loadPlan(fixture("commands"));
  const warn = formatCheck(cmds, analyze(cmds.tasks));
  assert.match(warn, /Warnings \(\d+\):/);
  assert.match(
    warn,
    /voyage\.json: "total_tasks" is 5 but the plan has 4 tasks/,
  );
});

Deno.test("the example plans run in dependency order and pass verify.sh", async () => {
  for (const name of ["demo", "twenty", "conflict"]) {
    const plan = await loadPlan(example(name));
    const a = analyze(plan.tasks);
    const dir = await Deno.makeTempDir({ prefix: `ohc-plan-${name}-` });
    try {
      // verify.sh fails on the untouched checkout...
      assert.notEqual((await bash(`${plan.path}/verify.sh`, dir)).code, 0);
      // ...and passes once every level has run (a level's tasks in parallel,
      // except conflict's: its two edits truncate and write the same file,
      // which in one shared directory can interleave into neither greeting;
      // on a voyage they run in separate checkouts).
      for (const level of a.levels) {
        const run = (id: string) =>
          bash(["-c", plan.tasks.find((t) => t.id === id)!.command!], dir);
        const results = name === "conflict"
          ? await serially(level, run)
          : await Promise.all(level.map(run));
        results.forEach((r, i) =>
          assert.equal(r.code, 0, `${name} task ${level[i]}: ${r.stderr}`)
        );
      }
      const v = await bash(`${plan.path}/verify.sh`, dir);
      assert.equal(v.code, 0, `${name} verify.sh: ${v.stderr}`);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
});

Deno.test("twenty: a task run before its blocker fails", async () => {
  const plan = await loadPlan(example("twenty"));
  const dir = await Deno.makeTempDir();
  try {
    for (const id of ["2", "9", "10", "16", "20"]) {
      const r = await bash(["-c", task(plan, id).command!], dir);
      assert.notEqual(r.code, 0, `task ${id} ran without its blockers`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

async function bash(
  args: string | string[],
  cwd: string,
): Promise<{ code: number; stderr: string }> {
  const out = await new Deno.Command("bash", {
    args: typeof args === "string" ? [args] : args,
    cwd,
    stdout: "null",
    stderr: "piped",
  }).output();
  return { code: out.code, stderr: new TextDecoder().decode(out.stderr) };
}

async function serially<T, R>(
  items: T[],
  f: (item: T) => Promise<R>,
): Promise<R[]> {
  const out: R[] = [];
  for (const item of items) out.push(await f(item));
  return out;
}

async function copyPlan(src: string): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "ohc-plan-" });
  await Deno.mkdir(`${dir}/tasks`);
  for (const f of ["voyage.json", "spec.md", "verify.sh"]) {
    await Deno.copyFile(`${src}/${f}`, `${dir}/${f}`);
  }
  for await (const e of Deno.readDir(`${src}/tasks`)) {
    await Deno.copyFile(`${src}/tasks/${e.name}`, `${dir}/tasks/${e.name}`);
  }
  return dir;
}

Deno.test("task slugs: plain ids stay, others escape, never two ids to one slug", async () => {
  const { taskSlug, taskIdProblem } = await import(
    "../../lib/voyage/plan/plan_rules.ts"
  );
  assert.equal(taskSlug("12"), "12");
  assert.equal(taskSlug("fix-login"), "fix-login");
  assert.equal(taskSlug("1.1"), "1_2e1");
  assert.equal(taskSlug("a/b"), "a_2fb");
  assert.equal(taskSlug("a_2fb"), "a_5f2fb");
  assert.equal(taskSlug("é"), "_c3_a9");
  const ids = ["1.1", "1_2e1", "1-1", "a.lock", "a_2elock", "-x", "x-", "../x"];
  assert.equal(new Set(ids.map(taskSlug)).size, ids.length);
  for (const id of ids) assert.match(taskSlug(id), /^[A-Za-z0-9_-]+$/);
  assert.equal(taskIdProblem("x\ny"), "contains a control character");
  assert.match(taskIdProblem("ж".repeat(30)) ?? "", /too long once made/);
});

Deno.test("parsePlan: the files a sail sends, checked as loadPlan checks a directory", async () => {
  const { parsePlan } = await import("../../lib/voyage/plan/check.ts");
  const demo = await loadPlan(example("demo"));
  assert.equal(parsePlan("p", demo.files).tasks.length, demo.tasks.length);
  assert.throws(
    () => parsePlan("p", { ...demo.files, "../x.json": "{}" }),
    /\.\.\/x\.json: is not a file a plan holds/,
  );
  assert.throws(
    () => parsePlan("p", { "voyage.json": demo.files["voyage.json"] }),
    /no tasks[\s\S]*spec\.md: missing/,
  );
});

Deno.test("recommended_ships may be left out (as in ocaptain: sail --ships or the default decides)", async () => {
  const dir = await copyPlan(example("demo"));
  try {
    await Deno.writeTextFile(
      `${dir}/voyage.json`,
      JSON.stringify({ repo: "empty" }),
    );
    const plan = await loadPlan(dir);
    assert.equal(plan.recommendedShips, undefined);
    const analysis = analyze(plan.tasks);
    assert.equal(checkJson(plan, analysis).plan_recommended_ships, null);
    assert.match(
      formatCheck(plan, analysis),
      /voyage\.json gives none \(sail uses --ships, else OHCOMMODORE_DEFAULT_SHIPS, 3\)/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("added tasks are checked as a plan's, against the voyage's own", () => {
  const file = (t: Record<string, unknown>) => JSON.stringify(t);
  const ok = parseAddedTasks({
    "tasks/7.json": file({ id: 7, subject: "seven", blockedBy: ["1"] }),
    "tasks/8.json": file({ id: "8", subject: "eight", blocks: [] }),
    "tasks/9.json": file({ id: "9", subject: "nine", blockedBy: ["8", "7"] }),
  }, ["1", "2"]);
  assert.deepEqual(ok.map((t) => [t.id, t.blockedBy]), [
    ["7", ["1"]],
    ["8", []],
    ["9", ["7", "8"]],
  ]);
  const bad = (files: Record<string, string>) => {
    try {
      parseAddedTasks(files, ["1", "2"]);
    } catch (e) {
      assert.ok(e instanceof PlanError);
      assert.equal(e.exitCode, 2);
      assert.match(e.message, /^invalid tasks/);
      return e.problems.map((p) => `${p.file}: ${p.message}`);
    }
    assert.fail("accepted");
  };
  assert.deepEqual(
    bad({
      "tasks/1.json": file({ id: "1", subject: "again" }),
      "tasks/3.json": file({ id: "3", subject: "x", blockedBy: ["5"] }),
      "tasks/4.json": file({ id: "4", subject: "x", blocks: ["2"] }),
    }),
    [
      "tasks/1.json: the voyage has a task 1 already",
      "tasks/3.json: task 3 is blocked by unknown task 5",
      "tasks/4.json: task 4 blocks task 2, which the voyage has already; an added task may block only added tasks",
    ],
  );
  assert.deepEqual(
    bad({
      "tasks/a.json": file({ id: "a", subject: "x", blockedBy: ["b"] }),
      "tasks/b.json": file({ id: "b", subject: "x", blockedBy: ["a"] }),
    }).map((p) => p.replace(/\(.*/, "")),
    ["tasks/a.json: dependency cycle a -> b -> a "],
  );
  assert.deepEqual(bad({ "voyage.json": "{}" }), [
    "voyage.json: is not a task file (tasks/<name>.json)",
  ]);
  assert.deepEqual(bad({}), [": no task files"]);
});

Deno.test("voyage add reads task files and plan directories with a plan's care", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/plan/tasks`, { recursive: true });
    await Deno.writeTextFile(`${dir}/plan/tasks/5.json`, "{}");
    await Deno.writeTextFile(`${dir}/plan/voyage.json`, "{}");
    await Deno.writeTextFile(`${dir}/6.json`, "{}");
    assert.deepEqual(
      Object.keys(await readAddedTaskFiles([`${dir}/plan`, `${dir}/6.json`]))
        .sort(),
      ["tasks/5.json", "tasks/6.json"],
    );
    await Deno.symlink("/etc/passwd", `${dir}/plan/tasks/out.json`);
    await assert.rejects(
      () => readAddedTaskFiles([`${dir}/plan`, `${dir}/nothing.json`]),
      (e: Error) =>
        e instanceof PlanError &&
        e.problems.map((p) => p.message).join("|") ===
          "is a symbolic link leading outside the plan directory|not found",
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a plan file's task status and the queue's are two types, named apart", () => {
  const inPlan: PlanTaskStatus = "in_progress";
  const inQueue: TaskStatus = "running";
  // @ts-expect-error: the queue's statuses are not a plan file's
  const wrong: PlanTaskStatus = "running";
  assert.ok(PLAN_TASK_STATUSES.includes(inPlan));
  assert.ok(inQueue && wrong);
});
