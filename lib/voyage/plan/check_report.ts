/**
 * What `voyage check <plan>` prints: the plan's shape for people
 * (`formatCheck`) and for scripts (`checkJson`). Pure formatting; the caller
 * loads the plan (plan.ts) and analyses it (dag.ts).
 */

import type { Analysis } from "./dag.ts";
import { displayPath, type Plan, type PlanProblem } from "./plan.ts";
import { escapeControls as safe } from "../../terminal_text.ts";

/** The JSON form of `voyage check --json`. Keys follow ocaptain's dag_analyzer where they overlap. */
export interface CheckJson {
  ok: true;
  plan: string;
  name: string | null;
  repo: string;
  objective: string;
  total_tasks: number;
  levels: { level: number; tasks: { id: string; subject: string }[] }[];
  max_parallel_width: number;
  widest_level: number;
  critical_path: string[];
  critical_path_length: number;
  recommended_ships: number;
  ship_cap: number;
  /** voyage.json's, null when it gives none. */
  plan_recommended_ships: number | null;
  tasks_with_command: number;
  warnings: PlanProblem[];
}

/**
 * Warnings that need the analysis as well as the plan: the plan's warnings
 * first, then disagreements between voyage.json's bookkeeping fields and
 * the tasks, and a half-filled `command` field.
 */
export function checkWarnings(plan: Plan, analysis: Analysis): PlanProblem[] {
  const out = [...plan.warnings];
  const v = plan.voyage;
  if (
    typeof v.total_tasks === "number" && v.total_tasks !== analysis.totalTasks
  ) {
    out.push({
      file: "voyage.json",
      message:
        `"total_tasks" is ${v.total_tasks} but the plan has ${analysis.totalTasks} tasks`,
    });
  }
  if (
    typeof v.max_parallel_width === "number" &&
    v.max_parallel_width !== analysis.widestLevelWidth
  ) {
    out.push({
      file: "voyage.json",
      message:
        `"max_parallel_width" is ${v.max_parallel_width} but the widest level has ${analysis.widestLevelWidth} tasks`,
    });
  }
  const withCommand = plan.tasks.filter((t) => t.command !== undefined);
  if (withCommand.length > 0 && withCommand.length < plan.tasks.length) {
    const missing = plan.tasks.filter((t) => t.command === undefined)
      .map((t) => t.id);
    out.push({
      file: "tasks",
      message: `tasks ${
        missing.join(", ")
      } have no "command": the shell agent cannot run them`,
    });
  }
  return out;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

/** The human text of `voyage check`, ending in a newline. */
export function formatCheck(plan: Plan, analysis: Analysis): string {
  const subjects = new Map(plan.tasks.map((t) => [t.id, t.subject]));
  const idWidth = Math.max(...plan.tasks.map((t) => t.id.length), 1);
  const out: string[] = [];

  out.push(
    `Plan ${safe(plan.dir)}${plan.name ? ` (${safe(plan.name)})` : ""}`,
  );
  out.push(`  repo:      ${safe(plan.repo)}`);
  if (plan.objective !== "") {
    out.push(`  objective: ${oneLine(plan.objective, 100)}`);
  }
  out.push("");

  analysis.levels.forEach((level, i) => {
    out.push(`Level ${i} (${plural(level.length, "task")})`);
    for (const id of level) {
      out.push(`  ${id.padStart(idWidth)}  ${safe(subjects.get(id) ?? "")}`);
    }
  });
  out.push("");

  const unit = analysis.criticalPathLength === analysis.criticalPath.length
    ? plural(analysis.criticalPath.length, "task")
    : `${
      plural(analysis.criticalPath.length, "task")
    }, length ${analysis.criticalPathLength}`;
  const rows: [string, string][] = [
    ["Tasks", String(analysis.totalTasks)],
    [
      "Widest level",
      analysis.widestLevelIndex < 0
        ? "0"
        : `${analysis.widestLevelWidth} (level ${analysis.widestLevelIndex})`,
    ],
    ["Critical path", `${analysis.criticalPath.join(" -> ")} (${unit})`],
    [
      "Recommended ships",
      `${analysis.recommendedShips} (widest level ${analysis.widestLevelWidth}, at most ${analysis.shipCap}); ${
        plan.recommendedShips === undefined
          ? "voyage.json gives none (sail uses --ships, else OHCOMMODORE_DEFAULT_SHIPS, 3)"
          : `voyage.json suggests ${plan.recommendedShips}`
      }`,
    ],
  ];
  const withCommand = plan.tasks.filter((t) => t.command !== undefined).length;
  if (withCommand > 0) {
    rows.push([
      "Shell commands",
      withCommand === plan.tasks.length
        ? `all tasks (runs with --agent shell)`
        : `${withCommand} of ${analysis.totalTasks} tasks`,
    ]);
  }
  const labelWidth = Math.max(...rows.map(([l]) => l.length)) + 1;
  for (const [label, value] of rows) {
    out.push(`${(label + ":").padEnd(labelWidth)}  ${value}`);
  }

  const warnings = checkWarnings(plan, analysis);
  if (warnings.length > 0) {
    out.push("");
    out.push(`Warnings (${warnings.length}):`);
    for (const w of warnings) {
      out.push(`  ${safe(displayPath(plan.dir, w.file))}: ${safe(w.message)}`);
    }
  }
  out.push("");
  out.push(
    `The plan is valid. Sail it with: ohcommodore voyage sail ${plan.dir}`,
  );
  return out.join("\n") + "\n";
}

/** The JSON form of `voyage check --json`. */
export function checkJson(plan: Plan, analysis: Analysis): CheckJson {
  const subjects = new Map(plan.tasks.map((t) => [t.id, t.subject]));
  return {
    ok: true,
    plan: plan.dir,
    name: plan.name ?? null,
    repo: plan.repo,
    objective: plan.objective,
    total_tasks: analysis.totalTasks,
    levels: analysis.levels.map((ids, level) => ({
      level,
      tasks: ids.map((id) => ({ id, subject: subjects.get(id) ?? "" })),
    })),
    max_parallel_width: analysis.widestLevelWidth,
    widest_level: analysis.widestLevelIndex,
    critical_path: analysis.criticalPath,
    critical_path_length: analysis.criticalPathLength,
    recommended_ships: analysis.recommendedShips,
    ship_cap: analysis.shipCap,
    plan_recommended_ships: plan.recommendedShips ?? null,
    tasks_with_command: plan.tasks.filter((t) => t.command !== undefined)
      .length,
    warnings: checkWarnings(plan, analysis),
  };
}

function oneLine(text: string, max: number): string {
  const s = safe(text.replace(/\s+/g, " ").trim());
  return s.length <= max ? s : `${s.slice(0, max - 1)}…`;
}
