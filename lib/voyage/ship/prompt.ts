/**
 * The prompt a ship gives its agent for one task. Deterministic: the same
 * input always gives the same text (no times, no random ids), so a retried
 * task gets the same prompt and tests can pin it.
 *
 * What it holds: the voyage's objective (spec.md's Objective section), the
 * task's subject, description and acceptance criteria, and how to finish:
 * work only in the checkout, keep the change to this task, do not commit or
 * push (the captain commits what the agent leaves in the checkout and the
 * flagship integrates it), and exit when done. The agent's exit code is what
 * the captain reads; an agent that cannot finish says so with a
 * `TASK FAILED:` line (see `FAILURE_MARKER`), which `parseClaudeStream` in
 * agents.ts picks up.
 */

/** The task fields the prompt uses (a PlanTask has all of them). */
export interface PromptTask {
  id: string;
  subject: string;
  description: string;
  acceptance?: string;
}

export interface PromptInput {
  /** The voyage's objective (Plan.objective); "" when the spec has none. */
  objective: string;
  task: PromptTask;
  voyageId: string;
  /** The ship's name, as the flagship knows it. */
  ship: string;
  /** Absolute path of the repository checkout the agent works in. */
  repoDir: string;
}

/**
 * A line the agent writes, at the start of a line of its final message, when
 * it could not do the task: `TASK FAILED: <reason>`.
 */
export const FAILURE_MARKER = "TASK FAILED:";

/** Trims a block and normalises line endings; "" stays "". */
function block(text: string | undefined): string {
  return (text ?? "").replace(/\r\n?/g, "\n").trim();
}

/** Builds the prompt text for one task. Ends with exactly one newline. */
export function buildPrompt(input: PromptInput): string {
  const { task, voyageId, ship, repoDir } = input;
  const objective = block(input.objective);
  const subject = block(task.subject).replace(/\s*\n\s*/g, " ");
  const description = block(task.description);
  const acceptance = block(task.acceptance);

  const parts: string[] = [];
  parts.push(
    `# Task ${task.id}: ${subject}`,
    [
      `You are a coding agent on ship ${ship}, working on voyage ${voyageId}.`,
      `A voyage is a plan of tasks that several agents work through in ` +
      `parallel, each on its own ship. You have exactly one task: task ` +
      `${task.id}. Other tasks are done by other agents; their work reaches ` +
      `your checkout only through git.`,
    ].join("\n"),
    "## Objective of the voyage",
    objective === ""
      ? "(The plan gives no objective; the task below is all there is.)"
      : objective,
    `## Your task: ${subject}`,
    description === ""
      ? "(No description: the subject is the task.)"
      : description,
    "## Acceptance criteria",
    acceptance === ""
      ? "The plan names none: the task is done when its description is " +
        "fully carried out and the project still builds and its existing " +
        "tests pass."
      : acceptance,
    "## How to finish",
    [
      `- Work only in the repository checkout at ${repoDir} (your current ` +
      `directory). Do not change files outside it.`,
      `- Keep the change focused on this task. Do not refactor, reformat or ` +
      `fix unrelated code: other agents are changing other parts of the ` +
      `repository at the same time, and unrelated edits cause conflicts.`,
      `- Do not commit, push, create branches, rebase or otherwise change git ` +
      `history. The captain commits everything you leave in the checkout when ` +
      `you exit and delivers it to the voyage branch for you.`,
      `- Check your work against the acceptance criteria (run the relevant ` +
      `tests or commands) before you finish.`,
      `- When the task is done, stop and exit. Do not wait for further input.`,
      `- If you cannot complete the task, leave the checkout as clean as you ` +
      `can and end your final message with one line: ` +
      `${FAILURE_MARKER} <the reason>`,
    ].join("\n"),
  );
  return parts.join("\n\n") + "\n";
}
