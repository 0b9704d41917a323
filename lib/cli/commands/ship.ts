/** `ship ...`: one ship: create, destroy, list, exec, ssh. */
import type { Command } from "@commander-js/extra-typings";
import { UsageError } from "../../errors.ts";
import { validateName } from "../../validate.ts";
import { rememberNames } from "../completion_cache.ts";
import type { CliContext } from "../context.ts";
import { err, out, printJson, progressTo } from "../io.ts";
import { ProgressView } from "../progress_view.ts";
import { shipRows, table } from "../render.ts";

function stripDashDash(argv: string[]): string[] {
  return argv[0] === "--" ? argv.slice(1) : argv;
}

export function registerShip(program: Command, ctx: CliContext): void {
  const { io } = ctx;
  const progress = progressTo(io);
  const ship = program.command("ship").description(
    "one ship: create, destroy, list, exec, ssh",
  );

  ship.command("create")
    .description(
      "create ships, in parallel: a bare name makes an empty ship; owner/repo\n" +
        "(needs GH_TOKEN), a git URL or a path to a git repository is cloned\n" +
        "into ~/<repo> on the ship",
    )
    .argument("<specs...>", "name | owner/repo | git URL | path, one per ship")
    .option(
      "--name <name>",
      "ship name (one ship only; default: from the repo)",
    )
    .option("--json", "machine-readable output")
    .action(async (specs, o) => {
      const { parseRepoArg } = await import("../../validate.ts");
      // Every argument is checked before anything runs.
      const parsed = specs.map((s) => parseRepoArg(s, ctx.cwd()));
      if (o.name !== undefined) {
        if (specs.length > 1) {
          throw new UsageError("--name names one ship; give one spec");
        }
        validateName(o.name);
      }
      if (new Set(specs).size !== specs.length) {
        throw new UsageError("the same ship is named twice");
      }
      const token = ctx.env("GH_TOKEN");
      const github = parsed.flatMap((p) => p.kind === "github" ? [p] : []);
      if (github.length) {
        const { requireRepoAccess } = await import("../../github.ts");
        await requireRepoAccess(github, token);
      }
      const { bootstrapFromEnv } = await import("../../bootstrap.ts");
      const bootstrap = await bootstrapFromEnv(ctx.environ());
      const { settingsFromEnv } = await import("../../settings.ts");
      const settings = settingsFromEnv(ctx.environ());
      const f = await ctx.fleet("ship create");
      await f.checkCapacity(specs.length);
      const view = new ProgressView(
        specs,
        io.stderrIsTerminal(),
        (b) => io.write("stderr", b),
      );
      const results = await Promise.allSettled(
        specs.map((spec, i) =>
          f.createShip(
            {
              spec: parsed[i].kind === "path"
                ? (parsed[i] as { path: string }).path
                : spec,
              name: o.name,
              bootstrap,
              settings,
              clone_url: parsed[i].kind === "github"
                ? (parsed[i] as { url: string }).url
                : undefined,
            },
            {
              secrets: token ? { GH_TOKEN: token } : {},
              onProgress: (m) => view.progress(m, spec),
            },
          ).then((rec) => {
            view.done(spec, `ready: ${rec.name}`);
            return rec;
          }, (e) => {
            view.done(spec, `failed: ${(e as Error).message}`);
            throw e;
          })
        ),
      );
      const ok = results.flatMap((r) =>
        r.status === "fulfilled" ? [r.value] : []
      );
      const failed = results.flatMap((r, i) =>
        r.status === "rejected"
          ? [{ spec: specs[i], error: (r.reason as Error).message }]
          : []
      );
      if (specs.length === 1 && failed.length === 1) {
        throw (results[0] as PromiseRejectedResult).reason;
      }
      if (o.json) {
        printJson(io, specs.length === 1 ? ok[0] : { created: ok, failed });
      } else {
        for (const rec of ok) {
          out(io, `Ship ready: ${rec.name}${rec.repo ? ` (${rec.repo})` : ""}`);
        }
        for (const x of failed) err(io, `error: ${x.spec}: ${x.error}`);
      }
      if (failed.length) ctx.exit.code = 1;
    });

  ship.command("destroy")
    .description(
      "destroy a ship (its exact name: nothing is destroyed on a guess)",
    )
    .argument("<name>")
    .option("--json", "machine-readable output")
    .action(async (name, o) => {
      const rec = await (await ctx.fleet("ship destroy")).destroyShip(
        name,
        progress,
      );
      if (o.json) printJson(io, rec);
      else out(io, `Destroyed ${rec.name}.`);
    });

  ship.command("list")
    .description("list ships")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const ships = await (await ctx.fleet("ship list")).listShips();
      await rememberNames(
        "ships",
        ships.map((x) => x.name),
        (await ctx.machine()).home,
      );
      if (o.json) printJson(io, ships);
      else if (ships.length === 0) out(io, "No ships.");
      else out(io, table(["NAME", "REPO", "STATUS", "AGE"], shipRows(ships)));
    });

  ship.command("exec")
    .description(
      "run a command on a ship with its ~/.ohcommodore/bin on PATH;\n" +
        "exits with the command's exit code",
    )
    .argument("<name>")
    .argument("<cmd...>", "command and arguments (put -- before them)")
    .passThroughOptions()
    .action(async (name, cmd) => {
      const argv = stripDashDash(cmd);
      if (argv.length === 0) {
        throw new UsageError("ship exec needs a command after --");
      }
      const f = await ctx.fleet("ship exec");
      ctx.exit.code = await f.exec(name, argv, {
        input: io.input(),
        onOutput: (s, d) => io.write(s, d),
      });
    });

  ship.command("ssh")
    .description(
      "open a shell on a ship (or run a command there with a terminal)",
    )
    .argument("<name>")
    .argument("[cmd...]", "optional command (put -- before it)")
    .passThroughOptions()
    .action(async (name, cmd) => {
      const f = await ctx.fleet("ship ssh");
      ctx.exit.code = await f.ssh(
        name,
        stripDashDash(cmd),
        io.stdinIsTerminal(),
      );
    });
}
