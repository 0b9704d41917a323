/** `voyage ...` and `sail`: plans of dependent tasks sailed by many ships. */
import { concatBytes } from "../../bytes.ts";
import { rememberNames } from "../completion_cache.ts";
import type { Command } from "@commander-js/extra-typings";
import { Option } from "@commander-js/extra-typings";
import { UsageError } from "../../errors.ts";
import { escapeControls } from "../../terminal_text.ts";
import type { RpcEvent } from "../../rpc/protocol.ts";
import type { Task } from "../../voyage/queue.ts";
import type { VoyageStatus } from "../../voyage/ops.ts";
import type { SailResult } from "../../voyage/sail.ts";
import { flagshipCall } from "../flagship.ts";
import { age, err, out, printJson, progress, table } from "../render.ts";
import type { Exit } from "../program.ts";

const AGENTS = ["claude", "codex", "shell", "custom"] as const;

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

export function registerVoyage(program: Command, exit: Exit): void {
  const voyage = program.commands.find((c) => c.name() === "voyage")!;

  const sail = (cmd: Command) =>
    cmd
      .argument(
        "<plan>",
        "plan directory (voyage.json, spec.md, verify.sh, tasks/)",
      )
      .option(
        "--ships <n>",
        "how many ships (default: the plan's recommended_ships)",
      )
      .option(
        "--repo <repo>",
        "owner/repo, git URL or path (default: the plan's repo)",
      )
      .addOption(
        new Option("--agent <agent>", "who does each task").choices(AGENTS)
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
            agent: typeof AGENTS[number];
            agentCommand?: string;
            model?: string;
            json?: boolean;
          },
        ) => {
          const { loadPlan } = await import("../../voyage/plan.ts");
          const { validateAgentChoice } = await import(
            "../../voyage/agents.ts"
          );
          const { parseRepoArg } = await import("../../validate.ts");
          const { MAX_SHIPS } = await import("../../voyage/plan_rules.ts");
          const ships = positiveInt("--ships", o.ships);
          if (ships !== undefined && ships > MAX_SHIPS) {
            throw new UsageError(
              `--ships must be between 1 and ${MAX_SHIPS}, not ${ships}`,
            );
          }
          const { agentEnvFrom, checkModel, requireAgentCredential } =
            await import("../../voyage/agent_env.ts");
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
          const r = await flagshipCall<SailResult>(
            "voyage sail",
            "voyage.sail",
            {
              files: plan.files,
              ships,
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
      );

  sail(
    voyage.command("sail").description(
      "sail a plan: ships, repository, task queue; returns at once",
    ),
  );
  sail(program.command("sail").description("same as 'voyage sail'"));

  voyage.command("status")
    .description(
      "a voyage's state, task counts and each ship's current task (stale ships flagged)",
    )
    .argument("[id]", "voyage id (default: the only active one)")
    .option("--json", "machine-readable output")
    .option(
      "--wait",
      "wait until the voyage is verified or failed; exit 1 if it failed",
    )
    .action(async (id, o) => {
      let s = await flagshipCall<VoyageStatus>(
        "voyage status",
        "voyage.status",
        { id },
      );
      while (
        o.wait && ["planning", "running", "complete"].includes(s.voyage.state)
      ) {
        await new Promise((r) => setTimeout(r, 500));
        s = await flagshipCall<VoyageStatus>("voyage status", "voyage.status", {
          id: s.voyage.id,
        });
      }
      if (o.json) printJson(s);
      else out(renderVoyage(s));
      if (o.wait && s.voyage.state !== "verified") exit.code = 1;
    });

  voyage.command("list")
    .description("every voyage on the flagship")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const all = await flagshipCall<VoyageStatus[]>(
        "voyage list",
        "voyage.list",
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
          String(s.ships.length),
          age(s.voyage.created_at),
        ]),
      ));
    });

  voyage.command("tasks")
    .description("a voyage's tasks with status, ship, attempts and commit")
    .argument("[id]", "voyage id (default: the only active one)")
    .addOption(
      new Option("--status <status>", "only this status").choices(
        ["pending", "running", "done", "failed"] as const,
      ),
    )
    .option("--json", "machine-readable output")
    .action(async (id, o) => {
      const r = await flagshipCall<{ voyage: string; tasks: Task[] }>(
        "voyage tasks",
        "voyage.tasks",
        { id, status: o.status },
      );
      if (o.json) return printJson(r.tasks);
      out(table(
        ["ID", "STATUS", "SHIP", "TRIES", "COMMIT", "SUBJECT"],
        r.tasks.map((t) => [
          t.id,
          t.status,
          t.ship ?? "-",
          String(t.attempts),
          t.commit_sha?.slice(0, 10) ?? "-",
          t.subject + (t.error ? `  [${t.error}]` : ""),
        ]),
      ));
    });

  voyage.command("logs")
    .description(
      "the agents' output, from every ship (each line tagged with ship and task)",
    )
    .argument("[id]", "voyage id (default: the only active one)")
    .option("--ship <ship>", "only this ship")
    .option("--follow", "keep printing as tasks write")
    .option(
      "--raw",
      "the lines as the agents wrote them (Claude Code's stream-json), not rendered",
    )
    .option("--grep <re>", "only lines matching this regular expression")
    .option("--tail <n>", "only the last n lines (without --follow)")
    .action(async (id, o) => {
      let re: RegExp | null = null;
      if (o.grep !== undefined) {
        try {
          re = new RegExp(o.grep);
        } catch (e) {
          throw new UsageError(`--grep: ${(e as Error).message}`);
        }
      }
      const tail = positiveInt("--tail", o.tail);
      if (tail && o.follow) {
        throw new UsageError("--tail and --follow do not go together");
      }
      const lines: string[] = [];
      let buf = "";
      const dec = new TextDecoder();
      const take = (line: string) => {
        if (re && !re.test(line)) return;
        if (tail) {
          lines.push(line);
          if (lines.length > tail) lines.shift();
        } else out(line);
      };
      await flagshipCall("voyage logs", "voyage.logs", {
        id,
        ship: o.ship,
        follow: !!o.follow,
        raw: !!o.raw,
      }, {
        onEvent: (e) => {
          const b = decodeOutput(e);
          if (!b) return;
          buf += dec.decode(b, { stream: true });
          const parts = buf.split("\n");
          buf = parts.pop() ?? "";
          parts.forEach(take);
        },
      });
      if (buf) take(buf);
      lines.forEach((l) => out(l));
    });

  voyage.command("clone")
    .description("a real git clone of the voyage branch, history included")
    .argument("[id]", "voyage id (default: the only active one)")
    .option("-d, --dir <dir>", "where (default: ./<voyage id>)")
    .action(async (id, o) => {
      const chunks: Uint8Array[] = [];
      const r = await flagshipCall<{ id: string; branch: string }>(
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
      const dir = o.dir ?? r.id;
      const file = await Deno.makeTempFile({ suffix: ".bundle" });
      try {
        await Deno.writeFile(file, concatBytes(chunks));
        const { cloneVoyage } = await import("../../voyage/git.ts");
        const c = await cloneVoyage({ bare: file, branch: r.branch, dir });
        out(`Cloned ${r.branch} into ${c.dir} (at ${c.tip.slice(0, 12)}).`);
      } finally {
        await Deno.remove(file).catch(() => {});
      }
    });

  voyage.command("shell")
    .description(
      "attach to a ship's tmux session 'voyage' (or, with --raw, a shell in its checkout)",
    )
    .argument("[id]", "voyage id (default: the only active one)")
    .argument("[ship]", "which ship (default: the first)")
    .option("--raw", "a plain shell instead of tmux")
    .action(async (id, ship, o) => {
      const s = await flagshipCall<VoyageStatus>(
        "voyage shell",
        "voyage.status",
        { id },
      );
      const target = ship ?? s.ships[0]?.ship;
      if (!target || !s.ships.some((x) => x.ship === target)) {
        throw new UsageError(
          `voyage ${s.voyage.id} has no ship "${ship}"; ships: ${
            s.ships.map((x) => x.ship).join(", ")
          }`,
        );
      }
      const { shipCheckout } = await import("../../voyage/captain_protocol.ts");
      const argv = o.raw
        ? [
          "sh",
          "-c",
          'cd "$HOME/$1" 2>/dev/null; exec "${SHELL:-bash}" -l',
          "sh",
          shipCheckout(s.voyage.id),
        ]
        : [
          "sh",
          "-c",
          'exec tmux -S "$HOME/.ohcommodore/tmux.sock" attach -t voyage',
          "sh",
        ];
      const { flagshipTransport, requireConfig } = await import(
        "../../../roles/local.ts"
      );
      const { remoteBin } = await import("../../transport/run.ts");
      const tty = Deno.stdin.isTerminal();
      const { readIdentity } = await import("../../state/identity.ts");
      if (await readIdentity()) {
        const { Commodore } = await import("../../../roles/commodore.ts");
        exit.code = await new Commodore((await readIdentity())!).ssh(
          target,
          argv,
          tty,
        );
      } else {
        exit.code = await flagshipTransport(await requireConfig()).interactive(
          remoteBin("ship", "ssh", target, "--", ...argv),
          { tty },
        );
      }
    });

  voyage.command("sink")
    .description(
      "stop a voyage and destroy its ships (its repository and records stay on the flagship)",
    )
    .argument("[id]", "voyage id")
    .option("--all", "every voyage")
    .option("--force", "do not ask")
    .option("--json", "machine-readable output")
    .action(async (id, o) => {
      if (!id && !o.all) throw new UsageError("name a voyage, or pass --all");
      if (id && o.all) {
        throw new UsageError("give a voyage id or --all, not both");
      }
      const ids = o.all
        ? (await flagshipCall<VoyageStatus[]>("voyage sink", "voyage.list"))
          .map((s) => s.voyage.id)
        : [id!];
      if (!o.force) {
        if (!Deno.stdin.isTerminal()) {
          throw new UsageError(
            "refusing to sink without a terminal to confirm on; pass --force",
          );
        }
        err(`This will stop ${ids.join(", ")} and destroy its ships.`);
        if (prompt("Type 'sink' to confirm:")?.trim() !== "sink") {
          throw new UsageError("aborted");
        }
      }
      const results = [];
      for (const v of ids) {
        results.push(
          await flagshipCall<{ voyage: string; destroyed: string[] }>(
            "voyage sink",
            "voyage.sink",
            { id: v },
            progressEvents,
          ),
        );
      }
      if (o.json) printJson(results);
      else {for (const r of results) {
          out(
            `Sank voyage ${r.voyage}: ${r.destroyed.length} ship(s) destroyed.`,
          );
        }}
    });
}
