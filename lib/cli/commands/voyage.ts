/**
 * `voyage ...`: plans of dependent tasks sailed by many ships. Each verb is
 * defined once and also stands at the top level under ocaptain's name
 * (`sail`, `status`, `logs`, `tasks`, `shell`, `clone`, `sink`), with
 * ocaptain's short flags.
 */
import { concatBytes } from "../../bytes.ts";
import { rememberNames } from "../completion_cache.ts";
import type { Command } from "@commander-js/extra-typings";
import { Option } from "@commander-js/extra-typings";
import { UsageError } from "../../errors.ts";
import { escapeControls } from "../../terminal_text.ts";
import type { RpcEvent } from "../../rpc/protocol.ts";
import type { Reopened, Task } from "../../voyage/queue.ts";
import type { VoyageStatus } from "../../voyage/rpc.ts";
import { flagshipCall } from "../flagship.ts";
import { age, err, out, printJson, progress, table } from "../render.ts";
import type { Exit } from "../program.ts";
import { AGENT_KINDS, type AgentKind } from "../../voyage/ship/agents/kinds.ts";

function positiveInt(flag: string, v: string | undefined): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`${flag} must be a positive whole number, not "${v}"`);
  }
  return n;
}

const progressEvents = {
  onEvent: (e: RpcEvent) => {
    if (e.type === "progress") progress(e.message, e.subject);
  },
};

function decodeOutput(e: RpcEvent): Uint8Array | null {
  if (e.type !== "output" || !e.data) return null;
  return Uint8Array.from(atob(e.data), (c) => c.charCodeAt(0));
}

export function renderVoyage(s: VoyageStatus): string {
  const v = s.voyage;
  const c = s.counts;
  const lines = [
    `VOYAGE ${v.id}${v.name ? ` (${escapeControls(v.name)})` : ""}: ${v.state}`,
    `  repo: ${v.repo ?? "-"}  branch: ${v.branch}  agent: ${v.agent}  age: ${
      age(v.created_at)
    }`,
    `  tasks: ${c.done} done, ${c.running} running, ${c.pending} pending, ${c.failed} failed`,
  ];
  if (s.reason) lines.push(`  reason: ${s.reason}`);
  if (v.verify_code !== null) {
    lines.push(
      `  verify: ${
        v.verify_code === 0 ? "passed" : `failed (exit ${v.verify_code})`
      }`,
    );
  }
  lines.push("", `SHIPS (${s.ships.length}):`);
  lines.push(table(
    ["SHIP", "STATE", "TASK", "TASK AGE", "HEARTBEAT"],
    s.ships.map((x) => [
      x.ship,
      x.stale ? `${x.state} (STALE)` : x.state,
      x.current_task ?? "-",
      x.task_started_at ? age(x.task_started_at) : "-",
      x.last_heartbeat ? `${age(x.last_heartbeat)} ago` : "-",
    ]),
  ));
  return lines.join("\n");
}

/** Verbs that also stand at the top level, as ocaptain's users type them. */
const TOP_LEVEL = ["sail", "status", "logs", "tasks", "shell", "clone", "sink"];

const ID_HELP =
  "voyage id, or a unique prefix of 4+ characters (default: the only active voyage, else the only voyage)";

/** ocaptain's task statuses, as ours. */
const STATUS_ALIASES: Record<string, Task["status"]> = {
  in_progress: "running",
  completed: "done",
};

/** OHCOMMODORE_DEFAULT_SHIPS from this environment, checked, if set. */
async function defaultShipsFromEnv(): Promise<number | undefined> {
  const raw = Deno.env.get("OHCOMMODORE_DEFAULT_SHIPS");
  if (raw === undefined) return undefined;
  const { parseSetting } = await import("../../settings.ts");
  return parseSetting("OHCOMMODORE_DEFAULT_SHIPS", raw);
}

function maxShips(flag: string, v: string | undefined, max: number) {
  const n = positiveInt(flag, v);
  if (n !== undefined && n > max) {
    throw new UsageError(`${flag} must be between 1 and ${max}, not ${n}`);
  }
  return n;
}

export function registerVoyage(program: Command, exit: Exit): void {
  const voyage = program.commands.find((c) => c.name() === "voyage")!;
  const verbs: [string, string, (cmd: Command) => void][] = [];
  const verb = (
    name: string,
    description: string,
    define: (cmd: Command) => void,
  ) => verbs.push([name, description, define]);

  verb(
    "sail",
    "sail a plan: ships, repository, task queue; returns at once",
    (cmd) =>
      cmd
        .argument(
          "<plan>",
          "plan directory (voyage.json, spec.md, verify.sh, tasks/)",
        )
        .option(
          "-n, --ships <n>",
          "how many ships (default: the plan's recommended_ships, else OHCOMMODORE_DEFAULT_SHIPS, 3)",
        )
        .option(
          "-r, --repo <repo>",
          "owner/repo, git URL or path (default: the plan's repo)",
        )
        .addOption(
          new Option("--agent <agent>", "who does each task").choices(
            AGENT_KINDS,
          )
            .default("claude" as const),
        )
        .option(
          "--agent-command <cmd>",
          "with --agent custom: run this in the checkout for each task",
        )
        .option(
          "--model <model>",
          "with --agent claude or codex: the model every task uses (claude: an alias such as sonnet, or a full name)",
        )
        .option("--json", "print {id, ships, tasks, branch}")
        .action(
          async (
            dir: string,
            o: {
              ships?: string;
              repo?: string;
              agent: AgentKind;
              agentCommand?: string;
              model?: string;
              json?: boolean;
            },
          ) => {
            const { loadPlan } = await import("../../voyage/plan/read.ts");
            const { validateAgentChoice } = await import(
              "../../voyage/ship/agents/kinds.ts"
            );
            const { parseRepoArg } = await import("../../validate.ts");
            const { MAX_SHIPS } = await import(
              "../../voyage/plan/plan_rules.ts"
            );
            const ships = maxShips("--ships", o.ships, MAX_SHIPS);
            const defaultShips = await defaultShipsFromEnv();
            const { agentEnvFrom, checkModel, requireAgentCredential } =
              await import("../../voyage/ship/agent_env.ts");
            const model = checkModel(o.agent, o.model);
            // Everything about the plan is checked here, before any VM exists.
            const plan = await loadPlan(dir, { repo: o.repo });
            validateAgentChoice(o.agent, {
              tasks: plan.tasks.map((t) => ({
                id: t.id,
                subject: t.subject,
                command: t.command,
              })),
              agentCommand: o.agentCommand,
            });
            let repo = o.repo ?? plan.repo;
            // GH_TOKEN goes only where a repository needs it: the flagship's
            // clone of a remote repository (ships get the code from the
            // flagship).
            let needsToken = false;
            if (repo !== "empty") {
              const spec = parseRepoArg(repo);
              if (spec.kind === "none") {
                throw new UsageError(
                  `"${repo}" is not a repository`,
                );
              }
              if (spec.kind === "path") repo = spec.path;
              if (spec.kind === "url") needsToken = true;
              if (spec.kind === "github") {
                // As for ship create: the token must read it, before any VM.
                const { requireRepoAccess } = await import("../../github.ts");
                await requireRepoAccess([spec], Deno.env.get("GH_TOKEN"));
                // The flagship clones what the laptop resolved (its GitHub base).
                repo = spec.url;
                needsToken = true;
              }
            }
            // The agent's allow-listed environment travels with the secrets.
            const agentEnv = agentEnvFrom(o.agent, (k) => Deno.env.get(k));
            requireAgentCredential(o.agent, agentEnv);
            const secrets: Record<string, string> = { ...agentEnv };
            const gh = needsToken ? Deno.env.get("GH_TOKEN") : undefined;
            if (gh) secrets.GH_TOKEN = gh;
            const r = await flagshipCall(
              "voyage sail",
              "voyage.sail",
              {
                files: plan.files,
                ships,
                default_ships: defaultShips,
                repo,
                agent: o.agent,
                agent_command: o.agentCommand,
                model,
              },
              { secrets, ...progressEvents },
            );
            if (o.json) printJson(r);
            else {
              out(
                `Voyage ${r.id} is sailing: ${r.tasks} tasks on ${r.ships.length} ships.`,
              );
              out(`  ohcommodore voyage status ${r.id}`);
              out(`  ohcommodore voyage logs ${r.id} --follow`);
            }
          },
        ),
  );

  verb(
    "status",
    "a voyage's state, task counts and each ship's current task (stale ships flagged)",
    (cmd) =>
      cmd
        .argument("[id]", ID_HELP)
        .option("--json", "machine-readable output")
        .option(
          "--wait",
          "wait until the voyage is verified, failed or sunk; exit 1 unless verified",
        )
        .action(async (id: string | undefined, o: {
          json?: boolean;
          wait?: boolean;
        }) => {
          let s = await flagshipCall(
            "voyage status",
            "voyage.status",
            { id },
          );
          while (
            o.wait &&
            ["planning", "running", "complete"].includes(s.voyage.state)
          ) {
            await new Promise((r) => setTimeout(r, 500));
            s = await flagshipCall(
              "voyage status",
              "voyage.status",
              { id: s.voyage.id },
            );
          }
          if (o.json) printJson(s);
          else out(renderVoyage(s));
          if (o.wait && s.voyage.state !== "verified") exit.code = 1;
        }),
  );

  verb(
    "tasks",
    "a voyage's tasks with status, ship, tries, blockers and commit",
    (cmd) =>
      cmd
        .argument("[id]", ID_HELP)
        .addOption(
          new Option(
            "-s, --status <status>",
            "only this status (ocaptain's in_progress and completed are running and done)",
          ).choices(
            [
              "pending",
              "running",
              "done",
              "failed",
              "in_progress",
              "completed",
            ] as const,
          ),
        )
        .option("--json", "machine-readable output")
        .action(async (id: string | undefined, o: {
          status?: string;
          json?: boolean;
        }) => {
          const status = o.status
            ? (STATUS_ALIASES[o.status] ?? o.status) as Task["status"]
            : undefined;
          const r = await flagshipCall(
            "voyage tasks",
            "voyage.tasks",
            { id, status },
          );
          if (o.json) return printJson(r.tasks);
          out(table(
            [
              "ID",
              "STATUS",
              "SHIP",
              "TRIES",
              "BLOCKED BY",
              "COMMIT",
              "SUBJECT",
            ],
            r.tasks.map((t) => [
              t.id,
              t.status,
              t.ship ?? "-",
              String(t.attempts),
              t.blocked_by.length ? t.blocked_by.join(",") : "-",
              t.commit_sha?.slice(0, 10) ?? "-",
              t.subject + (t.error ? `  [${t.error}]` : ""),
            ]),
          ));
        }),
  );

  verb(
    "logs",
    "the agents' output, from every ship (each line tagged with ship and task);\n" +
      "kept on the flagship when a ship goes",
    (cmd) =>
      cmd
        .argument("[id]", ID_HELP)
        .option(
          "-s, --ship <ship>",
          "only this ship: its name, or ship-N / N (counting from 0)",
        )
        .option(
          "-f, --follow",
          "keep printing as tasks write, until the voyage has ended",
        )
        .option(
          "--raw",
          "the lines as the agents wrote them (Claude Code's stream-json), not rendered",
        )
        .option(
          "-g, --grep <re>",
          "only lines matching this regular expression",
        )
        .option(
          "-n, --tail <n>",
          "only the last n lines (with --follow: then every new one)",
        )
        .action(async (id: string | undefined, o: {
          ship?: string;
          follow?: boolean;
          raw?: boolean;
          grep?: string;
          tail?: string;
        }) => {
          if (o.grep !== undefined) {
            try {
              new RegExp(o.grep);
            } catch (e) {
              throw new UsageError(`--grep: ${(e as Error).message}`);
            }
          }
          const tail = positiveInt("--tail", o.tail);
          let buf = "";
          const dec = new TextDecoder();
          await flagshipCall("voyage logs", "voyage.logs", {
            id,
            ship: o.ship,
            follow: !!o.follow,
            raw: !!o.raw,
            grep: o.grep,
            tail,
          }, {
            onEvent: (e) => {
              const b = decodeOutput(e);
              if (!b) return;
              buf += dec.decode(b, { stream: true });
              const parts = buf.split("\n");
              buf = parts.pop() ?? "";
              parts.forEach((l) => out(l));
            },
          });
          if (buf) out(buf);
        }),
  );

  verb(
    "clone",
    "a real git clone of the voyage branch, history included (also after a sink)",
    (cmd) =>
      cmd
        .argument("[id]", ID_HELP)
        .option("-d, --dir <dir>", "where (default: ./<voyage id>)")
        .option("--dest <dir>", "the same as --dir (ocaptain's name)")
        .action(async (id: string | undefined, o: {
          dir?: string;
          dest?: string;
        }) => {
          if (o.dir !== undefined && o.dest !== undefined) {
            throw new UsageError("give --dir or --dest, not both");
          }
          const chunks: Uint8Array[] = [];
          const r = await flagshipCall(
            "voyage clone",
            "voyage.bundle",
            { id },
            {
              onEvent: (e) => {
                const b = decodeOutput(e);
                if (b) chunks.push(b);
              },
            },
          );
          const dir = o.dir ?? o.dest ?? r.id;
          const file = await Deno.makeTempFile({ suffix: ".bundle" });
          try {
            await Deno.writeFile(file, concatBytes(chunks));
            const { cloneVoyage } = await import("../../git/checkout.ts");
            const c = await cloneVoyage({ bare: file, branch: r.branch, dir });
            out(`Cloned ${r.branch} into ${c.dir} (at ${c.tip.slice(0, 12)}).`);
          } finally {
            await Deno.remove(file).catch(() => {});
          }
        }),
  );

  verb(
    "shell",
    "watch a voyage: with a ship, attach to its tmux session 'voyage' (with --raw,\n" +
      "a shell in its checkout); without one, the fleet view: a tmux session here\n" +
      "with a window per ship",
    (cmd) =>
      cmd
        .argument("[id]", ID_HELP)
        .argument(
          "[ship]",
          "which ship: its name, or ship-N / N (counting from 0); default: all (the fleet view)",
        )
        .option(
          "-r, --raw",
          "a plain shell instead of tmux (needs no terminal)",
        )
        .action(async (
          id: string | undefined,
          ship: string | undefined,
          o: { raw?: boolean },
        ) => {
          const { voyageShell } = await import("./voyage_shell.ts");
          exit.code = await voyageShell(id, ship, o);
        }),
  );

  verb(
    "sink",
    "sink a voyage: destroy its ships, keeping its record on the flagship\n" +
      "(repository, tasks, logs, verify output) unless --purge",
    (cmd) =>
      cmd
        .argument(
          "[id]",
          "voyage id (the whole id: nothing is sunk on a guess)",
        )
        .option("--all", "every voyage")
        .option("-f, --force", "do not ask")
        .option(
          "--purge",
          "also remove its record: repository, tasks, logs, verify output",
        )
        .option(
          "-s, --include-storage",
          "the same as --purge (ocaptain's name)",
        )
        .option("--json", "machine-readable output")
        .action(async (id: string | undefined, o: {
          all?: boolean;
          force?: boolean;
          purge?: boolean;
          includeStorage?: boolean;
          json?: boolean;
        }) => {
          if (!id && !o.all) {
            throw new UsageError("name a voyage, or pass --all");
          }
          if (id && o.all) {
            throw new UsageError("give a voyage id or --all, not both");
          }
          const purge = !!(o.purge || o.includeStorage);
          if (!o.force && !Deno.stdin.isTerminal()) {
            throw new UsageError(
              "refusing to sink without a terminal to confirm on; pass --force",
            );
          }
          const ids = o.all
            ? (await flagshipCall("voyage sink", "voyage.list", {}))
              .map((s) => s.voyage.id)
            : [id!];
          if (ids.length === 0) {
            if (o.json) printJson([]);
            else out("No voyages.");
            return;
          }
          if (!o.force) {
            err(
              `This will stop ${ids.join(", ")} and destroy its ships${
                purge ? ", and remove its record (repository, tasks, logs)" : ""
              }.`,
            );
            if (prompt("Type 'sink' to confirm:")?.trim() !== "sink") {
              throw new UsageError("aborted");
            }
          }
          const results = [];
          for (const v of ids) {
            results.push(
              await flagshipCall(
                "voyage sink",
                "voyage.sink",
                { id: v, purge },
                progressEvents,
              ),
            );
          }
          if (o.json) printJson(results);
          else {
            for (const r of results) {
              out(
                `Sank voyage ${r.voyage}: ${r.destroyed.length} ship(s) destroyed; ${
                  r.purged
                    ? "its record removed."
                    : `its record stays (ohcommodore voyage logs ${r.voyage}; --purge removes it).`
                }`,
              );
            }
          }
        }),
  );

  for (const [name, description, define] of verbs) {
    define(
      voyage.command(name).description(
        TOP_LEVEL.includes(name)
          ? `${description}\n(also 'ohcommodore ${name}', as ocaptain spells it)`
          : description,
      ),
    );
    if (TOP_LEVEL.includes(name)) {
      define(
        program.command(name).description(`same as 'voyage ${name}'`),
      );
    }
  }

  voyage.command("list")
    .description("every voyage on the flagship")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const all = await flagshipCall(
        "voyage list",
        "voyage.list",
        {},
      );
      await rememberNames("voyages", all.map((s) => s.voyage.id));
      if (o.json) return printJson(all);
      if (all.length === 0) return out("No voyages.");
      out(table(
        ["ID", "STATE", "DONE", "FAILED", "TASKS", "SHIPS", "AGE"],
        all.map((s) => [
          s.voyage.id,
          s.voyage.state,
          String(s.counts.done),
          String(s.counts.failed),
          String(Object.values(s.counts).reduce((a, b) => a + b, 0)),
          String(s.ships.filter((x) => x.state !== "gone").length),
          age(s.voyage.created_at),
        ]),
      ));
    });

  const steer = (
    o: { json?: boolean },
    r: Reopened & { new_ships: string[] },
    what: string,
  ) => {
    if (o.json) return printJson(r);
    out(
      `${what} ${
        r.tasks.length ? r.tasks.join(", ") : "no task"
      } in voyage ${r.voyage}${r.reopened ? "; it sails again" : ""}${
        r.new_ships.length ? ` on new ships ${r.new_ships.join(", ")}` : ""
      }.`,
    );
    out(`  ohcommodore voyage status ${r.voyage}`);
  };

  voyage.command("retry")
    .description(
      "put failed tasks back in the queue (each with a fresh set of tries), so an\n" +
        "ended voyage sails on; with no task failed, verify.sh runs again. A voyage\n" +
        "with no ships left (sunk) gets new ones",
    )
    .argument("<id>", "voyage id, or a unique prefix of 4+ characters")
    .argument("[tasks...]", "these tasks only (default: every failed one)")
    .option(
      "-n, --ships <n>",
      "new ships to sail on (default: none while it has ships; else one per open task, at most OHCOMMODORE_DEFAULT_SHIPS)",
    )
    .option("--json", "machine-readable output")
    .action(async (id, tasks, o) => {
      const { MAX_SHIPS } = await import("../../voyage/plan/plan_rules.ts");
      const ships = maxShips("--ships", o.ships, MAX_SHIPS);
      const r = await flagshipCall(
        "voyage retry",
        "voyage.retry",
        { id, tasks, ships, default_ships: await defaultShipsFromEnv() },
        progressEvents,
      );
      steer(o, r, "Retrying");
    });

  voyage.command("add")
    .description(
      "add tasks to a voyage, checked as a plan's are (ids new to the voyage,\n" +
        "blockers among its tasks or the added ones, no cycle); an ended voyage\n" +
        "sails again, on new ships if it has none left",
    )
    .argument("<id>", "voyage id, or a unique prefix of 4+ characters")
    .argument(
      "<paths...>",
      "task files (*.json), or directories: a plan (its tasks/) or a folder of task files",
    )
    .option(
      "-n, --ships <n>",
      "new ships to sail on (default: none while it has ships; else one per open task, at most OHCOMMODORE_DEFAULT_SHIPS)",
    )
    .option("--json", "machine-readable output")
    .action(async (id, paths, o) => {
      const { MAX_SHIPS } = await import("../../voyage/plan/plan_rules.ts");
      const ships = maxShips("--ships", o.ships, MAX_SHIPS);
      const { readAddedTaskFiles } = await import("../../voyage/plan/read.ts");
      const { parseAddedTasks } = await import("../../voyage/plan/check.ts");
      const files = await readAddedTaskFiles(paths);
      // Checked here against the voyage's tasks, before anything changes.
      const have = await flagshipCall(
        "voyage add",
        "voyage.tasks",
        { id },
      );
      parseAddedTasks(files, have.tasks.map((t) => t.id));
      const r = await flagshipCall(
        "voyage add",
        "voyage.add",
        {
          id: have.voyage,
          files,
          ships,
          default_ships: await defaultShipsFromEnv(),
        },
        progressEvents,
      );
      steer(o, r, "Added");
    });
}
