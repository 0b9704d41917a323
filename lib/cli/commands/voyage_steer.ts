/**
 * `voyage retry` and `voyage add`: steering a voyage that sails (or has
 * ended) by reopening failed tasks or adding new ones.
 */
import type { Command } from "@commander-js/extra-typings";
import type { Reopened } from "../../voyage/flagship/queue.ts";
import type { CliContext } from "../context.ts";
import { out, printJson, progressTo } from "../io.ts";
import { defaultShipsFromEnv, maxShips } from "./voyage_args.ts";

export function registerSteer(voyage: Command, ctx: CliContext): void {
  const { io } = ctx;
  const progress = progressTo(io);
  const steer = (
    o: { json?: boolean },
    r: Reopened & { new_ships: string[] },
    what: string,
  ) => {
    if (o.json) return printJson(io, r);
    out(
      io,
      `${what} ${
        r.tasks.length ? r.tasks.join(", ") : "no task"
      } in voyage ${r.voyage}${r.reopened ? "; it sails again" : ""}${
        r.new_ships.length ? ` on new ships ${r.new_ships.join(", ")}` : ""
      }.`,
    );
    out(io, `  ohcommodore voyage status ${r.voyage}`);
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
      const r = await (await ctx.voyage("voyage retry")).retry(
        { id, tasks, ships, default_ships: await defaultShipsFromEnv(ctx) },
        progress,
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
      const api = await ctx.voyage("voyage add");
      const have = await api.tasks({ id });
      parseAddedTasks(files, have.tasks.map((t) => t.id));
      const r = await api.add(
        {
          id: have.voyage,
          files,
          ships,
          default_ships: await defaultShipsFromEnv(ctx),
        },
        progress,
      );
      steer(o, r, "Added");
    });
}
