/**
 * `deno task agents:check`: the newest Claude Code from npm, run through
 * the same e2e tests as the pinned one, with a report of what changed
 * between them, so a breaking client release shows here before users meet
 * it:
 *
 * - flags: the options `claude --help` lists (added, removed), and whether
 *   every flag ohcommodore's invocation uses is still there;
 * - events: the stream-json events of two runs against the scripted API
 *   (a Write and a reply; a persistent 529 with one retry), as
 *   `type/subtype` with their top-level fields (added, removed);
 * - the real-client e2e tests with `OHC_TEST_CLAUDE_BIN` set to the newest.
 *
 * Exit 0 when the tests pass with the newest release, 1 otherwise. Bump
 * CLAUDE_CODE_VERSION (tests/helpers/claude_code.ts) once it is green.
 */
import { agentCommand } from "../lib/voyage/ship/agents/command.ts";
import { buildPrompt } from "../lib/voyage/ship/prompt.ts";
import { runDirect } from "../lib/voyage/ship/runner.ts";
import { scriptOf, startAnthropic } from "../tests/e2e/emulators/anthropic.ts";
import {
  CLAUDE_CODE_VERSION,
  claudeCodeDir,
} from "../tests/helpers/claude_code.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");

/** The flags of ohcommodore's invocation (agents.ts). */
const OUR_FLAGS = [
  "--print",
  "--dangerously-skip-permissions",
  "--output-format",
  "--verbose",
  "--model",
];

/** The e2e tests run against the newest release. */
const TESTS = [
  "tests/e2e/claude_code_test.ts",
  "tests/e2e/voyage_claude_test.ts",
];

export interface CheckDeps {
  newestVersion(): Promise<string>;
  installClaudeCode(version: string, dir: string): Promise<string>;
  versionOf(bin: string): Promise<string | null>;
}

/** Long option names `claude --help` lists (`-p, --print`, `--model <m>`). */
async function flagsOf(bin: string): Promise<Set<string>> {
  const out = await new Deno.Command(bin, {
    args: ["--help"],
    env: { PATH: "/usr/bin:/bin", HOME: await Deno.makeTempDir() },
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  return new Set(
    [...text.matchAll(/^\s+(?:-\w,\s+)?(--[a-zA-Z0-9][a-zA-Z0-9-]*)/gm)].map(
      (m) => m[1],
    ),
  );
}

/** `type/subtype` → its top-level fields, over two scripted runs. */
async function eventsOf(bin: string): Promise<Map<string, Set<string>>> {
  const events = new Map<string, Set<string>>();
  const runs: {
    script: Parameters<typeof scriptOf>;
    env: Record<string, string>;
  }[] = [
    {
      script: [
        { tool: "Write", file: "x.txt", content: "x\n" },
        { text: "Done." },
      ],
      env: {},
    },
    { script: [{ fail: 529 }], env: { CLAUDE_CODE_MAX_RETRIES: "1" } },
  ];
  for (const r of runs) {
    await using api = await startAnthropic({ script: scriptOf(...r.script) });
    const dir = await Deno.makeTempDir({ prefix: "ohc-agents-check-" });
    try {
      await Deno.mkdir(`${dir}/checkout`);
      await Deno.mkdir(`${dir}/home`);
      const task = { id: "1", subject: "check", description: "check" };
      await Deno.writeTextFile(
        `${dir}/prompt.md`,
        buildPrompt({
          objective: "",
          task,
          voyageId: "vcheck",
          ship: "check",
          repoDir: `${dir}/checkout`,
        }),
      );
      const inv = agentCommand("claude", {
        voyageId: "vcheck",
        ship: "check",
        task,
        promptFile: `${dir}/prompt.md`,
        checkout: `${dir}/checkout`,
        claudeBin: bin,
        allowRoot: true,
        env: {
          PATH: "/usr/bin:/bin",
          HOME: `${dir}/home`,
          ANTHROPIC_BASE_URL: api.url,
          ANTHROPIC_API_KEY: "sk-ant-agents-check",
          CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC: "1",
          ...r.env,
        },
      });
      await runDirect({ ...inv, logFile: `${dir}/log` });
      for (const line of (await Deno.readTextFile(`${dir}/log`)).split("\n")) {
        if (!line.startsWith("{")) continue;
        try {
          const ev = JSON.parse(line);
          const key = `${ev.type}${ev.subtype ? `/${ev.subtype}` : ""}`;
          const fields = events.get(key) ?? new Set();
          for (const k of Object.keys(ev)) fields.add(k);
          events.set(key, fields);
        } catch { /* not an event */ }
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  }
  return events;
}

const minus = <T>(a: Set<T>, b: Set<T>) => [...a].filter((x) => !b.has(x));

export async function check(deps: CheckDeps): Promise<number> {
  const pinnedBin = await deps.installClaudeCode(
    CLAUDE_CODE_VERSION,
    claudeCodeDir(),
  );
  const newest = await deps.newestVersion();
  const scratch = await Deno.makeTempDir({ prefix: "ohc-claude-newest-" });
  try {
    const newestBin = await deps.installClaudeCode(
      newest,
      `${scratch}/claude-code-${newest}`,
    );
    const lines: string[] = [
      `Claude Code: pinned ${CLAUDE_CODE_VERSION}, newest on npm ${newest}${
        newest === CLAUDE_CODE_VERSION ? " (the same)" : ""
      }`,
    ];

    const [oldFlags, newFlags] = await Promise.all([
      flagsOf(pinnedBin),
      flagsOf(newestBin),
    ]);
    const added = minus(newFlags, oldFlags),
      removed = minus(oldFlags, newFlags);
    lines.push(
      `flags: ${added.length} added${
        added.length ? ` (${added.join(", ")})` : ""
      }, ${removed.length} removed${
        removed.length ? ` (${removed.join(", ")})` : ""
      }`,
    );
    const lost = OUR_FLAGS.filter((f) => !newFlags.has(f));
    lines.push(
      lost.length
        ? `BREAKING: our invocation's flags are gone: ${lost.join(", ")}`
        : `our invocation's flags are all there (${OUR_FLAGS.join(" ")})`,
    );

    const [oldEvents, newEvents] = [
      await eventsOf(pinnedBin),
      await eventsOf(newestBin),
    ];
    const keys = new Set([...oldEvents.keys(), ...newEvents.keys()]);
    const changes: string[] = [];
    for (const k of [...keys].sort()) {
      const o = oldEvents.get(k), n = newEvents.get(k);
      if (!o) changes.push(`  + event ${k}`);
      else if (!n) changes.push(`  - event ${k}`);
      else {
        const plus = minus(n, o), less = minus(o, n);
        if (plus.length || less.length) {
          changes.push(
            `  ~ ${k}: ${
              plus.map((f) => `+${f}`).concat(less.map((f) => `-${f}`)).join(
                " ",
              )
            }`,
          );
        }
      }
    }
    lines.push(
      changes.length
        ? `events: ${changes.length} changed\n${changes.join("\n")}`
        : `events: the same (${[...keys].sort().join(", ")})`,
    );
    for (const need of ["system/init", "system/api_retry", "result/success"]) {
      if (!newEvents.has(need)) {
        lines.push(`BREAKING: no ${need} event any more`);
      }
    }
    console.log(lines.join("\n"));

    console.log(`\n==> the real-client e2e tests with Claude Code ${newest}`);
    const test = await new Deno.Command(Deno.execPath(), {
      args: ["test", "-A", ...TESTS],
      cwd: root,
      env: { OHC_TEST_CLAUDE_BIN: newestBin, CI: "true" },
      stdin: "null",
      stdout: "inherit",
      stderr: "inherit",
    }).output();
    console.log(
      test.success
        ? `\nClaude Code ${newest}: the e2e tests pass.`
        : `\nClaude Code ${newest}: the e2e tests FAIL (exit ${test.code}); see above.`,
    );
    return test.success ? 0 : 1;
  } finally {
    await Deno.remove(scratch, { recursive: true }).catch(() => {});
  }
}
