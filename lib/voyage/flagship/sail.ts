/**
 * `voyage sail` on the flagship: store the plan, create the voyage's bare
 * repo, hand the tasks to the daemon's queue, provision the ships in
 * parallel. The daemon's driver then sails it; this returns right away.
 */
import { OhcError, UsageError } from "../../errors.ts";
import type { Progress } from "../../fleet/api.ts";
import { withTokenFile } from "../../git/credential.ts";
import { Settings } from "../../settings.ts";
import { paths } from "../../state/paths.ts";
import { parseRepoArg } from "../../validate.ts";
import { checkModel } from "../ship/agent_env.ts";
import { newVoyageId } from "../voyage_id.ts";
import { type AgentKind, validateAgentChoice } from "../ship/agents/kinds.ts";
import { parsePlan } from "../plan/check.ts";
import { EMPTY_REPO, type Plan, type PlanFiles } from "../plan/plan.ts";
import { MAX_SHIPS } from "../plan/plan_rules.ts";
import type { NewTask, NewVoyage } from "./queue.ts";
import { newTasks } from "../queue_types.ts";
import { holdSail } from "./sail_pid.ts";
import { nextShipNames } from "./ship_names.ts";

export interface SailRequest {
  files: PlanFiles;
  ships?: number;
  repo?: string;
  agent: AgentKind;
  agent_command?: string;
  /** claude/codex `--model`. */
  model?: string;
  /**
   * OHCOMMODORE_DEFAULT_SHIPS as the laptop's environment set it at sail
   * (else the flagship's setting): ships when neither `ships` nor the
   * plan's recommended_ships says.
   */
  default_ships?: number;
}

export interface SailResult {
  id: string;
  ships: string[];
  tasks: number;
  branch: string;
}

/** Writes files that parsePlan accepted (so their names are a plan's). */
async function writePlanFiles(dir: string, files: PlanFiles) {
  await Deno.mkdir(`${dir}/tasks`, { recursive: true });
  for (const [name, text] of Object.entries(files)) {
    await Deno.writeTextFile(`${dir}/${name}`, text, {
      mode: name === "verify.sh" ? 0o755 : 0o644,
      createNew: true,
    });
  }
}

export interface SailDeps {
  createShip: (name: string) => Promise<unknown>;
  /** Hands the voyage to the daemon's queue, 'planning': nothing runs yet. */
  register: (v: NewVoyage, tasks: NewTask[], ships: string[]) => Promise<void>;
  /** Its first ship is up: the voyage is 'running', its ships' loops start. */
  launch: (id: string) => Promise<void>;
  /** No ship could be created: the voyage is 'failed', with the reason. */
  fail: (id: string, reason: string) => Promise<void>;
  /** The flagship's home (its settings; voyages under it). */
  home: string;
  onProgress: Progress;
  /** Refuses `count` more ships than the provider runs at once. */
  checkCapacity?: (count: number) => Promise<void>;
  /** Clones a private GitHub repo; kept only while cloning. */
  ghToken?: string;
}

export async function sail(
  req: SailRequest,
  deps: SailDeps,
): Promise<SailResult> {
  const id = newVoyageId();
  // Everything is checked before anything is written: a refused sail
  // leaves nothing behind.
  const plan = parsePlan("the plan", req.files ?? {}, { repo: req.repo });
  validateAgentChoice(req.agent, {
    tasks: plan.tasks.map((t) => ({
      id: t.id,
      subject: t.subject,
      command: t.command,
    })),
    agentCommand: req.agent_command,
  });
  checkModel(req.agent, req.model);
  const settings = await Settings.load(deps.home);
  const limits = {
    max_attempts: settings.get("OHCOMMODORE_TASK_ATTEMPTS"),
    lease_s: settings.get("OHCOMMODORE_TASK_LEASE"),
  };
  if (
    req.ships !== undefined &&
    (!Number.isInteger(req.ships) || req.ships < 1 || req.ships > MAX_SHIPS)
  ) {
    throw new UsageError(
      `--ships must be between 1 and ${MAX_SHIPS}, not ${req.ships}`,
    );
  }
  if (
    req.default_ships !== undefined &&
    (!Number.isInteger(req.default_ships) || req.default_ships < 1 ||
      req.default_ships > MAX_SHIPS)
  ) {
    throw new UsageError(
      `OHCOMMODORE_DEFAULT_SHIPS must be between 1 and ${MAX_SHIPS}, not ${req.default_ships}`,
    );
  }
  const count = req.ships ?? plan.recommendedShips ?? req.default_ships ??
    settings.get("OHCOMMODORE_DEFAULT_SHIPS");
  await deps.checkCapacity?.(count);
  const root = paths.voyage(deps.home, id);
  let registered = false;
  try {
    return await launch(id, root, plan, req, count, limits, {
      ...deps,
      register: async (...a) => {
        await deps.register(...a);
        registered = true;
      },
    });
  } catch (e) {
    // Until the queue holds it, nothing refers to the voyage's folder.
    if (!registered) {
      await Deno.remove(root, { recursive: true }).catch(() => {});
    }
    throw e;
  }
}

/** Stores a checked plan, makes its repository, registers it, provisions. */
async function launch(
  id: string,
  root: string,
  plan: Plan,
  req: SailRequest,
  count: number,
  limits: { max_attempts: number; lease_s: number },
  deps: SailDeps,
): Promise<SailResult> {
  const planDir = `${root}/plan`;
  await writePlanFiles(planDir, plan.files);

  deps.onProgress(`creating the voyage repository (${plan.repo})`, id);
  const git = await import("../../git/repo.ts");
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
    deps.home,
    deps.ghToken,
    (tokenFile) =>
      git.createVoyageRepo({ dir: root, voyageId: id, source, tokenFile }),
  );

  const ships = nextShipNames(id, [], count);
  // Until every ship is made: a sail that dies before (the flagship
  // restarted, its process killed) leaves it, and the daemon finishes
  // what it could not (daemon_ops.ts, afterSail).
  const ended = await holdSail(deps.home, id);
  // 'planning' until a ship is up: no ship's loop waits for ships that may
  // never come, and a voyage none of whose ships could be made fails.
  await deps.register(
    {
      id,
      name: plan.name ?? null,
      state: "planning",
      plan_dir: planDir,
      bare: repo.bare,
      branch: repo.branch,
      repo: plan.repo,
      agent: req.agent,
      agent_command: req.agent_command ?? null,
      model: req.model ?? null,
      objective: plan.objective,
      ...limits,
    },
    newTasks(plan.tasks),
    ships,
  );
  deps.onProgress(`provisioning ${count} ship(s)`, id);
  let launched: Promise<void> | null = null;
  const results = await Promise.allSettled(
    ships.map(async (s) => {
      await deps.createShip(s);
      launched ??= deps.launch(id);
      await launched;
    }),
  );
  // Let go only once the voyage's state says how the sail ended: a sail
  // that could not say it leaves its pidfile for the daemon.
  if (!launched) {
    const reason = `no ship could be created for voyage ${id}: ${
      (results[0] as PromiseRejectedResult).reason?.message
    }`;
    await deps.fail(id, reason);
    await ended();
    throw new OhcError("no_ships", reason);
  }
  await launched;
  await ended();
  return { id, ships, tasks: plan.tasks.length, branch: repo.branch };
}
