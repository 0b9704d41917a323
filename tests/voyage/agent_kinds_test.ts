/**
 * The agent kinds are listed once (lib/voyage/ship/agents/kinds.ts), each
 * kind one file beside it. They used to be listed in three places (the
 * adapters, the session's wire type, the CLI's `--agent` choices) and
 * checked by name elsewhere.
 */
import assert from "node:assert/strict";
import { join, relative } from "node:path";
import { agentCommand } from "../../lib/voyage/ship/agents/command.ts";
import {
  AGENT_KINDS,
  parseAgentKind,
} from "../../lib/voyage/ship/agents/kinds.ts";
import { agentProgram, AGENTS } from "../../lib/voyage/ship/agents/registry.ts";
import { AGENT_ENV_NAMES } from "../../lib/voyage/ship/agent_env.ts";

const ROOT = new URL("../..", import.meta.url).pathname;
const AGENTS_DIR = "lib/voyage/ship/agents/";

async function* sources(dir: string): AsyncGenerator<string> {
  for await (const e of Deno.readDir(dir)) {
    const p = join(dir, e.name);
    if (e.isDirectory) yield* sources(p);
    else if (e.name.endsWith(".ts")) yield p;
  }
}

Deno.test("agent kinds: no module outside agents/ names two kinds together", async () => {
  const names = AGENT_KINDS.map((k) => `"${k}"`);
  const near = new RegExp(
    `(${names.join("|")})[^;{}]{0,60}?(${names.join("|")})`,
    "g",
  );
  const found: string[] = [];
  for (const top of ["lib", "roles"]) {
    for await (const file of sources(join(ROOT, top))) {
      const rel = relative(ROOT, file);
      if (rel.startsWith(AGENTS_DIR)) continue;
      // One line per statement: a list split over lines counts too.
      const text = (await Deno.readTextFile(file)).replace(/\s+/g, " ");
      for (const m of text.matchAll(near)) {
        if (m[1] !== m[2]) found.push(`${rel}: ${m[0]}`);
      }
    }
  }
  assert.deepEqual(found, [], "agent kinds listed outside agents/kinds.ts");
});

Deno.test("agent kinds: each kind is one adapter that builds a run", () => {
  assert.deepEqual([...AGENT_KINDS].sort(), Object.keys(AGENTS).sort());
  for (const kind of AGENT_KINDS) {
    assert.equal(parseAgentKind(kind), kind);
    const inv = agentCommand(kind, {
      voyageId: "v1",
      ship: "s1",
      task: { id: "1", subject: "s", command: "true" },
      promptFile: "/tmp/prompt.md",
      checkout: "/tmp",
      agentCommand: kind === "custom" ? "true" : undefined,
      allowRoot: true,
    });
    assert.equal(inv.kind, kind);
    const program = agentProgram(kind);
    if (program) assert.equal(inv.argv[0], program);
    else assert.deepEqual(inv.argv.slice(0, 2), ["bash", "-c"]);
    // Only kinds with a program have a stream to read and variables to get.
    assert.equal(!!AGENTS[kind].parse, !!program, kind);
    assert.equal(!!AGENTS[kind].env, !!program, kind);
  }
  for (const k of AGENT_KINDS) {
    for (const v of AGENTS[k].env?.secrets ?? []) {
      assert.ok(AGENT_ENV_NAMES.includes(v));
    }
  }
});
