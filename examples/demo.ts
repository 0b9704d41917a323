/**
 * A tour of a local fleet in a scratch HOME: init, two ships (one with a
 * repository), status, exec, sink. No cloud account, no network.
 *
 *   deno task demo
 */
const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
await new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", `${root}/scripts/artifact.ts`],
  stdout: "null",
}).output();
const bin = `${root}/dist/dev/ohcommodore`;
const home = await Deno.makeTempDir({ prefix: "ohc-demo-" });
const env = { HOME: home, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" };

async function step(args: string[]): Promise<void> {
  console.log(`\n$ ohcommodore ${args.join(" ")}`);
  const r = await new Deno.Command(bin, {
    args,
    env,
    clearEnv: true,
    cwd: home,
    stdin: "null",
  }).spawn().status;
  if (!r.success) {
    console.error(`demo step failed (exit ${r.code}); scratch HOME: ${home}`);
    Deno.exit(1);
  }
}

const repo = `${home}/hello-repo`;
await Deno.mkdir(repo);
await Deno.writeTextFile(`${repo}/README.md`, "# hello\n");
for (
  const args of [["init", "-q", "-b", "main"], ["add", "-A"], [
    "-c",
    "user.name=demo",
    "-c",
    "user.email=demo@example.com",
    "commit",
    "-qm",
    "hello",
  ]]
) {
  await new Deno.Command("git", { args, cwd: repo }).output();
}

await step(["init", "--provider", "local"]);
await step(["ship", "create", "alpha"]);
await step(["ship", "create", repo]);
await step(["fleet", "status"]);
await step(["ship", "exec", "hello-repo", "--", "sh", "-c", "ls ~/hello-repo"]);
await step(["fleet", "sink", "--scuttle", "--force"]);
console.log(`\nDone. The fleet lived in ${home} (now sunk).`);
