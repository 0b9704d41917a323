/** `fleet ...`: the whole fleet: status, sink, recover, config. */
import type { Command } from "@commander-js/extra-typings";
import { UsageError } from "../../errors.ts";
import type { FleetConfig } from "../../fleet/api.ts";
import { rememberNames } from "../completion_cache.ts";
import type { CliContext } from "../context.ts";
import { err, type Io, out, printJson, progressTo } from "../io.ts";
import { renderStatus, table } from "../render.ts";

/** Asks a person to type `word`; misuse without a terminal to ask on. */
export function confirm(io: Io, word: string): void {
  if (!io.stdinIsTerminal()) {
    throw new UsageError(
      `refusing to ${word} without a terminal to confirm on; pass --force`,
    );
  }
  const answer = io.prompt(`Type '${word}' to confirm:`);
  if (answer?.trim() !== word) throw new UsageError("aborted");
}

export function registerFleet(program: Command, ctx: CliContext): void {
  const { io } = ctx;
  const progress = progressTo(io);
  const fleetCmd = program.command("fleet").description(
    "the whole fleet: status, sink, recover",
  );

  fleetCmd.command("status")
    .description("show the flagship and every ship")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const s = await (await ctx.fleet("fleet status")).status();
      await rememberNames(
        "ships",
        s.ships.map((x) => x.name),
        (await ctx.machine()).home,
      );
      if (o.json) printJson(io, s);
      else out(io, renderStatus(s));
      if (s.flagship.status === "down") ctx.exit.code = 1;
    });

  fleetCmd.command("sink")
    .description("destroy every ship (asks you to type 'sink')")
    .option("--scuttle", "also destroy the flagship and forget it")
    .option("--force", "do not ask")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const f = await ctx.fleet("fleet sink");
      if (o.scuttle && (await ctx.machine()).role !== "local") {
        throw new UsageError(
          "--scuttle runs on your own machine, not on the flagship",
        );
      }
      const ships = await f.listShips();
      if (ships.length > 0 && !o.force) {
        err(io, "WARNING: This will destroy all ships:");
        for (const s of ships) {
          err(io, `  - ${s.name}${s.repo ? ` (${s.repo})` : ""}`);
        }
        if (o.scuttle) err(io, "  and the flagship itself");
        confirm(io, "sink");
      } else if (o.scuttle && !o.force) {
        err(io, "WARNING: This will destroy the flagship.");
        confirm(io, "sink");
      }
      const result = await f.sink(progress);
      let scuttled = false;
      if (o.scuttle && result.failed.length === 0) {
        const laptop = await ctx.laptop();
        await laptop.scuttle(await laptop.requireConfig(), progress);
        scuttled = true;
      }
      if (o.json) printJson(io, { ...result, scuttled });
      else {
        for (const f of result.failed) err(io, `error: ${f.name}: ${f.error}`);
        out(
          io,
          `Sunk ${result.destroyed.length} ship(s).` +
            (scuttled ? " Flagship scuttled." : ""),
        );
      }
      if (result.failed.length > 0) ctx.exit.code = 1;
    });

  fleetCmd.command("recover")
    .description("rebuild the fleet registry from the provider and the ships")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const ships = await (await ctx.fleet("fleet recover")).recover(progress);
      if (o.json) printJson(io, ships);
      else out(io, `Recovered ${ships.length} ship(s).`);
    });

  const config = fleetCmd.command("config").description(
    "the fleet's VM settings (timeouts, leases, agent user, ...), on the\n" +
      "flagship and every ship; unset ones have their defaults",
  );
  const showSettings = async (r: FleetConfig, json?: boolean) => {
    if (json) return printJson(io, r);
    const { SETTINGS } = await import("../../settings.ts");
    out(
      io,
      table(
        ["SETTING", "VALUE", "MEANING"],
        Object.entries(SETTINGS).map(([k, spec]) => [
          k,
          r.settings[k] ?? `${spec.fallback || "-"} (default)`,
          spec.help,
        ]),
      ),
    );
    for (const f of r.failed) {
      err(io, `ship ${f.name} was not told: ${f.error}`);
    }
    if (r.failed.length) ctx.exit.code = 1;
  };
  config.command("get")
    .description("show every setting and its value")
    .option("--json", "machine-readable output")
    .action(async (o) =>
      await showSettings(
        await (await ctx.fleet("fleet config get")).getSettings(),
        o.json,
      )
    );
  config.command("set")
    .description("set settings on the flagship and every ship: KEY=VALUE ...")
    .argument("<assignments...>", "e.g. OHCOMMODORE_INBOX_TIMEOUT=600")
    .option("--json", "machine-readable output")
    .action(async (pairs, o) => {
      const { parseAssignments } = await import("../../settings.ts");
      const set = parseAssignments(pairs);
      const f = await ctx.fleet("fleet config set");
      await showSettings(await f.setSettings(set, [], progress), o.json);
    });
  config.command("unset")
    .description("put settings back to their defaults: KEY ...")
    .argument("<names...>")
    .option("--json", "machine-readable output")
    .action(async (names, o) => {
      const { settingName } = await import("../../settings.ts");
      names.forEach(settingName);
      const f = await ctx.fleet("fleet config unset");
      await showSettings(await f.setSettings({}, names, progress), o.json);
    });
}
