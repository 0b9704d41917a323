/**
 * `voyage sail` on the flagship: store the plan, create the voyage's bare
 * repo, hand the tasks to the daemon's queue, provision the ships in
 * parallel. The daemon's driver then sails it; this returns right away.
 */
import { OhcError, UsageError } from "../errors.ts";
import type { Progress } from "../fleet/api.ts";
import { withTokenFile } from "../git.ts";
import { paths } from "../state/paths.ts";
import { parseRepoArg } from "../validate.ts";
import { type AgentKind, validateAgentChoice } from "./agents.ts";
import { analyze } from "./dag.ts";
import { EMPTY_REPO, loadPlan } from "./plan.ts";
import type { NewTask } from "./queue.ts";

/** A plan as it travels: its files by relative path. */
export type PlanFiles = Record<string, string>;

export interface SailRequest {
  files: PlanFiles;
  ships?: number;
  repo?: string;
  agent: AgentKind;
  agent_command?: string;
}

export interface SailResult {
  id: string;
  ships: string[];
  tasks: number;
  branch: string;
}

/** Reads a plan directory into PlanFiles (what `sail` sends). */
export async function readPlanFiles(dir: string): Promise<PlanFiles> {
  const files: PlanFiles = {};
  for (const name of ["voyage.json", "spec.md", "verify.sh"]) {
    try {
      files[name] = await Deno.readTextFile(`${dir}/${name}`);
    } catch { /* loadPlan reports what is missing */ }
  }
  try {
    for await (const e of Deno.readDir(`${dir}/tasks`)) {
      if (e.isFile && e.name.endsWith(".json")) {
        files[`tasks/${e.name}`] = await Deno.readTextFile(
          `${dir}/tasks/${e.name}`,
        );
      }
    }
  } catch { /* no tasks dir: loadPlan says so */ }
  return files;
}

async function writePlanFiles(dir: string, files: PlanFiles) {
  await Deno.mkdir(`${dir}/tasks`, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    if (
      !/^(voyage\.json|spec\.md|verify\.sh|tasks\/[A-Za-z0-9._-]+\.json)$/.test(
        name,
      )
    ) {
      throw new UsageError(`unexpected plan file ${name}`);
    }
    await Deno.writeTextFile(`${dir}/${name}`, text, {
      mode: name === "verify.sh" ? 0o755 : 0o644,
    });
  }
}

function newVoyageId(): string {
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  const bytes = crypto.getRandomValues(new Uint8Array(6));
  return "v" + [...bytes].map((b) => alphabet[b % 36]).join("");
}

export async function sail(
  req: SailRequest,
  deps: {
    createShip: (name: string) => Promise<unknown>;
    register: (
      v: Record<string, unknown>,
      tasks: NewTask[],
      ships: string[],
    ) => Promise<void>;
    onProgress: Progress;
    /** Clones a private GitHub repo; kept only while cloning. */
    ghToken?: string;
  },
): Promise<SailResult> {
  const id = newVoyageId();
  const root = `${paths.dir()}/voyages/${id}`;
  const planDir = `${root}/plan`;
  await writePlanFiles(planDir, req.files);
  const plan = await loadPlan(planDir, { repo: req.repo });
  validateAgentChoice(req.agent, {
    tasks: plan.tasks.map((t) => ({
      id: t.id,
      subject: t.subject,
      command: t.command,
    })),
    agentCommand: req.agent_command,
  });
  const analysis = analyze(plan.tasks);
  const count = req.ships ?? plan.recommendedShips ?? analysis.recommendedShips;
  if (!Number.isInteger(count) || count < 1 || count > 100) {
    throw new UsageError(`--ships must be between 1 and 100, not ${count}`);
  }

  deps.onProgress(`creating the voyage repository (${plan.repo})`, id);
  const git = await import("./git.ts");
  let source: Parameters<typeof git.createVoyageRepo>[0]["source"];
  if (plan.repo === EMPTY_REPO) source = { kind: "empty" };
  else {
    const spec = parseRepoArg(plan.repo);
    if (spec.kind === "github" || spec.kind === "url") {
      source = { kind: "url", url: spec.url };
    } else if (spec.kind === "path") source = { kind: "path", url: spec.path };
    else throw new UsageError(`voyage repo "${plan.repo}" is not a repository`);
  }
  const repo = await withTokenFile(
    deps.ghToken,
    (tokenFile) =>
      git.createVoyageRepo({ dir: root, voyageId: id, source, tokenFile }),
  );

  const ships = Array.from({ length: count }, (_, i) => `${id}-${i + 1}`);
  await deps.register(
    {
      id,
      name: plan.name ?? null,
      state: "running",
      plan_dir: planDir,
      bare: repo.bare,
      branch: repo.branch,
      repo: plan.repo,
      agent: req.agent,
      agent_command: req.agent_command ?? null,
      objective: plan.objective,
      max_attempts: Number(Deno.env.get("OHCOMMODORE_TASK_ATTEMPTS") ?? 3),
      lease_s: Number(Deno.env.get("OHCOMMODORE_TASK_LEASE") ?? 60),
    },
    plan.tasks.map((t) => ({
      id: t.id,
      subject: t.subject,
      description: t.description,
      acceptance: t.acceptance ?? null,
      command: t.command ?? null,
      blocked_by: t.blockedBy,
    })),
    ships,
  );
  deps.onProgress(`provisioning ${count} ship(s)`, id);
  const results = await Promise.allSettled(
    ships.map((s) => deps.createShip(s)),
  );
  const failed = results.filter((r) => r.status === "rejected").length;
  if (failed === ships.length) {
    throw new OhcError(
      "no_ships",
      `no ship could be created for voyage ${id}: ${
        (results[0] as PromiseRejectedResult).reason?.message
      }`,
    );
  }
  return { id, ships, tasks: plan.tasks.length, branch: repo.branch };
}
