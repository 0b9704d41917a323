/**
 * Every operation the registry declares is reachable over `_rpc` on the
 * machines that serve it: `_rpc` routes it to its owner (the daemon, or
 * the per-call process), and the owner's table implements it. Each is
 * asked with an argument no operation takes: the answer must be that
 * operation's own validator refusing it (so nothing runs), never
 * "this machine does not handle".
 */
import assert from "node:assert/strict";
import { ARTIFACT, ensureArtifact, localFleet } from "../helpers/cli.ts";
import { type OpName, OPS, opSpec } from "../../lib/rpc/ops.ts";
import { readLines } from "../../lib/lines.ts";

async function rpc(
  home: string,
  op: string,
  args: Record<string, unknown>,
): Promise<{ type: string; error?: { code: string; message: string } }> {
  const child = new Deno.Command(ARTIFACT, {
    args: ["_rpc"],
    env: { HOME: home, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    clearEnv: true,
    cwd: home,
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).spawn();
  const w = child.stdin.getWriter();
  await w.write(
    new TextEncoder().encode(JSON.stringify({ v: 1, op, args }) + "\n"),
  );
  // The input stays open until the answer: a session op (link.attach)
  // ends when its caller's input does.
  let last = "";
  for await (const line of readLines(child.stdout)) {
    if (line.trim()) last = line;
    const ev = JSON.parse(line);
    if (ev.type === "result" || ev.type === "error") break;
  }
  await w.close().catch(() => {});
  await child.status;
  await child.stderr.cancel().catch(() => {});
  if (!last) throw new Error(`${op}: no answer`);
  return JSON.parse(last);
}

Deno.test("every declared operation is reachable over _rpc where it is served", async () => {
  await ensureArtifact();
  await using fleet = await localFleet("alpha");
  const vm = (name: string) => `${fleet.home}/.ohcommodore/local/${name}`;
  const asked: string[] = [];
  for (const name of Object.keys(OPS) as OpName[]) {
    const spec = opSpec(name)!;
    const machines = spec.on === "flagship"
      ? ["flagship"]
      : spec.on === "ship"
      ? ["alpha"]
      : ["flagship", "alpha"];
    for (const m of machines) {
      const r = await rpc(vm(m), name, { not_an_argument: 1 });
      assert.equal(r.type, "error", `${name} on ${m}: ${JSON.stringify(r)}`);
      assert.equal(
        r.error?.message,
        'unknown argument "not_an_argument"',
        `${name} on ${m} (${spec.owner}): ${r.error?.message}`,
      );
      asked.push(`${name}@${m}`);
    }
  }
  assert.ok(asked.length > Object.keys(OPS).length, asked.join(" "));
  // A name nobody declared is refused as such.
  const r = await rpc(vm("flagship"), "voyage.nope", {});
  assert.equal(r.error?.code, "unknown_op");
});
