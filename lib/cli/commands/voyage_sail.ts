/**
 * `voyage sail` (and `sail`): everything about the plan, the repository and
 * the agent's credential is checked here, before any VM exists.
 */
import { Option } from "@commander-js/extra-typings";
import { UsageError } from "../../errors.ts";
import { AGENT_KINDS, type AgentKind } from "../../voyage/ship/agents/kinds.ts";
import type { CliContext } from "../context.ts";
import { out, printJson, progressTo } from "../io.ts";
import {
  defaultShipsFromEnv,
  type DefineVerb,
  maxShips,
} from "./voyage_args.ts";

export function registerSail(verb: DefineVerb, ctx: CliContext): void {
  const { io } = ctx;
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
            const defaultShips = await defaultShipsFromEnv(ctx);
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
              const spec = parseRepoArg(repo, ctx.cwd());
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
                await requireRepoAccess([spec], ctx.env("GH_TOKEN"));
                // The flagship clones what the laptop resolved (its GitHub base).
                repo = spec.url;
                needsToken = true;
              }
            }
            // The agent's allow-listed environment travels with the secrets.
            const agentEnv = agentEnvFrom(o.agent, (k) => ctx.env(k));
            requireAgentCredential(o.agent, agentEnv);
            const secrets: Record<string, string> = { ...agentEnv };
            const gh = needsToken ? ctx.env("GH_TOKEN") : undefined;
            if (gh) secrets.GH_TOKEN = gh;
            const r = await (await ctx.voyage("voyage sail")).sail(
              {
                files: plan.files,
                ships,
                default_ships: defaultShips,
                repo,
                agent: o.agent,
                agent_command: o.agentCommand,
                model,
              },
              secrets,
              progressTo(io),
            );
            if (o.json) printJson(io, r);
            else {
              out(
                io,
                `Voyage ${r.id} is sailing: ${r.tasks} tasks on ${r.ships.length} ships.`,
              );
              out(io, `  ohcommodore voyage status ${r.id}`);
              out(io, `  ohcommodore voyage logs ${r.id} --follow`);
            }
          },
        ),
  );
}
