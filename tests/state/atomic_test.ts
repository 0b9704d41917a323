import assert from "node:assert/strict";
import {
  readJsonFile,
  updateJsonFile,
  writeJsonAtomic,
} from "../../lib/state/atomic.ts";
import { OhcError } from "../../lib/errors.ts";

const parseCounter = (v: unknown) => v as { n: number; by: number[] };

Deno.test("40 processes doing read-modify-write under the lock lose no update", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/state.json`;
  const mod = new URL("../../lib/state/atomic.ts", import.meta.url).href;
  const script = `
    import { updateJsonFile } from "${mod}";
    const me = Number(Deno.args[0]);
    for (let i = 0; i < 5; i++) {
      await updateJsonFile(Deno.args[1], (v) => v, () => ({ n: 0, by: [] }), async (s) => {
        const n = s.n;
        await new Promise((r) => setTimeout(r, 1)); // widen the race window
        s.n = n + 1;
        s.by.push(me);
      });
    }`;
  await Deno.writeTextFile(`${dir}/worker.ts`, script);
  const procs = Array.from(
    { length: 40 },
    (_, i) =>
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", `${dir}/worker.ts`, String(i), file],
      }).output(),
  );
  for (const r of await Promise.all(procs)) {
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
  }
  const s = await readJsonFile(file, parseCounter);
  assert.equal(s?.n, 200);
  assert.equal(s?.by.length, 200);
});

Deno.test("atomic writes leave no temp files and set the mode", async () => {
  const dir = await Deno.makeTempDir();
  const file = `${dir}/a.json`;
  await writeJsonAtomic(file, { a: 1 });
  await updateJsonFile(
    file,
    (v) => v as { a: number },
    () => ({ a: 0 }),
    (s) => {
      s.a++;
    },
  );
  const names = [...Deno.readDirSync(dir)].map((e) => e.name).sort();
  assert.deepEqual(names, ["a.json", "a.json.lock"]);
  assert.equal(Deno.statSync(file).mode! & 0o777, 0o600);
  assert.deepEqual(JSON.parse(Deno.readTextFileSync(file)), { a: 2 });
});

Deno.test("a corrupt file is an OhcError naming the file, missing is null", async () => {
  const dir = await Deno.makeTempDir();
  assert.equal(await readJsonFile(`${dir}/none.json`, (v) => v), null);
  await Deno.writeTextFile(`${dir}/bad.json`, "{");
  await assert.rejects(
    () => readJsonFile(`${dir}/bad.json`, (v) => v, "do X"),
    (e: unknown) =>
      e instanceof OhcError && e.code === "corrupt_state" &&
      e.message.includes(`${dir}/bad.json`) && e.hint === "do X",
  );
});
