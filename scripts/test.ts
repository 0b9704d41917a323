/**
 * `deno task test`: the suite, in two runs. `deno test --parallel` runs
 * test files as workers of one process, and they share its environment: a
 * file that sets HOME or OHCOMMODORE_BINARY for itself changes them under
 * every other file running then (seen: a ship in one file working in
 * another file's HOME). So the files that change the environment run on
 * their own, one after another, after the parallel run of the rest.
 * Extra arguments go to both runs (e.g. --filter).
 */
const MUTATES_ENV = /\bDeno\.env\.(set|delete)\(/;

async function testFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) out.push(...await testFiles(p));
    else if (e.isFile && e.name.endsWith("_test.ts")) out.push(p);
  }
  return out.sort();
}

async function denoTest(args: string[]): Promise<boolean> {
  const { success } = await new Deno.Command(Deno.execPath(), {
    args: ["test", "-A", ...args],
    stdin: "null",
  }).spawn().status;
  return success;
}

const files = await testFiles("tests");
const alone: string[] = [];
for (const f of files) {
  if (MUTATES_ENV.test(await Deno.readTextFile(f))) alone.push(f);
}
const extra = Deno.args;
const parallel = await denoTest([
  "--parallel",
  ...extra,
  ...files.filter((f) => !alone.includes(f)),
]);
const serial = alone.length ? await denoTest([...extra, ...alone]) : true;
Deno.exit(parallel && serial ? 0 : 1);
