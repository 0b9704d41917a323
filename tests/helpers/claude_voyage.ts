/**
 * The voyage the real-client tests sail (local and exe.dev): six tasks in
 * three levels, each writing its own file through the scripted API's
 * default script (`task-<id>.txt` holding `task <id>: <subject>`), and a
 * verify.sh that checks every one of them on the voyage branch.
 */

export const CLAUDE_KEY = "sk-ant-api03-e2e-voyage-test-key-0123456789";
/** Named explicitly (`sail --model`): the client prices it, $4/$20 per Mtok. */
export const CLAUDE_MODEL = "claude-opus-5-5";
/** Two turns of 2000 input and 500 output tokens each. */
export const COST_PER_TASK = 2 * (2000 * 4 + 500 * 20) / 1e6;

export const SIX_TASKS: { id: string; subject: string; blockedBy: string[] }[] =
  [
    { id: "1", subject: "add the compass", blockedBy: [] },
    { id: "2", subject: "add the chart", blockedBy: [] },
    { id: "3", subject: "add the log book", blockedBy: [] },
    { id: "4", subject: "rig the sails", blockedBy: ["1"] },
    { id: "5", subject: "stow the cargo", blockedBy: ["2", "3"] },
    { id: "6", subject: "raise the flag", blockedBy: ["4", "5"] },
  ];

/** Writes the plan (the first `count` tasks) for `ships` ships; its path. */
export async function writeSixTaskPlan(
  dir: string,
  ships: number,
  count = 6,
): Promise<string> {
  const tasks = SIX_TASKS.slice(0, count);
  await Deno.mkdir(`${dir}/tasks`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/voyage.json`,
    JSON.stringify({ name: "claude", repo: "empty", recommended_ships: ships }),
  );
  await Deno.writeTextFile(
    `${dir}/spec.md`,
    "# Ship's kit\n\n## Objective\n\nEach task adds its own file.\n",
  );
  const checks = tasks.map((t) =>
    `[ "$(cat task-${t.id}.txt)" = "task ${t.id}: ${t.subject}" ] || { echo "task ${t.id} missing"; exit 1; }`
  );
  await Deno.writeTextFile(
    `${dir}/verify.sh`,
    `#!/bin/bash\n${checks.join("\n")}\n`,
    { mode: 0o755 },
  );
  for (const t of tasks) {
    await Deno.writeTextFile(
      `${dir}/tasks/${t.id}.json`,
      JSON.stringify({
        id: t.id,
        subject: t.subject,
        description: `Add task-${t.id}.txt for "${t.subject}".`,
        blockedBy: t.blockedBy,
        blocks: [],
        status: "pending",
      }),
    );
  }
  return dir;
}
