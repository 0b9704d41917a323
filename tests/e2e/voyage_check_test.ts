import assert from "node:assert/strict";
import { ohc, ohcOk, scratchHome } from "../helpers/cli.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

Deno.test("voyage check: the twenty-task plan's shape, as text and JSON", async () => {
  const home = await scratchHome();
  const plan = `${root}/examples/plans/twenty`;
  const text = await ohcOk(home, ["voyage", "check", plan]);
  assert.match(text.stdout, /^Level 0 \(1 task\)$/m);
  const j = JSON.parse(
    (await ohcOk(home, ["voyage", "check", plan, "--json"])).stdout,
  );
  assert.equal(j.total_tasks, 20);
  assert.deepEqual(j.critical_path, [
    "1",
    "9",
    "10",
    "11",
    "12",
    "13",
    "14",
    "15",
    "20",
  ]);
  assert.equal(j.max_parallel_width, 8);
  assert.equal(j.recommended_ships, 8);
});

Deno.test("voyage check: bad plans exit 2 naming the problem", async () => {
  const home = await scratchHome();
  const cases: [string, RegExp][] = [
    ["cycle", /cycle 1 -> 3 -> 2 -> 1/],
    ["unknown-blocker", /unknown|not a task|does not exist/i],
    ["bad-json", /bad JSON at line/],
    ["missing-files", /spec\.md|verify\.sh/],
    ["duplicate-ids", /duplicate/i],
  ];
  for (const [name, re] of cases) {
    const r = await ohc(home, [
      "voyage",
      "check",
      `${root}/tests/fixtures/plans/${name}`,
    ]);
    assert.equal(r.code, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, re, name);
    assert.equal(r.stdout, "");
  }
  const missing = await ohc(home, ["voyage", "check", `${home}/nope`]);
  assert.equal(missing.code, 2);
});
