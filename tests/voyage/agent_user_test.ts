/** lib/voyage/ship/agent_user.ts: who runs the agent, and who may pass a directory. */
import assert from "node:assert/strict";
import {
  agentUserName,
  canSearch,
  DEFAULT_AGENT_USER,
  ensureAgentUser,
} from "../../lib/voyage/ship/agent_user.ts";

const env = (vars: Record<string, string>) => (k: string) => vars[k];

Deno.test("agentUserName: claude as root gets the agent user unless ALLOW_ROOT; a chosen user wins", () => {
  assert.equal(
    agentUserName("claude", { uid: 0, env: env({}) }),
    DEFAULT_AGENT_USER,
  );
  assert.equal(
    agentUserName("claude", {
      uid: 0,
      env: env({ OHCOMMODORE_CLAUDE_ALLOW_ROOT: "1" }),
    }),
    undefined,
  );
  for (const kind of ["shell", "custom", "codex"] as const) {
    assert.equal(agentUserName(kind, { uid: 0, env: env({}) }), undefined);
  }
  assert.equal(agentUserName("claude", { uid: 1000, env: env({}) }), undefined);
  for (const kind of ["claude", "shell"] as const) {
    assert.equal(
      agentUserName(kind, {
        uid: 0,
        env: env({
          OHCOMMODORE_AGENT_USER: "worker",
          OHCOMMODORE_CLAUDE_ALLOW_ROOT: "1",
        }),
      }),
      "worker",
    );
  }
});

Deno.test("canSearch: owner, group, then others' x bit", () => {
  const user = { name: "a", uid: 500, gid: 600, home: "/h" };
  const dir = (uid: number, gid: number, mode: number) =>
    ({ uid, gid, mode: 0o40000 | mode }) as Deno.FileInfo;
  assert.equal(canSearch(dir(500, 0, 0o700), user), true);
  assert.equal(canSearch(dir(500, 0, 0o077), user), false);
  assert.equal(canSearch(dir(0, 600, 0o750), user), true);
  assert.equal(canSearch(dir(0, 600, 0o705), user), false);
  assert.equal(canSearch(dir(0, 0, 0o711), user), true);
  assert.equal(canSearch(dir(0, 0, 0o700), user), false);
});

Deno.test("ensureAgentUser: a chosen user that does not exist is an error, nothing created", async () => {
  await assert.rejects(
    () => ensureAgentUser("ohc-no-such-user-x"),
    /no such user "ohc-no-such-user-x"/,
  );
  await assert.rejects(
    () => ensureAgentUser("bad user;rm"),
    /invalid user name/,
  );
});
