/**
 * ocaptain's users feel at home: every command line of ocaptain's two
 * READMEs (its exe.dev-era README and its sprites-era one), as written
 * there with `uv run ocaptain` replaced by `ohcommodore`, `voyage-abc123`
 * by the real voyage id and the plan paths by local plans, runs against a
 * local fleet with a voyage and exits 0 with the effect it promises. Lines
 * that ask for a confirmation (`sink` without `-f`) and the shell get a
 * terminal (tmux, headless) and are answered there, as a person would.
 *
 * Not driven: `telemetry-start` / `telemetry-stop` (ocaptain's local OTLP
 * collector; ohcommodore has no telemetry yet).
 */
import assert from "node:assert/strict";
import { exists, ohc, scratchHome, teardown } from "../helpers/cli.ts";
import {
  terminal,
  tmuxMissing,
  tmuxScreen,
  tmuxWindows,
} from "../helpers/terminal.ts";
import { until } from "../helpers/wait.ts";

const root = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** The lines, as the READMEs write them (comments dropped). */
const README_EXEDEV = [
  "uv run ocaptain sail ./plans/my-feature",
  "uv run ocaptain status",
  "uv run ocaptain shell voyage-abc123",
  "uv run ocaptain logs voyage-abc123 --follow",
  "uv run ocaptain sink voyage-abc123 --include-storage",
  "uv run ocaptain sail ./plans/add-auth --ships 5",
  "uv run ocaptain status voyage-abc123",
  "uv run ocaptain logs voyage-abc123",
  'uv run ocaptain logs voyage-abc123 --follow --grep "error"',
  "uv run ocaptain tasks voyage-abc123",
  "uv run ocaptain tasks voyage-abc123 --status pending",
  "uv run ocaptain shell voyage-abc123 ship-0",
  "uv run ocaptain shell voyage-abc123 ship-0 --raw",
  "uv run ocaptain sink voyage-abc123",
  "uv run ocaptain sink voyage-abc123 -s",
  "uv run ocaptain sink --all -f",
];
const README_SPRITES = [
  "uv run ocaptain doctor",
  "uv run ocaptain sail ./examples/generated-plans/multilingual-readme",
  "uv run ocaptain status",
  "uv run ocaptain shell voyage-abc123 ship-0",
  "uv run ocaptain logs voyage-abc123 --follow",
  "uv run ocaptain clone voyage-abc123",
  "uv run ocaptain sink voyage-abc123",
  "uv run ocaptain sail ./plans/add-auth --ships 5",
  "uv run ocaptain status voyage-abc123",
  "uv run ocaptain logs voyage-abc123",
  'uv run ocaptain logs voyage-abc123 --follow --grep "error"',
  "uv run ocaptain tasks voyage-abc123",
  "uv run ocaptain tasks voyage-abc123 --status pending",
  "uv run ocaptain shell voyage-abc123 ship-0",
  "uv run ocaptain shell voyage-abc123 ship-0 --raw",
  "uv run ocaptain clone",
  "uv run ocaptain clone voyage-abc123 -d ./my-copy",
  "uv run ocaptain sink voyage-abc123",
  "uv run ocaptain sink --all -f",
];

/** A README line as argv: ohcommodore's words, the real voyage id. */
function argvOf(line: string, id?: string): string[] {
  assert.ok(line.startsWith("uv run ocaptain "), line);
  const words = [...line.slice(16).matchAll(/"([^"]*)"|(\S+)/g)].map((m) =>
    m[1] ?? m[2]
  );
  return words.map((w) => {
    if (w !== "voyage-abc123") return w;
    assert.ok(id, `${line} needs a voyage`);
    return id;
  });
}

/** A plan in ocaptain's format whose tasks the fake Claude Code does. */
async function ocaptainPlan(
  dir: string,
  voyage: Record<string, unknown>,
  tasks: { id: string; blockedBy?: string[]; does: string }[],
  verify = "true",
) {
  await Deno.mkdir(`${dir}/tasks`, { recursive: true });
  await Deno.writeTextFile(`${dir}/voyage.json`, JSON.stringify(voyage));
  await Deno.writeTextFile(
    `${dir}/spec.md`,
    `# ${voyage.name} Specification\n\n## Objective\n\nDo it.\n`,
  );
  await Deno.writeTextFile(`${dir}/verify.sh`, `#!/bin/bash\n${verify}\n`, {
    mode: 0o755,
  });
  for (const t of tasks) {
    await Deno.writeTextFile(
      `${dir}/tasks/${t.id}.json`,
      JSON.stringify({
        id: t.id,
        subject: `task ${t.id}`,
        description: `FAKE: ${t.does}`,
        activeForm: `Doing task ${t.id}`,
        status: "pending",
        blocks: [],
        blockedBy: t.blockedBy ?? [],
      }),
    );
  }
}

/** Waits for the gate file `g` to exist (a task's command). */
const waitFor = (g: string) => `while [ ! -e ${g} ]; do sleep 0.1; done`;

Deno.test({
  name: "ocaptain's READMEs, line by line: each exits 0 and does what it says",
  ignore: tmuxMissing() !== null,
  fn: async () => {
    const home = await scratchHome();
    await using _ = { [Symbol.asyncDispose]: () => teardown(home) };
    const bin = `${home}/fakebin`;
    await Deno.mkdir(bin);
    await Deno.symlink(`${root}/tests/fakes/claude`, `${bin}/claude`);
    // As in any voyage test here: everything runs as root, where the
    // claude agent needs OHCOMMODORE_CLAUDE_ALLOW_ROOT (IS_SANDBOX=1).
    const env = {
      PATH: `${bin}:${Deno.env.get("PATH")}`,
      OHCOMMODORE_CLAUDE_ALLOW_ROOT: "1",
      CLAUDE_CODE_OAUTH_TOKEN: "sk-ant-oat-test-token-ocaptain",
    };
    const init = await ohc(home, ["init"], { env });
    assert.equal(init.code, 0, init.stderr);

    const ran = new Set<string>();
    const line = async (l: string, id?: string, stdin?: string) => {
      ran.add(l);
      const r = await ohc(home, argvOf(l, id), {
        env,
        stdin,
        timeoutMs: 240_000,
      });
      assert.equal(r.code, 0, `${l}\n${r.stdout}\n${r.stderr}`);
      return r.stdout;
    };
    /** The line in a terminal (the shell, or a sink that asks first). */
    const inTerminal = async (l: string, id: string) => {
      ran.add(l);
      return await terminal(home, argvOf(l, id), env);
    };
    const confirmSink = async (l: string, id: string) => {
      await using t = await inTerminal(l, id);
      await t.shows(/Type 'sink' to confirm:/);
      await t.type("sink");
      assert.equal(await t.exit(180_000), 0, await t.screen());
    };
    const json = async (args: string[]) => {
      const r = await ohc(home, [...args, "--json"], { env });
      assert.equal(r.code, 0, r.stderr);
      return JSON.parse(r.stdout);
    };
    const sailed = (out: string) => /Voyage (\S+) is sailing/.exec(out)![1];

    // ---- ./plans/my-feature: no recommended_ships, so 3 ships sail it.
    const gateA = `${home}/gate-a`;
    await ocaptainPlan(
      `${home}/plans/my-feature`,
      { name: "voyage-my-feature", repo: "empty" },
      [
        { id: "1", does: `${waitFor(gateA)}; echo one > one.txt` },
        { id: "2", does: `${waitFor(gateA)}; echo two > two.txt` },
        {
          id: "3",
          blockedBy: ["1", "2"],
          does: "cat one.txt two.txt > both.txt; echo no error here",
        },
      ],
      "test -f both.txt",
    );
    const a = sailed(await line("uv run ocaptain sail ./plans/my-feature"));
    assert.equal((await json(["voyage", "status", a])).ships.length, 3);
    await until(
      "both ships at work",
      async () =>
        (await json(["voyage", "tasks", a])).filter((t: { status: string }) =>
          t.status === "running"
        ).length === 2,
      { timeoutMs: 120_000 },
    );

    // The only active voyage, with no id.
    assert.match(await line("uv run ocaptain status"), new RegExp(a));
    assert.match(
      await line("uv run ocaptain status voyage-abc123", a),
      /running/,
    );
    const tasks = await line("uv run ocaptain tasks voyage-abc123", a);
    assert.match(tasks, /BLOCKED BY/);
    assert.match(tasks, /^\s*3\s+pending\s+-\s+0\s+1,2\s/m);
    const pending = await line(
      "uv run ocaptain tasks voyage-abc123 --status pending",
      a,
    );
    assert.deepEqual(
      pending.trim().split("\n").slice(1).map((l) => l.trim().split(/\s+/)[0]),
      ["3"],
    );

    // The fleet view: a window per ship, each attached to its session.
    {
      await using t = await inTerminal(
        "uv run ocaptain shell voyage-abc123",
        a,
      );
      const view = `${home}/.ohcommodore/view.sock`;
      await until(
        "a window per ship",
        async () =>
          (await tmuxWindows(view, `voyage-${a}`)).join(" ") ===
            "ship-0 ship-1 ship-2",
      );
      for (const w of ["ship-0", "ship-1", "ship-2"]) {
        await until(
          `${w}'s window attached to its ship's session`,
          async () =>
            /\[voyage\]/.test(await tmuxScreen(view, `voyage-${a}:${w}`)),
        );
      }
      await t.shows(/0:ship-0\*?\s+1:ship-1\S?\s+2:ship-2/);
      await t.keys("C-b", "d"); // detach: the view goes
      assert.equal(await t.exit(), 0, await t.screen());
      assert.deepEqual(await tmuxWindows(view, `voyage-${a}`), []);
    }
    // One ship's session.
    {
      await using t = await inTerminal(
        "uv run ocaptain shell voyage-abc123 ship-0",
        a,
      );
      await t.shows(/\[voyage\] 0:captain/);
      await t.keys("C-b", "d");
      assert.equal(await t.exit(), 0, await t.screen());
    }
    const raw = await line(
      "uv run ocaptain shell voyage-abc123 ship-0 --raw",
      a,
      "pwd\n",
    );
    assert.match(raw, new RegExp(`/voyage-${a}\\n`));

    // `clone`: the only active voyage, as it stands.
    await line("uv run ocaptain clone");
    assert.ok(await exists(`${home}/${a}/.git`));
    await Deno.remove(`${home}/${a}`, { recursive: true });

    // --follow ends when the voyage does.
    await Deno.writeTextFile(gateA, "");
    const followed = await line(
      "uv run ocaptain logs voyage-abc123 --follow",
      a,
    );
    assert.match(followed, new RegExp(`\\[${a}-\\d task-3\\]`));
    assert.equal(
      (await json(["voyage", "status", a])).voyage.state,
      "verified",
    );
    assert.match(await line("uv run ocaptain logs voyage-abc123", a), /task-1/);
    const errors = await line(
      'uv run ocaptain logs voyage-abc123 --follow --grep "error"',
      a,
    );
    assert.ok(errors.trim() !== "");
    for (const l of errors.trim().split("\n")) assert.match(l, /error/);
    await line("uv run ocaptain clone voyage-abc123", a);
    assert.ok(await exists(`${home}/${a}/both.txt`));
    await line("uv run ocaptain clone voyage-abc123 -d ./my-copy", a);
    assert.equal(
      await Deno.readTextFile(`${home}/my-copy/both.txt`),
      "one\ntwo\n",
    );

    // Sunk: the ships go, the record stays (logs, tasks, status, clone).
    await confirmSink("uv run ocaptain sink voyage-abc123", a);
    const sunk = await json(["voyage", "status", a]);
    assert.equal(sunk.voyage.state, "sunk");
    assert.equal(sunk.voyage.verify_code, 0);
    assert.deepEqual(sunk.ships.map((s: { state: string }) => s.state), [
      "gone",
      "gone",
      "gone",
    ]);
    assert.match(await line("uv run ocaptain logs voyage-abc123", a), /task-3/);
    // -s (ocaptain's storage): the record goes too.
    await confirmSink("uv run ocaptain sink voyage-abc123 -s", a);
    const gone = await ohc(home, ["voyage", "status", a], { env });
    assert.equal(gone.code, 2);
    assert.match(gone.stderr, new RegExp(`no voyage ${a}`));

    // ---- ./plans/add-auth --ships 5
    const gateB = `${home}/gate-b`;
    await ocaptainPlan(
      `${home}/plans/add-auth`,
      { name: "voyage-add-auth", repo: "empty", recommended_ships: 2 },
      [
        { id: "1", does: `${waitFor(gateB)}; echo auth > auth.txt` },
        { id: "2", blockedBy: ["1"], does: "echo tests > tests.txt" },
      ],
    );
    const b = sailed(
      await line("uv run ocaptain sail ./plans/add-auth --ships 5"),
    );
    assert.equal((await json(["voyage", "status", b])).ships.length, 5);
    // Sunk with its storage while it runs: nothing of it is left.
    await confirmSink(
      "uv run ocaptain sink voyage-abc123 --include-storage",
      b,
    );
    assert.equal(
      (await json(["voyage", "list"])).length,
      0,
      "the purged voyage is listed",
    );
    assert.deepEqual(await json(["ship", "list"]), []);

    // ---- ./examples/generated-plans/multilingual-readme (its own ships)
    await line("uv run ocaptain doctor");
    await ocaptainPlan(
      `${home}/examples/generated-plans/multilingual-readme`,
      {
        name: "voyage-multilingual-readme",
        repo: "empty",
        recommended_ships: 2,
        max_parallel_width: 2,
        total_tasks: 2,
        created: "2026-01-25T12:00:00Z",
      },
      [
        { id: "1", does: "echo Hello > README.md" },
        { id: "2", does: "echo Hola > README.es.md" },
      ],
    );
    const c = sailed(
      await line(
        "uv run ocaptain sail ./examples/generated-plans/multilingual-readme",
      ),
    );
    await line("uv run ocaptain sink --all -f");
    assert.deepEqual(await json(["ship", "list"]), []);
    assert.equal((await json(["voyage", "status", c])).voyage.state, "sunk");

    for (const l of [...README_EXEDEV, ...README_SPRITES]) {
      assert.ok(ran.has(l), `not driven: ${l}`);
    }
  },
});
