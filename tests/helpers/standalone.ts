/**
 * The standalone artifact for tests (scripts/standalone.ts): one file
 * holding Deno, the program and its node_modules, as a compiled release
 * does. Built by `deno task artifact --standalone` at most once per content
 * (the script keeps a key beside it and a lock against concurrent builds),
 * so every test file of a run shares one build.
 */
const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

let built: Promise<string> | undefined;

/** The path of dist/standalone/ohcommodore, built when out of date. */
export function standaloneArtifact(): Promise<string> {
  built ??= (async () => {
    const r = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${root}/scripts/artifact.ts`, "--standalone"],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    }).output();
    const dec = new TextDecoder();
    if (!r.success) {
      throw new Error(
        `deno task artifact --standalone failed: ${dec.decode(r.stderr)}`,
      );
    }
    return dec.decode(r.stdout).trim().split("\n").at(-1)!;
  })();
  built.catch(() => built = undefined);
  return built;
}
