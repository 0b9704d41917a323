/** Plans made on the fly for voyage tests. */
export interface TaskSpec {
  id: string;
  command: string;
  blockedBy?: string[];
}

export async function writePlan(
  dir: string,
  tasks: TaskSpec[],
  /** `ships: null` leaves recommended_ships out of voyage.json. */
  opts: { verify?: string; ships?: number | null; name?: string } = {},
): Promise<string> {
  await Deno.mkdir(`${dir}/tasks`, { recursive: true });
  await Deno.writeTextFile(
    `${dir}/voyage.json`,
    JSON.stringify({
      name: opts.name ?? "test",
      repo: "empty",
      recommended_ships: opts.ships === null ? undefined : opts.ships ?? 2,
    }),
  );
  await Deno.writeTextFile(
    `${dir}/spec.md`,
    "# Test\n\n## Objective\n\nTest the fleet.\n",
  );
  await Deno.writeTextFile(
    `${dir}/verify.sh`,
    opts.verify ?? "#!/bin/bash\ntrue\n",
    {
      mode: 0o755,
    },
  );
  for (const t of tasks) {
    await Deno.writeTextFile(
      `${dir}/tasks/${t.id}.json`,
      JSON.stringify({
        id: t.id,
        subject: `task ${t.id}`,
        description: `do ${t.id}`,
        blockedBy: t.blockedBy ?? [],
        blocks: [],
        status: "pending",
        command: t.command,
      }),
    );
  }
  return dir;
}
