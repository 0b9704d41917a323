import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  breaches,
  describe,
  importsOf,
  readGraph,
} from "../../scripts/check_imports.ts";

Deno.test("check_imports: every kind of import is seen, comments are not", () => {
  const src = `
import { a } from "./a.ts";
import type { B } from "../b.ts";
export { c } from "./c.ts";
export * from "./d.ts";
import "./e.ts";
const f = await import("./f.ts");
type G = typeof import("./g.ts");
import {
  h,
} from "./h.ts";
import { x } from "npm:x";
// import { no } from "./commented.ts";
/* import { no2 } from "./block.ts"; */
`;
  assertEquals(importsOf(src).sort(), [
    "../b.ts",
    "./a.ts",
    "./c.ts",
    "./d.ts",
    "./e.ts",
    "./f.ts",
    "./g.ts",
    "./h.ts",
  ]);
});

Deno.test("check_imports: lib/ -> roles/, cycles (type-only too) and the process HOME below an entry are breaches", async () => {
  const root = await Deno.makeTempDir();
  try {
    const write = async (p: string, s: string) => {
      await Deno.mkdir(`${root}/${p.split("/").slice(0, -1).join("/")}`, {
        recursive: true,
      });
      await Deno.writeTextFile(`${root}/${p}`, s);
    };
    await write("main.ts", `import "./roles/r.ts";`);
    await write("roles/r.ts", `import { a } from "../lib/a.ts";`);
    await write("lib/a.ts", `const r = await import("../roles/r.ts");`);
    await write("lib/b.ts", `import type { C } from "./sub/c.ts";`);
    await write("lib/sub/c.ts", `import type { B } from "../b.ts";`);
    await write("lib/ok.ts", `import { a } from "./a.ts";`);
    // The process's HOME: read by an entry, fine; below one, a breach.
    await write("lib/process_home.ts", `export const processHome = 1;`);
    await write("lib/cli/run.ts", `import "../process_home.ts";`);
    await write("lib/deep.ts", `import "./process_home.ts";`);
    const found = breaches(await readGraph(root)).map(describe).sort();
    assertEquals(found, [
      "import cycle: lib/a.ts -> roles/r.ts -> lib/a.ts",
      "import cycle: lib/b.ts -> lib/sub/c.ts -> lib/b.ts",
      "lib/ imports roles/: lib/a.ts -> roles/r.ts",
      "reads the process's HOME below an entry: lib/deep.ts -> lib/process_home.ts (take the machine's home as a parameter)",
    ]);
    // Without the breaches, nothing.
    await write("lib/a.ts", `export const a = 1;`);
    await write("lib/sub/c.ts", `export type C = 1;`);
    await write("lib/deep.ts", `export const deep = 1;`);
    assertEquals(breaches(await readGraph(root)), []);
  } finally {
    await Deno.remove(root, { recursive: true });
  }
});
