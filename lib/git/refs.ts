/**
 * The names a voyage uses in git, each checked before it reaches an argv.
 *
 * Layout in the bare repo `<voyageDir>/repo.git`:
 *   refs/heads/voyage/<id>                  the voyage branch (HEAD points here)
 *   refs/heads/voyage/<id>-task-<slug>[-k]  a task's work that could not land
 *   refs/ohcommodore/base                   where the voyage branch started
 *   refs/ohcommodore/incoming/<task>-<rand> a task commit while it is landing
 *
 * Side branches are `voyage/<id>-task-<slug>`, not `voyage/<id>/task-<slug>`: git
 * cannot hold both `refs/heads/voyage/<id>` and a ref below it (the files
 * backend stores refs as paths, and one can't be a file and a directory).
 */
import { UsageError } from "../errors.ts";
import { taskIdProblem, taskSlug } from "../voyage/plan/plan_rules.ts";
import { checkVoyageId } from "../voyage/voyage_id.ts";

/** One path component of a branch name. */
const ID_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/;

/** `voyage/<id>`: the voyage branch. */
export function voyageBranch(voyageId: string): string {
  checkVoyageId(voyageId);
  return `voyage/${voyageId}`;
}

/** A task id as plan_rules.ts defines it; its slug names refs and files. */
export function checkTaskId(id: string): string {
  const problem = typeof id === "string" ? taskIdProblem(id) : "is not text";
  if (problem) {
    throw new UsageError(`invalid task id ${JSON.stringify(id)}: ${problem}`);
  }
  return taskSlug(id);
}

/**
 * `voyage/<id>-task-<slug>`: where a task's work is kept when it can't
 * land (the slug of task `1.1` is `1_2e1`, see plan_rules.ts).
 */
export function taskSideBranch(branch: string, taskId: string): string {
  return `${branch}-task-${checkTaskId(taskId)}`;
}

export function checkBranch(branch: string): void {
  const parts = typeof branch === "string" ? branch.split("/") : [];
  if (
    parts.length < 1 ||
    parts.some((p) => !ID_RE.test(p) || p.includes("..") || p.endsWith(".lock"))
  ) {
    throw new UsageError(`invalid branch name ${JSON.stringify(branch)}`);
  }
}

export function checkCommit(commit: string): void {
  if (
    typeof commit !== "string" || !/^([0-9a-f]{40}|[0-9a-f]{64})$/.test(commit)
  ) {
    throw new UsageError(
      `invalid commit ${JSON.stringify(commit)}`,
      "pass a full lowercase hex object id",
    );
  }
}

export const BASE_REF = "refs/ohcommodore/base";
export const INCOMING = "refs/ohcommodore/incoming";
