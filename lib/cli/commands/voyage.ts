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
import type { Task } from "../../voyage/flagship/queue.ts";
import type { VoyageStatus } from "../../voyage/rpc.ts";
import type { CliContext } from "../context.ts";
import { err, out, printJson, progressTo } from "../io.ts";
import { age, table } from "../render.ts";
import { confirm } from "./fleet.ts";
import { registerSail } from "./voyage_sail.ts";
import { registerSteer } from "./voyage_steer.ts";
import { type DefineVerb, positiveInt } from "./voyage_args.ts";

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

export function registerVoyage(program: Command, ctx: CliContext): void {
  const { io } = ctx;
  const progress = progressTo(io);
  const voyage = program.command("voyage").description(
    "voyages: plans of dependent tasks sailed by many ships",
  );
  const verbs: [string, string, (cmd: Command) => void][] = [];
  const verb: DefineVerb = (name, description, define) =>
    verbs.push([name, description, define]);

  voyage.command("check")
    .description(
      "validate a plan directory and show its levels, widest level,\n" +
        "critical path and a recommended ship count (nothing is created)",
    )
    .argument(
      "<plan>",
      "plan directory (voyage.json, spec.md, verify.sh, tasks/)",
    )
    .option("--json", "machine-readable output")
    .action(async (dir, o) => {
      const { loadPlan } = await import("../../voyage/plan/read.ts");
      const { analyze } = await import("../../voyage/plan/dag.ts");
      const { checkJson, formatCheck } = await import(
        "../../voyage/plan/check_report.ts"
      );
      const plan = await loadPlan(dir);
      const analysis = analyze(plan.tasks);
      if (o.json) printJson(io, checkJson(plan, analysis));
      else out(io, formatCheck(plan, analysis));
    });

  registerSail(verb, ctx);

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
          const api = await ctx.voyage("voyage status");
          let s = await api.status(id);
          while (
            o.wait &&
            ["planning", "running", "complete"].includes(s.voyage.state)
          ) {
            await new Promise((r) => setTimeout(r, 500));
            s = await api.status(s.voyage.id);
          }
          if (o.json) printJson(io, s);
          else out(io, renderVoyage(s));
          if (o.wait && s.voyage.state !== "verified") ctx.exit.code = 1;
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
            ? (STATUS_ALIASES[o.status] ?? o.status as Task["status"])
            : undefined;
          const r = await (await ctx.voyage("voyage tasks")).tasks({
            id,
            status,
          });
          if (o.json) return printJson(io, r.tasks);
          out(
            io,
            table(
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
            ),
          );
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
          await (await ctx.voyage("voyage logs")).logs({
            id,
            ship: o.ship,
            follow: !!o.follow,
            raw: !!o.raw,
            grep: o.grep,
            tail,
          }, (b) => {
            buf += dec.decode(b, { stream: true });
            const parts = buf.split("\n");
            buf = parts.pop() ?? "";
            parts.forEach((l) => out(io, l));
          });
          if (buf) out(io, buf);
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
          const r = await (await ctx.voyage("voyage clone")).bundle(
            id,
            (b) => chunks.push(b),
          );
          const dir = o.dir ?? o.dest ?? r.id;
          const file = await Deno.makeTempFile({ suffix: ".bundle" });
          try {
            await Deno.writeFile(file, concatBytes(chunks));
            const { cloneVoyage } = await import("../../git/checkout.ts");
            const c = await cloneVoyage({ bare: file, branch: r.branch, dir });
            out(
              io,
              `Cloned ${r.branch} into ${c.dir} (at ${c.tip.slice(0, 12)}).`,
            );
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
          ctx.exit.code = await voyageShell(ctx, id, ship, o);
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
          if (!o.force && !io.stdinIsTerminal()) {
            throw new UsageError(
              "refusing to sink without a terminal to confirm on; pass --force",
            );
          }
          const api = await ctx.voyage("voyage sink");
          const ids = o.all
            ? (await api.list()).map((s) => s.voyage.id)
            : [id!];
          if (ids.length === 0) {
            if (o.json) printJson(io, []);
            else out(io, "No voyages.");
            return;
          }
          if (!o.force) {
            err(
              io,
              `This will stop ${ids.join(", ")} and destroy its ships${
                purge ? ", and remove its record (repository, tasks, logs)" : ""
              }.`,
            );
            confirm(io, "sink");
          }
          const results = [];
          for (const v of ids) {
            results.push(await api.sink({ id: v, purge }, progress));
          }
          if (o.json) printJson(io, results);
          else {
            for (const r of results) {
              out(
                io,
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
      const all = await (await ctx.voyage("voyage list")).list();
      await rememberNames(
        "voyages",
        all.map((s) => s.voyage.id),
        (await ctx.machine()).home,
      );
      if (o.json) return printJson(io, all);
      if (all.length === 0) return out(io, "No voyages.");
      out(
        io,
        table(
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
        ),
      );
    });

  registerSteer(voyage, ctx);
}
