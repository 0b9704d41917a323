/** `init`: creates the flagship VM and remembers it (the user's machine only). */
import { Command, Option } from "@commander-js/extra-typings";
import { UsageError } from "../../errors.ts";
import type { ProviderSettings } from "../../providers/types.ts";
import { knob } from "../../knobs.ts";
import { paths } from "../../state/paths.ts";
import { validateName } from "../../validate.ts";
import type { CliContext } from "../context.ts";
import { out, printJson, progressTo } from "../io.ts";

export function registerInit(program: Command, ctx: CliContext): void {
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
      const m = await ctx.machine();
      if (m.role !== "local") {
        throw new UsageError(
          `'init' runs on your own machine, not on this ${m.role} VM`,
        );
      }
      const name = o.name ?? "flagship";
      validateName(name, "flagship name");
      const misplaced = (flag: string, value: unknown, kind: string) => {
        if (value !== undefined && o.provider !== kind) {
          throw new UsageError(`${flag} is for --provider ${kind}`);
        }
      };
      const absolute = (p: string) =>
        p.startsWith("/") ? p : `${ctx.cwd()}/${p}`;
      const mustExist = (flag: string, file: string, isFile = false) => {
        try {
          if (!Deno.statSync(file).isFile && isFile) throw new Error();
        } catch {
          throw new UsageError(`${flag} ${file}: no such file`);
        }
      };
      misplaced("--root", o.root, "local");
      misplaced("--lobby", o.lobby, "exedev");
      misplaced("--ssh-config", o.sshConfig, "exedev");
      misplaced("--identity", o.identity, "exedev");
      if (o.identity !== undefined) mustExist("--identity", o.identity, true);
      misplaced("--org", o.org, "sprites");
      let provider: ProviderSettings;
      if (o.provider === "local") {
        const root = o.root ?? knob("OHCOMMODORE_LOCAL_ROOT", ctx.env) ??
          paths.localRoot(m.home);
        provider = { kind: "local", root: absolute(root) };
      } else if (o.provider === "exedev") {
        const cfg = o.sshConfig ?? knob("OHCOMMODORE_SSH_CONFIG", ctx.env);
        if (cfg !== undefined) mustExist("--ssh-config", cfg);
        provider = {
          kind: "exedev",
          lobby: o.lobby,
          ssh_config: cfg === undefined ? undefined : absolute(cfg),
        };
      } else {
        provider = { kind: "sprites", org: o.org };
      }
      const { bootstrapFromEnv } = await import("../../bootstrap.ts");
      const bootstrap = await bootstrapFromEnv(ctx.environ());
      const { settingsFromEnv } = await import("../../settings.ts");
      const settings = settingsFromEnv(ctx.environ());
      const laptop = await ctx.laptop();
      const config = await laptop.init({
        provider,
        bootstrap,
        name,
        exactVmName: o.name !== undefined,
        settings,
        identityFile: o.identity === undefined
          ? undefined
          : absolute(o.identity),
        onProgress: progressTo(ctx.io),
      });
      if (o.json) printJson(ctx.io, config);
      else {
        out(ctx.io, `Flagship ready: ${config.flagship.ssh_dest}`);
        out(ctx.io, "Next: ohcommodore ship create <name|owner/repo>");
      }
    });
}
