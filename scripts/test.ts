/**
 * `deno task test`: the whole suite in one `deno test --parallel`. Its test
 * files run as workers of one process and share its environment, so none
 * may set it (HOME, OHCOMMODORE_BINARY, PATH...): one file's HOME would be
 * another's while both run (seen: a ship in one file working in another
 * file's HOME). Code takes a machine's home and environment as parameters
 * instead (lib/machine.ts), and a test file that sets the process's
 * environment is refused here, by name, before anything runs.
 * Extra arguments go to `deno test` (e.g. --filter).
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

const files = await testFiles("tests");
const bad = [];
for (const f of files) {
  if (MUTATES_ENV.test(await Deno.readTextFile(f))) bad.push(f);
}
if (bad.length) {
  console.error(
    `test: ${
      bad.join(", ")
    } set the process's environment, which every parallel test file shares; pass a home or env to the code under test instead`,
  );
  Deno.exit(2);
}
const { success } = await new Deno.Command(Deno.execPath(), {
  args: ["test", "-A", "--parallel", ...Deno.args, ...files],
  stdin: "null",
}).spawn().status;
Deno.exit(success ? 0 : 1);
