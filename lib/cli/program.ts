/**
 * The command tree: names, arguments, options, help and which roles may run
 * each command. Actions are thin: they pick the role's implementation and
 * render its result.
 */
import { Command, Option } from "@commander-js/extra-typings";
import { UsageError } from "../errors.ts";
import type { FleetApi, FleetConfig } from "../fleet/api.ts";
import { readIdentity, type Role } from "../state/identity.ts";
import { paths } from "../state/paths.ts";
import type { ProviderSettings } from "../providers/types.ts";
import { VERSION } from "../version.ts";
import { validateName } from "../validate.ts";
import { registerDaemon, registerInbox } from "./commands/inbox.ts";
import { registerVoyage } from "./commands/voyage.ts";
import { registerDoctor } from "./commands/doctor.ts";
import { rememberNames } from "./completion_cache.ts";
import { ProgressView } from "./progress_view.ts";
import {
  err,
  out,
  printJson,
  progress,
  renderStatus,
  shipRows,
  table,
} from "./render.ts";

/** Resolves to the process exit code. */
export type Exit = { code: number };

async function role(): Promise<Role> {
  return (await readIdentity())?.role ?? "local";
}

/** The fleet as seen from here: forwarded from the laptop, direct on the flagship. */
async function fleet(command: string): Promise<FleetApi> {
  const id = await readIdentity();
  if (!id) {
    const { RemoteFleet, requireConfig } = await import("../../roles/local.ts");
    return new RemoteFleet(await requireConfig());
  }
  if (id.role === "commodore") {
    const { Commodore } = await import("../../roles/commodore.ts");
    return new Commodore(id);
  }
  throw new UsageError(
    `'${command}' runs on your own machine or on the flagship, not on ship "${id.name}"`,
  );
}

function stripDashDash(argv: string[]): string[] {
  return argv[0] === "--" ? argv.slice(1) : argv;
}

export function buildProgram(exit: Exit): Command {
  const program = new Command("ohcommodore")
    .description(
      "Control plane for fleets of AI coding agents on VMs.\n" +
        "Run 'ohcommodore init' once, then create ships and sail voyages.",
    )
    .version(VERSION, "-V, --version")
    .exitOverride() // inherited by every subcommand; run.ts maps the exit code
    .enablePositionalOptions()
    .showSuggestionAfterError(true)
    .helpCommand(true);

  program
    .command("init")
    .description("create the flagship VM and remember it (run on your machine)")
    .addOption(
      new Option("--provider <provider>", "where VMs live")
        .choices(["local", "exedev", "sprites"] as const)
        .default("local" as const),
    )
    .option(
      "--name <name>",
      "the flagship's name, and exactly its VM's (default: flagship, whose VM is " +
        "named <fleet id>-flagship where VM names are global, as on exe.dev)",
    )
    .option(
      "--root <dir>",
      "local: folder holding the VMs (default ~/.ohcommodore/local, or $OHCOMMODORE_LOCAL_ROOT)",
    )
    .option("--lobby <host>", "exedev: the lobby host (default exe.dev)")
    .option(
      "--ssh-config <file>",
      "exedev: an OpenSSH config for every connection (or $OHCOMMODORE_SSH_CONFIG)",
    )
    .option(
      "--identity <file>",
      "exedev: offer only this private key (default: your own ssh setup, as for " +
        "'ssh exe.dev': ~/.ssh/config, the agent, default keys)",
    )
    .option("--org <org>", "sprites: the organization (default $SPRITE_ORG)")
    .option("--json", "print the new config as JSON")
    .action(async (o) => {
      const r = await role();
      if (r !== "local") {
        throw new UsageError(
          `'init' runs on your own machine, not on this ${r} VM`,
        );
      }
      const name = o.name ?? "flagship";
      validateName(name, "flagship name");
      const misplaced = (flag: string, value: unknown, kind: string) => {
        if (value !== undefined && o.provider !== kind) {
          throw new UsageError(`${flag} is for --provider ${kind}`);
        }
      };
      misplaced("--root", o.root, "local");
      misplaced("--lobby", o.lobby, "exedev");
      misplaced("--ssh-config", o.sshConfig, "exedev");
      misplaced("--identity", o.identity, "exedev");
      if (o.identity !== undefined) {
        try {
          if (!Deno.statSync(o.identity).isFile) throw new Error();
        } catch {
          throw new UsageError(`--identity ${o.identity}: no such file`);
        }
      }
      misplaced("--org", o.org, "sprites");
      let provider: ProviderSettings;
      if (o.provider === "local") {
        const root = o.root ?? Deno.env.get("OHCOMMODORE_LOCAL_ROOT") ??
          paths.localRoot();
        provider = { kind: "local", root: absolute(root) };
      } else if (o.provider === "exedev") {
        const cfg = o.sshConfig ?? Deno.env.get("OHCOMMODORE_SSH_CONFIG");
        if (cfg !== undefined) {
          try {
            Deno.statSync(cfg);
          } catch {
            throw new UsageError(`--ssh-config ${cfg}: no such file`);
          }
        }
        provider = {
          kind: "exedev",
          lobby: o.lobby,
          ssh_config: cfg === undefined ? undefined : absolute(cfg),
        };
      } else {
        provider = { kind: "sprites", org: o.org };
      }
      const { bootstrapFromEnv } = await import("../bootstrap.ts");
      const bootstrap = await bootstrapFromEnv();
      const { settingsFromEnv } = await import("../settings.ts");
      const settings = settingsFromEnv();
      const { initFlagship } = await import("../../roles/local.ts");
      const config = await initFlagship({
        provider,
        bootstrap,
        name,
        exactVmName: o.name !== undefined,
        settings,
        identityFile: o.identity === undefined
          ? undefined
          : absolute(o.identity),
        onProgress: progress,
      });
      if (o.json) printJson(config);
      else {
        out(`Flagship ready: ${config.flagship.ssh_dest}`);
        out("Next: ohcommodore ship create <name|owner/repo>");
      }
    });

  const fleetCmd = program.command("fleet").description(
    "the whole fleet: status, sink, recover",
  );

  fleetCmd.command("status")
    .description("show the flagship and every ship")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const s = await (await fleet("fleet status")).status();
      await rememberNames("ships", s.ships.map((x) => x.name));
      if (o.json) printJson(s);
      else out(renderStatus(s));
      if (s.flagship.status === "down") exit.code = 1;
    });

  fleetCmd.command("sink")
    .description("destroy every ship (asks you to type 'sink')")
    .option("--scuttle", "also destroy the flagship and forget it")
    .option("--force", "do not ask")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const f = await fleet("fleet sink");
      if (o.scuttle && (await role()) !== "local") {
        throw new UsageError(
          "--scuttle runs on your own machine, not on the flagship",
        );
      }
      const ships = await f.listShips();
      if (ships.length > 0 && !o.force) {
        err("WARNING: This will destroy all ships:");
        for (const s of ships) {
          err(`  - ${s.name}${s.repo ? ` (${s.repo})` : ""}`);
        }
        if (o.scuttle) err("  and the flagship itself");
        confirm("sink");
      } else if (o.scuttle && !o.force) {
        err("WARNING: This will destroy the flagship.");
        confirm("sink");
      }
      const result = await f.sink(progress);
      let scuttled = false;
      if (o.scuttle && result.failed.length === 0) {
        const { requireConfig, scuttle } = await import("../../roles/local.ts");
        await scuttle(await requireConfig(), progress);
        scuttled = true;
      }
      if (o.json) printJson({ ...result, scuttled });
      else {
        for (const f of result.failed) err(`error: ${f.name}: ${f.error}`);
        out(
          `Sunk ${result.destroyed.length} ship(s).` +
            (scuttled ? " Flagship scuttled." : ""),
        );
      }
      if (result.failed.length > 0) exit.code = 1;
    });

  fleetCmd.command("recover")
    .description("rebuild the fleet registry from the provider and the ships")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const ships = await (await fleet("fleet recover")).recover(progress);
      if (o.json) printJson(ships);
      else out(`Recovered ${ships.length} ship(s).`);
    });

  const config = fleetCmd.command("config").description(
    "the fleet's VM settings (timeouts, leases, agent user, ...), on the\n" +
      "flagship and every ship; unset ones have their defaults",
  );
  const showSettings = async (r: FleetConfig, json?: boolean) => {
    if (json) return printJson(r);
    const { SETTINGS } = await import("../settings.ts");
    out(table(
      ["SETTING", "VALUE", "MEANING"],
      Object.entries(SETTINGS).map(([k, spec]) => [
        k,
        r.settings[k] ?? `${spec.fallback || "-"} (default)`,
        spec.help,
      ]),
    ));
    for (const f of r.failed) err(`ship ${f.name} was not told: ${f.error}`);
    if (r.failed.length) exit.code = 1;
  };
  config.command("get")
    .description("show every setting and its value")
    .option("--json", "machine-readable output")
    .action(async (o) =>
      await showSettings(
        await (await fleet("fleet config get")).getSettings(),
        o.json,
      )
    );
  config.command("set")
    .description("set settings on the flagship and every ship: KEY=VALUE ...")
    .argument("<assignments...>", "e.g. OHCOMMODORE_INBOX_TIMEOUT=600")
    .option("--json", "machine-readable output")
    .action(async (pairs, o) => {
      const { parseAssignments } = await import("../settings.ts");
      const set = parseAssignments(pairs);
      const f = await fleet("fleet config set");
      await showSettings(await f.setSettings(set, [], progress), o.json);
    });
  config.command("unset")
    .description("put settings back to their defaults: KEY ...")
    .argument("<names...>")
    .option("--json", "machine-readable output")
    .action(async (names, o) => {
      const { settingName } = await import("../settings.ts");
      names.forEach(settingName);
      const f = await fleet("fleet config unset");
      await showSettings(await f.setSettings({}, names, progress), o.json);
    });

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
      const { parseRepoArg } = await import("../validate.ts");
      // Every argument is checked before anything runs.
      const parsed = specs.map((s) => parseRepoArg(s));
      if (o.name !== undefined) {
        if (specs.length > 1) {
          throw new UsageError("--name names one ship; give one spec");
        }
        validateName(o.name);
      }
      if (new Set(specs).size !== specs.length) {
        throw new UsageError("the same ship is named twice");
      }
      const token = Deno.env.get("GH_TOKEN");
      const github = parsed.flatMap((p) => p.kind === "github" ? [p] : []);
      if (github.length) {
        const { requireRepoAccess } = await import("../github.ts");
        await requireRepoAccess(github, token);
      }
      const { bootstrapFromEnv } = await import("../bootstrap.ts");
      const bootstrap = await bootstrapFromEnv();
      const { settingsFromEnv } = await import("../settings.ts");
      const settings = settingsFromEnv();
      const f = await fleet("ship create");
      await f.checkCapacity(specs.length);
      const view = new ProgressView(specs);
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
        printJson(specs.length === 1 ? ok[0] : { created: ok, failed });
      } else {
        for (const rec of ok) {
          out(`Ship ready: ${rec.name}${rec.repo ? ` (${rec.repo})` : ""}`);
        }
        for (const x of failed) err(`error: ${x.spec}: ${x.error}`);
      }
      if (failed.length) exit.code = 1;
    });

  ship.command("destroy")
    .description(
      "destroy a ship (its exact name: nothing is destroyed on a guess)",
    )
    .argument("<name>")
    .option("--json", "machine-readable output")
    .action(async (name, o) => {
      const rec = await (await fleet("ship destroy")).destroyShip(
        name,
        progress,
      );
      if (o.json) printJson(rec);
      else out(`Destroyed ${rec.name}.`);
    });

  ship.command("list")
    .description("list ships")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const ships = await (await fleet("ship list")).listShips();
      await rememberNames("ships", ships.map((x) => x.name));
      if (o.json) printJson(ships);
      else if (ships.length === 0) out("No ships.");
      else out(table(["NAME", "REPO", "STATUS", "AGE"], shipRows(ships)));
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
      const f = await fleet("ship exec");
      const w = { stdout: Deno.stdout, stderr: Deno.stderr };
      exit.code = await f.exec(name, argv, {
        input: Deno.stdin.isTerminal() ? undefined : Deno.stdin.readable,
        onOutput: (s, d) => {
          let off = 0;
          while (off < d.length) off += w[s].writeSync(d.subarray(off));
        },
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
      const f = await fleet("ship ssh");
      exit.code = await f.ssh(
        name,
        stripDashDash(cmd),
        Deno.stdin.isTerminal(),
      );
    });

  registerInbox(program, exit);
  registerDaemon(program);

  const voyage = program.command("voyage").description(
    "voyages: plans of dependent tasks sailed by many ships",
  );

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
      const { loadPlan } = await import("../voyage/plan/read.ts");
      const { analyze } = await import("../voyage/plan/dag.ts");
      const { checkJson, formatCheck } = await import(
        "../voyage/plan/check_report.ts"
      );
      const plan = await loadPlan(dir);
      const analysis = analyze(plan.tasks);
      if (o.json) printJson(checkJson(plan, analysis));
      else out(formatCheck(plan, analysis));
    });

  registerVoyage(program, exit);
  registerDoctor(program, exit);

  program.command("completion")
    .description(
      "print a shell completion script: commands, flags, and the ship names\n" +
        "and voyage ids the last 'fleet status' or 'voyage list' saw.\n" +
        'bash: eval "$(ohcommodore completion bash)" (in ~/.bashrc)\n' +
        'zsh:  eval "$(ohcommodore completion zsh)" (in ~/.zshrc)\n' +
        "fish: ohcommodore completion fish | source",
    )
    .argument("<shell>", "bash, zsh or fish")
    .action(async (shell) => {
      const { completionScript, SHELLS } = await import("./completion.ts");
      if (!(SHELLS as readonly string[]).includes(shell)) {
        throw new UsageError(
          `unknown shell "${shell}": one of ${SHELLS.join(", ")}`,
        );
      }
      Deno.stdout.writeSync(
        new TextEncoder().encode(
          completionScript(program, shell as (typeof SHELLS)[number]),
        ),
      );
    });

  return program;
}

function absolute(p: string): string {
  return p.startsWith("/") ? p : `${Deno.cwd()}/${p}`;
}

function confirm(word: string): void {
  if (!Deno.stdin.isTerminal()) {
    throw new UsageError(
      `refusing to ${word} without a terminal to confirm on; pass --force`,
    );
  }
  const answer = prompt(`Type '${word}' to confirm:`);
  if (answer?.trim() !== word) throw new UsageError("aborted");
}
