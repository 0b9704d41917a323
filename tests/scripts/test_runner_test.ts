import assert from "node:assert/strict";

const script = new URL("../../scripts/test.ts", import.meta.url).pathname;

Deno.test("deno task test refuses a test file that sets the process's environment, naming it, before running anything", async () => {
  const dir = await Deno.makeTempDir({ prefix: "ohc-test-runner-" });
  try {
    await Deno.mkdir(`${dir}/tests/sub`, { recursive: true });
    const ran = `${dir}/ran`;
    // Spelled in two parts so that this file does not match the rule itself.
    const setter = "Deno.env." + "set";
    await Deno.writeTextFile(
      `${dir}/tests/sub/home_test.ts`,
      `${setter}("HOME", "/tmp");\nDeno.test("x", () => {});\n`,
    );
    await Deno.writeTextFile(
      `${dir}/tests/fine_test.ts`,
      `Deno.test("y", () => Deno.writeTextFileSync(${
        JSON.stringify(ran)
      }, "1"));\n`,
    );
    const run = () =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", script],
        cwd: dir,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const refused = await run();
    assert.equal(refused.code, 2);
    assert.match(
      new TextDecoder().decode(refused.stderr),
      /^test: tests\/sub\/home_test\.ts set the process's environment/,
    );
    assert.equal(
      await Deno.stat(ran).then(() => true, () => false),
      false,
      "nothing ran",
    );
    // Without it, the rest runs.
    await Deno.remove(`${dir}/tests/sub/home_test.ts`);
    const ok = await run();
    assert.equal(ok.code, 0, new TextDecoder().decode(ok.stderr));
    assert.equal(await Deno.readTextFile(ran), "1");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
