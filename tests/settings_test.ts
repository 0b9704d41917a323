import assert from "node:assert/strict";
import { UsageError } from "../lib/errors.ts";
import {
  parseAssignments,
  readSettingsFile,
  Settings,
  settingsFromEnv,
  writeSettingsFile,
} from "../lib/settings.ts";

Deno.test("settings: the environment, else the VM's file, else the default", async () => {
  const home = await Deno.makeTempDir();
  await writeSettingsFile({ OHCOMMODORE_INBOX_TIMEOUT: "42" }, home);
  const file = await readSettingsFile(home);
  const env: Record<string, string> = {};
  const s = new Settings(file, (k) => env[k]);
  assert.equal(s.get("OHCOMMODORE_INBOX_TIMEOUT"), 42);
  assert.equal(s.get("OHCOMMODORE_INBOX_CONCURRENCY"), 1);
  assert.equal(s.get("OHCOMMODORE_TASK_LEASE"), 60);
  assert.equal(s.get("OHCOMMODORE_CLAUDE_ALLOW_ROOT"), false);
  assert.equal(s.get("OHCOMMODORE_AGENT_USER"), null);
  assert.equal(s.get("OHCOMMODORE_NO_CGROUP"), false);
  env.OHCOMMODORE_INBOX_TIMEOUT = "7.5";
  assert.equal(s.get("OHCOMMODORE_INBOX_TIMEOUT"), 7.5);
  await Deno.remove(home, { recursive: true });
});

Deno.test("settings: a bad value is a usage error naming the setting, where it is read", () => {
  for (
    const [k, v] of [
      ["OHCOMMODORE_INBOX_TIMEOUT", "abc"],
      ["OHCOMMODORE_INBOX_TIMEOUT", "0"],
      ["OHCOMMODORE_INBOX_TIMEOUT", "2147484"],
      ["OHCOMMODORE_INBOX_CONCURRENCY", "1.5"],
      ["OHCOMMODORE_TASK_ATTEMPTS", ""],
      ["OHCOMMODORE_CLAUDE_ALLOW_ROOT", "yes"],
      ["OHCOMMODORE_NO_CGROUP", "true"],
      ["OHCOMMODORE_AGENT_USER", "Root User"],
    ]
  ) {
    const s = new Settings({}, (x) => x === k ? v : undefined);
    assert.throws(
      () => s.get(k as "OHCOMMODORE_INBOX_TIMEOUT"),
      (e: Error) =>
        e instanceof UsageError &&
        e.message.startsWith(`${k}=${JSON.stringify(v)} is not valid: `),
      `${k}=${v}`,
    );
    assert.throws(() => settingsFromEnv({ [k]: v }), UsageError);
  }
});

Deno.test("settings: KEY=VALUE assignments, unknown names and missing values", () => {
  assert.deepEqual(
    parseAssignments([
      "OHCOMMODORE_INBOX_TIMEOUT=600",
      "OHCOMMODORE_AGENT_USER=builder",
    ]),
    { OHCOMMODORE_INBOX_TIMEOUT: "600", OHCOMMODORE_AGENT_USER: "builder" },
  );
  assert.throws(
    () => parseAssignments(["OHCOMMODORE_BOGUS=1"]),
    /unknown setting "OHCOMMODORE_BOGUS": one of OHCOMMODORE_INBOX_TIMEOUT/,
  );
  assert.throws(
    () => parseAssignments(["OHCOMMODORE_TASK_LEASE"]),
    /give a value, as OHCOMMODORE_TASK_LEASE=VALUE/,
  );
  // Only the VM settings travel from the laptop's environment.
  assert.deepEqual(
    settingsFromEnv({ OHCOMMODORE_TASK_LEASE: "5", HOME: "/x", PATH: "/y" }),
    { OHCOMMODORE_TASK_LEASE: "5" },
  );
});
