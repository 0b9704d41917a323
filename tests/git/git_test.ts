/**
 * The git mechanics of a voyage against real git in temp dirs: the bare
 * repo (empty and from a path), checkouts, task commits, landing
 * (fast-forward, rebase, conflict kept on a side branch, twice is
 * harmless), 20 concurrent landings in one process and from several
 * processes, bundles, verify, and `voyage clone`.
 */
import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import { bundleCommit, bundleVoyage } from "../../lib/git/bundle.ts";
import { cloneVoyage, prepareCheckout } from "../../lib/git/checkout.ts";
import { commitTask, findLanded, stampOf } from "../../lib/git/commit.ts";
import { integrateTask } from "../../lib/git/land.ts";
import { createVoyageRepo } from "../../lib/git/repo.ts";
import { runVerify } from "../../lib/git/verify.ts";

const MODULE = new URL("../../lib/git/land.ts", import.meta.url).href;

async function withTmp(fn: (dir: string) => Promise<void>): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "ohc-git-" });
  try {
    await fn(dir);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** git as a person in a test would run it (isolated from the host's config). */
async function g(cwd: string, ...args: string[]): Promise<string> {
  const out = await new Deno.Command("git", {
    args,
    cwd,
    env: {
      GIT_CONFIG_GLOBAL: "/dev/null",
      GIT_CONFIG_NOSYSTEM: "1",
      GIT_AUTHOR_NAME: "Test Person",
      GIT_AUTHOR_EMAIL: "test@example.com",
      GIT_COMMITTER_NAME: "Test Person",
      GIT_COMMITTER_EMAIL: "test@example.com",
    },
    stdin: "null",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(
      `git ${args.join(" ")}: ${new TextDecoder().decode(out.stderr)}`,
    );
  }
  return text.trim();
}

async function exists(path: string): Promise<boolean> {
  return await Deno.lstat(path).then(() => true, () => false);
}

async function write(path: string, text: string): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/"));
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(path, text);
}

/** A ship: refresh its checkout, change files, commit the task. */
async function shipTask(
  repo: { bare: string; branch: string },
  checkout: string,
  taskId: string,
  files: Record<string, string>,
): Promise<string> {
  await prepareCheckout({
    bare: repo.bare,
    branch: repo.branch,
    dir: checkout,
  });
  for (const [name, text] of Object.entries(files)) {
    await write(`${checkout}/${name}`, text);
  }
  const { commit } = await commitTask({
    checkout,
    taskId,
    subject: `change ${Object.keys(files).join(", ")}`,
  });
  assert.ok(commit);
  return commit;
}

/** A voyage repo from a source with one file `f.txt` of five lines. */
async function seeded(dir: string, id = "v1") {
  const src = `${dir}/src`;
  await Deno.mkdir(src);
  await g(src, "init", "-q", "-b", "main");
  await write(`${src}/f.txt`, "one\ntwo\nthree\nfour\nfive\n");
  await g(src, "add", ".");
  await g(src, "commit", "-q", "-m", "seed");
  return await createVoyageRepo({
    dir: `${dir}/voyage`,
    voyageId: id,
    source: { kind: "path", url: src },
  });
}

/** History is linear and every task's trailer appears exactly once. */
async function assertLanded(
  bare: string,
  branch: string,
  taskIds: string[],
): Promise<void> {
  assert.equal(
    await g(bare, "rev-list", "--merges", `refs/heads/${branch}`),
    "",
  );
  const trailers = (await g(
    bare,
    "log",
    "--format=%(trailers:key=Voyage-Task,valueonly)",
    `refs/heads/${branch}`,
  )).split("\n").filter((l) => l);
  assert.deepEqual(trailers.slice().sort(), taskIds.slice().sort());
}

async function refsUnder(bare: string, prefix: string): Promise<string> {
  return await g(bare, "for-each-ref", "--format=%(refname)", prefix);
}

Deno.test("createVoyageRepo: empty source gives one empty commit, idempotent", async () => {
  await withTmp(async (dir) => {
    const r = await createVoyageRepo({
      dir: `${dir}/v`,
      voyageId: "abc-1",
      source: { kind: "empty" },
    });
    assert.equal(r.bare, `${dir}/v/repo.git`);
    assert.equal(r.branch, "voyage/abc-1");
    assert.equal(
      await g(r.bare, "rev-parse", "refs/heads/voyage/abc-1"),
      r.base,
    );
    assert.equal(await g(r.bare, "rev-list", "--count", r.base), "1");
    assert.equal(await g(r.bare, "ls-tree", r.base), "");
    assert.equal(
      await g(r.bare, "symbolic-ref", "HEAD"),
      "refs/heads/voyage/abc-1",
    );
    assert.equal(
      await g(r.bare, "log", "-1", "--format=%an <%ae>", r.base),
      "ohcommodore <ohcommodore@localhost>",
    );
    // Again (even concurrently): the same repo, untouched.
    const again = await Promise.all(
      [1, 2, 3].map(() =>
        createVoyageRepo({
          dir: `${dir}/v`,
          voyageId: "abc-1",
          source: { kind: "empty" },
        })
      ),
    );
    for (const a of again) assert.deepEqual(a, r);
    // Created concurrently from scratch: one wins, all get the same repo.
    const racers = await Promise.all([1, 2, 3, 4].map(() =>
      createVoyageRepo({
        dir: `${dir}/race`,
        voyageId: "r",
        source: { kind: "empty" },
      })
    ));
    for (const x of racers) assert.deepEqual(x, racers[0]);
    assert.deepEqual(
      [...Deno.readDirSync(`${dir}/race`)].map((e) => e.name),
      ["repo.git"],
    );
    assert.equal(
      await g(racers[0].bare, "rev-parse", "voyage/r"),
      racers[0].base,
    );
    // No temp dirs left behind.
    assert.deepEqual([...Deno.readDirSync(`${dir}/v`)].map((e) => e.name), [
      "repo.git",
    ]);
  });
});

Deno.test("createVoyageRepo: bad ids and sources are usage errors", async () => {
  await withTmp(async (dir) => {
    for (const id of ["", "a/b", "..", "-x", "a..b", "x.lock", "a b"]) {
      await assert.rejects(
        createVoyageRepo({ dir, voyageId: id, source: { kind: "empty" } }),
        UsageError,
      );
    }
    await assert.rejects(
      createVoyageRepo({
        dir,
        voyageId: "ok",
        source: { kind: "path", url: "" },
      }),
      UsageError,
    );
    assert.deepEqual([...Deno.readDirSync(dir)], []);
  });
});

Deno.test("createVoyageRepo: path source keeps the default branch's history", async () => {
  await withTmp(async (dir) => {
    const src = `${dir}/src`;
    await Deno.mkdir(src);
    await g(src, "init", "-q", "-b", "trunk");
    for (const n of [1, 2, 3]) {
      await write(`${src}/n.txt`, `${n}\n`);
      await g(src, "add", ".");
      await g(src, "commit", "-q", "-m", `c${n}`);
    }
    const head = await g(src, "rev-parse", "HEAD");
    await g(src, "branch", "other", "HEAD~1");
    const r = await createVoyageRepo({
      dir: `${dir}/v`,
      voyageId: "v7",
      source: { kind: "path", url: src },
    });
    assert.equal(r.base, head);
    assert.equal(await g(r.bare, "rev-parse", "refs/heads/voyage/v7"), head);
    assert.equal(
      await g(r.bare, "rev-list", "--count", "refs/heads/voyage/v7"),
      "3",
    );
    assert.equal(
      await g(r.bare, "log", "--format=%s", "voyage/v7"),
      "c3\nc2\nc1",
    );
    // Later landings don't change what `base` reports.
    const ship = `${dir}/ship`;
    const c = await shipTask(r, ship, "1", { "a.txt": "a\n" });
    const res = await integrateTask({
      ...r,
      taskId: "1",
      source: ship,
      commit: c,
      worktreeDir: `${dir}/wt`,
    });
    assert.ok(res.ok);
    assert.equal(
      (await createVoyageRepo({
        dir: `${dir}/v`,
        voyageId: "v7",
        source: { kind: "path", url: src },
      })).base,
      head,
    );
    // The same through a URL (file://), only the default branch is taken.
    const u = await createVoyageRepo({
      dir: `${dir}/u`,
      voyageId: "v8",
      source: { kind: "url", url: `file://${src}` },
    });
    assert.equal(u.base, head);
    assert.equal(
      await g(u.bare, "for-each-ref", "--format=%(refname)", "refs/heads"),
      "refs/heads/trunk\nrefs/heads/voyage/v8",
    );
    assert.equal(await g(u.bare, "rev-list", "--count", u.branch), "3");
  });
});

Deno.test("prepareCheckout: clones, then refreshes a dirty checkout to the tip", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    const co = `${dir}/co`;
    await prepareCheckout({ bare: r.bare, branch: r.branch, dir: co });
    assert.equal(await g(co, "rev-parse", "HEAD"), r.base);
    assert.equal(await g(co, "symbolic-ref", "--short", "HEAD"), r.branch);
    assert.equal(await g(co, "config", "user.email"), "ohcommodore@localhost");
    // Another ship lands something; this checkout is left dirty.
    const c = await shipTask(r, `${dir}/other`, "1", { "new.txt": "new\n" });
    assert.ok(
      (await integrateTask({
        ...r,
        taskId: "1",
        source: `${dir}/other`,
        commit: c,
        worktreeDir: `${dir}/wt`,
      })).ok,
    );
    // Left mid-rebase with a conflict, a stale index.lock, a staged edit
    // and junk: all of it goes.
    await g(co, "checkout", "-q", "-b", "side");
    await write(`${co}/f.txt`, "side\n");
    await g(co, "commit", "-q", "-am", "side");
    await g(co, "checkout", "-q", r.branch);
    await write(`${co}/f.txt`, "mine\n");
    await g(co, "commit", "-q", "-am", "mine");
    await assert.rejects(g(co, "rebase", "side"), /conflict/i);
    await write(`${co}/junk/untracked.txt`, "junk\n");
    await write(`${co}/.git/index.lock`, "");
    await prepareCheckout({ bare: r.bare, branch: r.branch, dir: co });
    assert.equal(await g(co, "rev-parse", "HEAD"), c);
    assert.equal(await g(co, "symbolic-ref", "--short", "HEAD"), r.branch);
    assert.equal(await g(co, "status", "--porcelain", "--ignored"), "");
    assert.equal(
      await g(co, "rev-parse", "--git-path", "rebase-merge"),
      ".git/rebase-merge",
    );
    assert.equal(
      await Deno.stat(`${co}/.git/rebase-merge`).catch(() => null),
      null,
    );
    assert.equal(
      await Deno.readTextFile(`${co}/f.txt`),
      "one\ntwo\nthree\nfour\nfive\n",
    );
    assert.equal(await Deno.readTextFile(`${co}/new.txt`), "new\n");
    // A directory that is not a checkout is refused, not overwritten.
    await write(`${dir}/notgit/keep.txt`, "mine\n");
    await assert.rejects(
      prepareCheckout({ bare: r.bare, branch: r.branch, dir: `${dir}/notgit` }),
      /not a git checkout/,
    );
    assert.equal(await Deno.readTextFile(`${dir}/notgit/keep.txt`), "mine\n");
  });
});

Deno.test("commitTask: nothing to commit is null; work becomes one task commit", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    const co = `${dir}/co`;
    await prepareCheckout({ bare: r.bare, branch: r.branch, dir: co });
    assert.deepEqual(
      await commitTask({ checkout: co, taskId: "3", subject: "nothing" }),
      { commit: null },
    );
    await write(`${co}/f.txt`, "changed\n");
    await write(`${co}/sub/added.txt`, "added\n");
    await write(`${co}/.git/index.lock`, ""); // an agent's git was killed
    const { commit } = await commitTask({
      checkout: co,
      taskId: "3",
      subject: "Add\nthings  ",
    });
    assert.ok(commit);
    assert.equal(
      await g(co, "log", "-1", "--format=%B", commit),
      "task 3: Add things\n\nVoyage-Task: 3",
    );
    assert.equal(
      await g(co, "log", "-1", "--format=%an <%ae>|%cn", commit),
      "ohcommodore <ohcommodore@localhost>|ohcommodore",
    );
    assert.equal(
      await g(co, "show", "--format=", "--name-only", commit),
      "f.txt\nsub/added.txt",
    );
    assert.equal(await g(co, "status", "--porcelain"), "");
    // Committed but not landed: still the task's work.
    assert.deepEqual(
      await commitTask({ checkout: co, taskId: "3", subject: "x" }),
      { commit },
    );
    // An agent that committed by itself: its commits are the work.
    await prepareCheckout({ bare: r.bare, branch: r.branch, dir: co });
    await write(`${co}/agent.txt`, "agent\n");
    await g(co, "add", ".");
    await g(co, "commit", "-q", "-m", "agent did it");
    const mine = await g(co, "rev-parse", "HEAD");
    assert.deepEqual(
      await commitTask({ checkout: co, taskId: "4", subject: "y" }),
      { commit: mine },
    );
  });
});

Deno.test("integrateTask: fast-forward", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    const c = await shipTask(r, `${dir}/ship`, "1", { "a.txt": "a\n" });
    const res = await integrateTask({
      ...r,
      taskId: "1",
      source: `${dir}/ship`,
      commit: c,
      worktreeDir: `${dir}/wt`,
    });
    assert.deepEqual(res, { ok: true, tip: c, rebased: false, attempts: 1 });
    assert.equal(await g(r.bare, "rev-parse", r.branch), c);
    assert.equal(await refsUnder(r.bare, "refs/ohcommodore/incoming"), "");
    // Landing it again changes nothing.
    assert.deepEqual(
      await integrateTask({
        ...r,
        taskId: "1",
        source: `${dir}/ship`,
        commit: c,
        worktreeDir: `${dir}/wt`,
      }),
      { ok: true, tip: c, rebased: false, attempts: 1 },
    );
    // The branch's reflog tells which task moved it.
    assert.match(
      await g(
        r.bare,
        "reflog",
        "show",
        "--format=%gs",
        `refs/heads/${r.branch}`,
      ),
      /land task 1/,
    );
  });
});

Deno.test("integrateTask: rebases when another task landed first", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    // Both ships start from the same tip.
    await prepareCheckout({ bare: r.bare, branch: r.branch, dir: `${dir}/s1` });
    await prepareCheckout({ bare: r.bare, branch: r.branch, dir: `${dir}/s2` });
    await prepareCheckout({ bare: r.bare, branch: r.branch, dir: `${dir}/s3` });
    await write(`${dir}/s1/a.txt`, "a\n");
    const c1 =
      (await commitTask({ checkout: `${dir}/s1`, taskId: "1", subject: "a" }))
        .commit!;
    // Task 2 edits a different line of the same file (merge-tree path).
    await write(`${dir}/s2/f.txt`, "one\ntwo\nthree\nfour\nFIVE\n");
    const c2 = (await commitTask({
      checkout: `${dir}/s2`,
      taskId: "2",
      subject: "five",
    })).commit!;
    // Task 3 is two commits, the agent's own and the captain's (worktree path).
    await write(`${dir}/s3/f.txt`, "ONE\ntwo\nthree\nfour\nfive\n");
    await g(`${dir}/s3`, "commit", "-q", "-am", "agent: one");
    await write(`${dir}/s3/b.txt`, "b\n");
    const c3 =
      (await commitTask({ checkout: `${dir}/s3`, taskId: "3", subject: "b" }))
        .commit!;
    const wt = `${dir}/wt`;
    const r1 = await integrateTask({
      ...r,
      taskId: "1",
      source: `${dir}/s1`,
      commit: c1,
      worktreeDir: wt,
    });
    assert.deepEqual(r1, { ok: true, tip: c1, rebased: false, attempts: 1 });
    const r2 = await integrateTask({
      ...r,
      taskId: "2",
      source: `${dir}/s2`,
      commit: c2,
      worktreeDir: wt,
    });
    assert.ok(r2.ok && r2.rebased);
    const r3 = await integrateTask({
      ...r,
      taskId: "3",
      source: `${dir}/s3`,
      commit: c3,
      worktreeDir: wt,
    });
    assert.ok(r3.ok && r3.rebased);
    const tip = await g(r.bare, "rev-parse", r.branch);
    assert.equal(tip, r3.tip);
    assert.equal(
      await g(r.bare, "show", `${tip}:f.txt`),
      "ONE\ntwo\nthree\nfour\nFIVE",
    );
    assert.equal(await g(r.bare, "show", `${tip}:a.txt`), "a");
    assert.equal(await g(r.bare, "show", `${tip}:b.txt`), "b");
    assert.equal(
      await g(r.bare, "log", "--format=%s|%an", r.branch),
      [
        "task 3: b|ohcommodore",
        "agent: one|Test Person", // the author survives the rebase
        "task 2: five|ohcommodore",
        "task 1: a|ohcommodore",
        "seed|Test Person",
      ].join("\n"),
    );
    await assertLanded(r.bare, r.branch, ["1", "2", "3"]);
    // Private worktrees and pinned refs are gone.
    assert.deepEqual([...Deno.readDirSync(wt)], []);
    assert.equal((await g(r.bare, "worktree", "list")).split("\n").length, 1);
    assert.equal(await refsUnder(r.bare, "refs/ohcommodore/incoming"), "");
    // A rebased task landed again: its change is there, nothing moves.
    const again = await integrateTask({
      ...r,
      taskId: "2",
      source: `${dir}/s2`,
      commit: c2,
      worktreeDir: wt,
    });
    assert.deepEqual(again, { ok: true, tip, rebased: true, attempts: 1 });
  });
});

Deno.test("integrateTask: same line edited twice: the second fails, its work kept", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir, "clash");
    await prepareCheckout({ bare: r.bare, branch: r.branch, dir: `${dir}/s1` });
    await prepareCheckout({ bare: r.bare, branch: r.branch, dir: `${dir}/s2` });
    await prepareCheckout({ bare: r.bare, branch: r.branch, dir: `${dir}/s3` });
    await write(`${dir}/s1/f.txt`, "one\nTWO by 1\nthree\nfour\nfive\n");
    const c1 =
      (await commitTask({ checkout: `${dir}/s1`, taskId: "1", subject: "x" }))
        .commit!;
    await write(`${dir}/s2/f.txt`, "one\nTWO by 2\nthree\nfour\nfive\n");
    await write(`${dir}/s2/fine.txt`, "no conflict here\n");
    const c2 =
      (await commitTask({ checkout: `${dir}/s2`, taskId: "2", subject: "y" }))
        .commit!;
    const wt = `${dir}/wt`;
    assert.ok(
      (await integrateTask({
        ...r,
        taskId: "1",
        source: `${dir}/s1`,
        commit: c1,
        worktreeDir: wt,
      })).ok,
    );
    const res = await integrateTask({
      ...r,
      taskId: "2",
      source: `${dir}/s2`,
      commit: c2,
      worktreeDir: wt,
    });
    assert.deepEqual(res, {
      ok: false,
      conflict: ["f.txt"],
      sideBranch: "voyage/clash-task-2",
    });
    assert.equal(
      await g(r.bare, "rev-parse", "refs/heads/voyage/clash-task-2"),
      c2,
    );
    assert.equal(await g(r.bare, "rev-parse", r.branch), c1);
    // The same conflict through the worktree path (two commits).
    await write(`${dir}/s3/g.txt`, "g\n");
    await g(`${dir}/s3`, "add", ".");
    await g(`${dir}/s3`, "commit", "-q", "-m", "agent: g");
    await write(`${dir}/s3/f.txt`, "one\nTWO by 3\nthree\nfour\nfive\n");
    const c3 =
      (await commitTask({ checkout: `${dir}/s3`, taskId: "3", subject: "z" }))
        .commit!;
    const res3 = await integrateTask({
      ...r,
      taskId: "3",
      source: `${dir}/s3`,
      commit: c3,
      worktreeDir: wt,
    });
    assert.deepEqual(res3, {
      ok: false,
      conflict: ["f.txt"],
      sideBranch: "voyage/clash-task-3",
    });
    assert.equal(
      await g(r.bare, "rev-parse", "refs/heads/voyage/clash-task-3"),
      c3,
    );
    // A retry of task 2 with different work that conflicts again: both kept.
    await write(`${dir}/s2/f.txt`, "one\nTWO by 2, again\nthree\nfour\nfive\n");
    const c2b =
      (await commitTask({ checkout: `${dir}/s2`, taskId: "2", subject: "y" }))
        .commit!;
    const again = await integrateTask({
      ...r,
      taskId: "2",
      source: `${dir}/s2`,
      commit: c2b,
      worktreeDir: wt,
    });
    assert.deepEqual(again, {
      ok: false,
      conflict: ["f.txt"],
      sideBranch: "voyage/clash-task-2-2",
    });
    assert.equal(
      await g(r.bare, "rev-parse", "refs/heads/voyage/clash-task-2"),
      c2,
    );
    assert.equal(await g(r.bare, "rev-parse", r.branch), c1);
    assert.equal(await refsUnder(r.bare, "refs/ohcommodore/incoming"), "");
    assert.equal((await g(r.bare, "worktree", "list")).split("\n").length, 1);
  });
});

/** 20 ship checkouts, each with task i adding t<i>.txt (every 4th: two commits). */
async function manyTasks(
  dir: string,
  r: { bare: string; branch: string },
  n = 20,
) {
  return await Promise.all(
    Array.from({ length: n }, async (_, i) => {
      const taskId = String(i + 1);
      const co = `${dir}/ships/s${taskId}`;
      await prepareCheckout({ bare: r.bare, branch: r.branch, dir: co });
      if (i % 4 === 0) {
        await write(`${co}/pre${taskId}.txt`, `pre ${taskId}\n`);
        await g(co, "add", ".");
        await g(co, "commit", "-q", "-m", `agent: pre ${taskId}`);
      }
      await write(`${co}/t${taskId}.txt`, `task ${taskId}\n`);
      const { commit } = await commitTask({
        checkout: co,
        taskId,
        subject: `t${taskId}`,
      });
      return {
        bare: r.bare,
        branch: r.branch,
        taskId,
        source: co,
        commit: commit!,
        worktreeDir: `${dir}/wt`,
      };
    }),
  );
}

async function assertAllLanded(
  r: { bare: string; branch: string },
  n = 20,
) {
  const ids = Array.from({ length: n }, (_, i) => String(i + 1));
  await assertLanded(r.bare, r.branch, ids);
  // 1 seed + n task commits + the agents' own commits, each once.
  const agentCommits = Math.ceil(n / 4);
  assert.equal(
    await g(r.bare, "rev-list", "--count", r.branch),
    String(1 + n + agentCommits),
  );
  const files = (await g(r.bare, "ls-tree", "--name-only", r.branch)).split(
    "\n",
  );
  for (const id of ids) {
    assert.ok(files.includes(`t${id}.txt`), `t${id}.txt missing`);
  }
  assert.equal(await refsUnder(r.bare, "refs/ohcommodore/incoming"), "");
  assert.equal((await g(r.bare, "worktree", "list")).split("\n").length, 1);
}

Deno.test("integrateTask: 20 concurrent landings in one process all land once", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    const jobs = await manyTasks(dir, r);
    const results = await Promise.all(jobs.map((j) => integrateTask(j)));
    for (const res of results) {
      assert.ok(res.ok);
      // The landing lock serializes them: nobody loses a race.
      assert.equal(res.attempts, 1);
    }
    await assertAllLanded(r);
    const tips = results.map((x) => x.ok ? x.tip : "");
    assert.ok(tips.includes(await g(r.bare, "rev-parse", r.branch)));
  });
});

Deno.test("integrateTask: 10 concurrent lock-free landings race, retry and all land once", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    const jobs = await manyTasks(dir, r, 10);
    const results = await Promise.all(
      jobs.map((j) => integrateTask({ ...j, serialize: false })),
    );
    let retried = 0;
    for (const res of results) {
      assert.ok(res.ok);
      if (res.attempts > 1) retried++;
    }
    assert.ok(retried > 0, "the compare-and-swap race was exercised");
    await assertAllLanded(r, 10);
  });
});

Deno.test("integrateTask: 20 landings from 4 processes at once all land once", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    const jobs = await manyTasks(dir, r);
    const worker = `${dir}/worker.ts`;
    await Deno.writeTextFile(
      worker,
      `import { integrateTask } from ${JSON.stringify(MODULE)};
const { startAt, jobs } = JSON.parse(Deno.args[0]);
await new Promise((r) => setTimeout(r, Math.max(0, startAt - Date.now())));
const results = await Promise.all(jobs.map((j) => integrateTask(j)));
console.log(JSON.stringify(results));
`,
    );
    const startAt = Date.now() + 1200;
    const outs = await Promise.all(
      [0, 1, 2, 3].map((p) =>
        new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            "--no-config",
            "--no-lock",
            worker,
            JSON.stringify({
              startAt,
              jobs: jobs.filter((_, i) => i % 4 === p),
            }),
          ],
          stdin: "null",
        }).output()
      ),
    );
    for (const o of outs) {
      assert.equal(o.code, 0, new TextDecoder().decode(o.stderr));
      const results = JSON.parse(new TextDecoder().decode(o.stdout));
      assert.equal(results.length, 5);
      for (const res of results) {
        assert.equal(res.ok, true);
        assert.equal(res.attempts, 1); // the lock works across processes
      }
    }
    await assertAllLanded(r);
  });
});

Deno.test("integrateTask: from a bundle file", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    const ship = `${dir}/ship`;
    const c = await shipTask(r, ship, "5", { "b.txt": "bundled\n" });
    // A bare sha can't name a bundle's content; bundleCommit uses a ref.
    await assert.rejects(
      g(ship, "bundle", "create", `${dir}/raw.bundle`, c),
      /empty bundle/,
    );
    // Thin: only what the flagship lacks (it has the base the ship started at).
    // By default, the base prepareCheckout recorded.
    await bundleCommit({ repo: ship, commit: c, file: `${dir}/t5.bundle` });
    assert.equal(await g(ship, "for-each-ref", "refs/ohcommodore/bundle"), "");
    const needs = async (file: string) => {
      const out = await new Deno.Command("git", {
        args: ["bundle", "verify", file],
        cwd: ship,
      }).output();
      return new TextDecoder().decode(out.stdout) +
        new TextDecoder().decode(out.stderr);
    };
    assert.match(
      await needs(`${dir}/t5.bundle`),
      new RegExp(`requires.*\\n${r.base}`),
    );
    await bundleCommit({
      repo: ship,
      commit: c,
      file: `${dir}/full.bundle`,
      exclude: [],
    });
    assert.match(
      await needs(`${dir}/full.bundle`),
      /records a complete history/,
    );
    // Another task lands first, so this one is rebased out of the bundle.
    const other = await shipTask(r, `${dir}/other`, "6", { "c.txt": "c\n" });
    assert.ok(
      (await integrateTask({
        ...r,
        taskId: "6",
        source: `${dir}/other`,
        commit: other,
        worktreeDir: `${dir}/wt`,
      })).ok,
    );
    const res = await integrateTask({
      ...r,
      taskId: "5",
      source: `${dir}/t5.bundle`,
      commit: c,
      worktreeDir: `${dir}/wt`,
    });
    assert.ok(res.ok && res.rebased);
    assert.equal(await g(r.bare, "show", `${r.branch}:b.txt`), "bundled");
    await assertLanded(r.bare, r.branch, ["5", "6"]);
    // A commit the source doesn't have is a clear error, and nothing moves.
    await assert.rejects(
      integrateTask({
        ...r,
        taskId: "7",
        source: `${dir}/t5.bundle`,
        commit: "1".repeat(40),
        worktreeDir: `${dir}/wt`,
      }),
      /could not fetch/,
    );
    assert.equal(await g(r.bare, "rev-parse", r.branch), res.tip);
  });
});

Deno.test("integrateTask: from a file:// URL; unrelated history is refused, work kept", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir, "u");
    const ship = `${dir}/ship`;
    const c = await shipTask(r, ship, "1", { "a.txt": "a\n" });
    const res = await integrateTask({
      ...r,
      taskId: "1",
      source: `file://${ship}`,
      commit: c,
      worktreeDir: `${dir}/wt`,
    });
    assert.ok(res.ok);
    const stray = `${dir}/stray`;
    await Deno.mkdir(stray);
    await g(stray, "init", "-q");
    await write(`${stray}/x.txt`, "x\n");
    await g(stray, "add", ".");
    await g(stray, "commit", "-q", "-m", "unrelated");
    const x = await g(stray, "rev-parse", "HEAD");
    await assert.rejects(
      integrateTask({
        ...r,
        taskId: "2",
        source: stray,
        commit: x,
        worktreeDir: `${dir}/wt`,
      }),
      (e: Error & { code?: string }) =>
        e.code === "task_unrelated_history" &&
        /shares no history/.test(e.message),
    );
    assert.equal(await g(r.bare, "rev-parse", "voyage/u-task-2"), x);
    assert.equal(await g(r.bare, "rev-parse", r.branch), c);
    assert.equal(await refsUnder(r.bare, "refs/ohcommodore/incoming"), "");
    // Bad arguments are usage errors before anything is fetched. (An id
    // like "../x" is fine: refs and files take its slug.)
    await assert.rejects(
      integrateTask({
        ...r,
        taskId: "x\ny",
        source: ship,
        commit: c,
        worktreeDir: `${dir}/wt`,
      }),
      UsageError,
    );
    await assert.rejects(
      integrateTask({
        ...r,
        taskId: "3",
        source: ship,
        commit: "HEAD",
        worktreeDir: `${dir}/wt`,
      }),
      UsageError,
    );
  });
});

Deno.test("runVerify: passing and failing scripts, run on the branch tip", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    const c = await shipTask(r, `${dir}/ship`, "1", { "a.txt": "landed\n" });
    assert.ok(
      (await integrateTask({
        ...r,
        taskId: "1",
        source: `${dir}/ship`,
        commit: c,
        worktreeDir: `${dir}/wt`,
      })).ok,
    );
    await write(
      `${dir}/pass.sh`,
      "set -e\ngrep -q landed a.txt\necho verified\necho to-stderr >&2\n",
    );
    const ok = await runVerify({
      ...r,
      dir: `${dir}/verify`,
      script: `${dir}/pass.sh`,
    });
    assert.equal(ok.ok, true);
    assert.equal(ok.code, 0);
    assert.match(ok.output, /verified/);
    assert.match(ok.output, /to-stderr/);
    await write(
      `${dir}/fail.sh`,
      "echo checking\ntest -f missing.txt || { echo 'missing.txt is missing'; exit 3; }\n",
    );
    const bad = await runVerify({
      ...r,
      dir: `${dir}/verify`,
      script: `${dir}/fail.sh`,
    });
    assert.deepEqual({ ok: bad.ok, code: bad.code, timedOut: bad.timedOut }, {
      ok: false,
      code: 3,
      timedOut: false,
    });
    assert.match(bad.output, /missing.txt is missing/);
  });
});

Deno.test("runVerify: a timeout kills the script and its children; output is bounded", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    await write(`${dir}/hang.sh`, "echo started\nsleep 30 &\nsleep 30\n");
    const t0 = Date.now();
    const res = await runVerify({
      ...r,
      dir: `${dir}/verify`,
      script: `${dir}/hang.sh`,
      timeoutMs: 300,
    });
    assert.ok(Date.now() - t0 < 5000, "returned promptly");
    assert.deepEqual({ ok: res.ok, code: res.code, timedOut: res.timedOut }, {
      ok: false,
      code: 124,
      timedOut: true,
    });
    assert.match(res.output, /started/);
    assert.match(res.output, /timed out/);
    // A script that exits but leaves a child holding the pipe: returns soon.
    await write(`${dir}/bg.sh`, "sleep 30 &\necho done\n");
    const t1 = Date.now();
    const bg = await runVerify({
      ...r,
      dir: `${dir}/verify`,
      script: `${dir}/bg.sh`,
    });
    assert.ok(Date.now() - t1 < 5000);
    assert.equal(bg.ok, true);
    await write(
      `${dir}/loud.sh`,
      "echo FIRST\nfor i in $(seq 1 5000); do echo line $i; done\necho LAST\n",
    );
    const loud = await runVerify({
      ...r,
      dir: `${dir}/verify`,
      script: `${dir}/loud.sh`,
      maxOutputBytes: 4096,
    });
    assert.equal(loud.ok, true);
    assert.ok(loud.output.length < 4096 + 100);
    assert.match(loud.output, /^FIRST\n/);
    assert.match(loud.output, /LAST\n$/);
    assert.match(loud.output, /bytes of output omitted/);
  });
});

Deno.test("cloneVoyage: a real clone with the whole history, also from a bundle", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    for (const id of ["1", "2"]) {
      const c = await shipTask(r, `${dir}/ship${id}`, id, {
        [`x${id}.txt`]: `${id}\n`,
      });
      assert.ok(
        (await integrateTask({
          ...r,
          taskId: id,
          source: `${dir}/ship${id}`,
          commit: c,
          worktreeDir: `${dir}/wt`,
        })).ok,
      );
    }
    const tip = await g(r.bare, "rev-parse", r.branch);
    const cl = await cloneVoyage({ ...r, dir: `${dir}/clone` });
    assert.equal(cl.tip, tip);
    assert.equal(
      await g(`${dir}/clone`, "symbolic-ref", "--short", "HEAD"),
      r.branch,
    );
    assert.equal(
      await g(`${dir}/clone`, "log", "--format=%s"),
      "task 2: change x2.txt\ntask 1: change x1.txt\nseed",
    );
    assert.equal(await Deno.readTextFile(`${dir}/clone/x2.txt`), "2\n");
    assert.equal(
      await g(`${dir}/clone`, "rev-parse", "--is-shallow-repository"),
      "false",
    );
    await assert.rejects(
      cloneVoyage({ ...r, dir: `${dir}/clone` }),
      /not empty/,
    );
    await bundleVoyage({ bare: r.bare, file: `${dir}/voyage.bundle` });
    const viaBundle = await cloneVoyage({
      bare: `${dir}/voyage.bundle`,
      branch: r.branch,
      dir: `${dir}/clone2`,
    });
    assert.equal(viaBundle.tip, tip);
    assert.equal(await g(`${dir}/clone2`, "rev-list", "--count", "HEAD"), "3");
    // A ship that only gets bundles: its checkout is made and refreshed from them.
    await prepareCheckout({
      bare: `${dir}/voyage.bundle`,
      branch: r.branch,
      dir: `${dir}/ship-b`,
    });
    assert.equal(await g(`${dir}/ship-b`, "rev-parse", "HEAD"), tip);
  });
});

Deno.test("prepareCheckout with a tip: no fetch when the checkout holds it, need_base when not", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    const ship = `${dir}/ship`;
    const c = await shipTask(r, ship, "1", { "a.txt": "a\n" });
    // The ship's own commit landed as a fast-forward: it already has the tip.
    const res = await integrateTask({
      ...r,
      taskId: "1",
      source: ship,
      commit: c,
      worktreeDir: `${dir}/wt`,
    });
    assert.deepEqual(res, { ok: true, tip: c, rebased: false, attempts: 1 });
    assert.equal(
      await g(r.bare, "for-each-ref", "refs/ohcommodore/incoming"),
      "",
    );
    await write(`${ship}/stray.txt`, "left over\n");
    assert.equal(
      await prepareCheckout({ branch: r.branch, dir: ship, tip: c }),
      c,
    );
    assert.equal(
      await g(ship, "rev-parse", "HEAD", "refs/ohcommodore/base"),
      `${c}\n${c}`,
    );
    assert.equal(await g(ship, "status", "--porcelain"), "");
    // Another ship lands: this one lacks the new tip and has nothing to fetch.
    const other = await shipTask(r, `${dir}/other`, "2", { "b.txt": "b\n" });
    await integrateTask({
      ...r,
      taskId: "2",
      source: `${dir}/other`,
      commit: other,
      worktreeDir: `${dir}/wt`,
    });
    await assert.rejects(
      prepareCheckout({ branch: r.branch, dir: ship, tip: other }),
      (e: Error & { code?: string }) => e.code === "need_base",
    );
    assert.equal(await g(ship, "rev-parse", "HEAD"), c); // nothing changed
    // A thin bundle (minus what the ship has) brings it there.
    assert.ok(
      await bundleVoyage({
        bare: r.bare,
        file: `${dir}/thin.bundle`,
        exclude: [c],
      }),
    );
    assert.equal(
      await prepareCheckout({
        bare: `${dir}/thin.bundle`,
        branch: r.branch,
        dir: ship,
        tip: other,
      }),
      other,
    );
    // ... but not to a fresh checkout, which lacks its prerequisites.
    await assert.rejects(
      prepareCheckout({
        bare: `${dir}/thin.bundle`,
        branch: r.branch,
        dir: `${dir}/fresh`,
      }),
    );
    // Nothing left to send, or an unknown commit: no thin bundle, no file.
    assert.equal(
      await bundleVoyage({
        bare: r.bare,
        file: `${dir}/empty.bundle`,
        exclude: [other],
      }),
      false,
    );
    assert.equal(
      await bundleVoyage({
        bare: r.bare,
        file: `${dir}/bad.bundle`,
        exclude: ["0".repeat(40)],
      }),
      false,
    );
    assert.equal(await exists(`${dir}/empty.bundle`), false);
  });
});

Deno.test("bundleCommit through HEAD: no temporary ref, lands like the others", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    const ship = `${dir}/ship`;
    const c = await shipTask(r, ship, "3", { "h.txt": "head\n" });
    await bundleCommit({
      repo: ship,
      commit: c,
      file: `${dir}/h.bundle`,
      ref: "HEAD",
    });
    const res = await integrateTask({
      ...r,
      taskId: "3",
      source: `${dir}/h.bundle`,
      commit: c,
      worktreeDir: `${dir}/wt`,
    });
    assert.equal(res.ok, true);
    assert.equal(await g(r.bare, "rev-parse", `refs/heads/${r.branch}`), c);
  });
});

Deno.test("stamps: a task commit says which run it is; landing refuses one that is another's; a landed run is found again", async () => {
  await withTmp(async (dir) => {
    const r = await seeded(dir);
    const co = `${dir}/ship`;
    const stamp = (task: string, attempt = 1) => ({
      voyage: "v1",
      task,
      attempt,
    });
    await prepareCheckout({ bare: r.bare, branch: r.branch, dir: co });
    await write(`${co}/a.txt`, "a\n");
    const a = (await commitTask({
      checkout: co,
      taskId: "1",
      subject: "a",
      stamp: stamp("1"),
    })).commit!;
    assert.deepEqual(
      stampOf(await g(co, "log", "-1", "--format=%B", a)),
      stamp("1"),
    );
    // Committing again (a captain cut short after its commit) is the same.
    assert.equal(
      (await commitTask({
        checkout: co,
        taskId: "1",
        subject: "a",
        stamp: stamp("1"),
      })).commit,
      a,
    );
    // Landed as another task, or another attempt: refused, kept aside.
    for (const wrong of [stamp("2"), stamp("1", 2)]) {
      await assert.rejects(
        integrateTask({
          ...r,
          taskId: wrong.task,
          source: co,
          commit: a,
          worktreeDir: `${dir}/wt`,
          expect: wrong,
        }),
        (e: Error & { code?: string }) =>
          e.code === "task_commit_mismatch" &&
          /task 1 attempt 1 of voyage v1, not task \d attempt \d/.test(
            e.message,
          ),
      );
    }
    assert.equal(await g(r.bare, "rev-parse", r.branch), r.base);
    assert.equal(await findLanded(r.bare, r.branch, stamp("1")), null);
    const ok = await integrateTask({
      ...r,
      taskId: "1",
      source: co,
      commit: a,
      worktreeDir: `${dir}/wt`,
      expect: stamp("1"),
    });
    assert.ok(ok.ok);
    assert.equal(await findLanded(r.bare, r.branch, stamp("1")), a);

    // Task 2 is built on the base: its commit is replayed onto task 1's,
    // and found again by its stamp.
    const co2 = `${dir}/ship2`;
    await Deno.mkdir(co2);
    await g(co2, "clone", "-q", r.bare, ".");
    await g(co2, "reset", "-q", "--hard", r.base);
    await g(co2, "update-ref", "refs/ohcommodore/base", r.base);
    await write(`${co2}/b.txt`, "b\n");
    const b = (await commitTask({
      checkout: co2,
      taskId: "2",
      subject: "b",
      stamp: stamp("2"),
    })).commit!;
    const landed = await integrateTask({
      ...r,
      taskId: "2",
      source: co2,
      commit: b,
      worktreeDir: `${dir}/wt`,
      expect: stamp("2"),
    });
    assert.ok(landed.ok && landed.rebased);
    assert.equal(
      await findLanded(r.bare, r.branch, stamp("2")),
      landed.ok ? landed.tip : null,
    );

    // A commit that brings another task's commit along is refused too.
    await write(`${co}/c.txt`, "c\n");
    await g(co, "add", ".");
    await g(
      co,
      "commit",
      "-q",
      "-m",
      "x\n\nVoyage: v1\nVoyage-Task: 9\nVoyage-Attempt: 1",
    );
    const smuggled = (await commitTask({
      checkout: co,
      taskId: "3",
      subject: "c",
      stamp: stamp("3"),
    })).commit!;
    await assert.rejects(
      integrateTask({
        ...r,
        taskId: "3",
        source: co,
        commit: smuggled,
        worktreeDir: `${dir}/wt`,
        expect: stamp("3"),
      }),
      /it brings is task 9 attempt 1 of voyage v1, not task 3/,
    );
  });
});
