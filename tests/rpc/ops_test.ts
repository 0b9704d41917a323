/**
 * The registry of operations: each declared once, with an owner and a
 * validator that runs before any handler; a server's table holds only its
 * owner's operations.
 */
import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import {
  implement,
  type OpArgs,
  type OpName,
  type OpResult,
  OPS,
  opSpec,
} from "../../lib/rpc/ops.ts";
import type { RpcContext } from "../../lib/rpc/stream.ts";

const ctx = (args: Record<string, unknown>): RpcContext => ({
  args,
  secrets: {},
  emit: () => {},
  input: new ReadableStream({ start: (c) => c.close() }),
  signal: new AbortController().signal,
});

Deno.test("every operation has an owner, a place and a validator", () => {
  const names = Object.keys(OPS) as OpName[];
  assert.ok(names.length >= 30, `${names.length} operations`);
  for (const name of names) {
    const spec = opSpec(name)!;
    assert.match(name, /^[a-z]+\.[a-z_]+$/);
    assert.ok(["daemon", "call"].includes(spec.owner), name);
    assert.ok(["any", "flagship", "ship"].includes(spec.on), name);
    assert.equal(typeof spec.args, "function", name);
    // Only a daemon op can give ships work; only a call op holds a sprite.
    if (spec.work) assert.equal(spec.owner, "daemon", name);
    if (spec.long) assert.equal(spec.owner, "call", name);
  }
  assert.equal(opSpec("inbox.nope"), undefined);
  assert.equal(opSpec("toString"), undefined);
});

Deno.test("implement: arguments are checked before the handler runs", async () => {
  let ran = 0;
  const table = implement("daemon", {
    "inbox.send": (a) => {
      ran++;
      return Promise.resolve({
        id: "x",
        sender: "me",
        recipient: a.recipient,
        command: a.command,
        created_at: "",
        timeout_s: a.timeout_s ?? null,
      });
    },
  });
  await assert.rejects(
    () => table["inbox.send"](ctx({ recipient: "captain@a" })),
    (e) =>
      e instanceof UsageError && /missing argument "command"/.test(e.message),
  );
  await assert.rejects(
    () =>
      table["inbox.send"](
        ctx({ recipient: "captain@a", command: "true", timeout: 3 }),
      ),
    (e) =>
      e instanceof UsageError && /unknown argument "timeout"/.test(e.message),
  );
  await assert.rejects(
    () =>
      table["inbox.send"](
        ctx({ recipient: "captain@a", command: "true", timeout_s: -1 }),
      ),
    (e) => e instanceof UsageError && /--timeout must be/.test(e.message),
  );
  assert.equal(ran, 0);
  const r = await table["inbox.send"](
    ctx({ recipient: "captain@a", command: "true", timeout_s: null }),
  ) as { recipient: string };
  assert.equal(r.recipient, "captain@a");
  assert.equal(ran, 1);
});

Deno.test("implement: a table holds its owner's operations only", () => {
  assert.throws(
    // @ts-expect-error: fleet.status belongs to the per-call process
    () => implement("daemon", { "fleet.status": () => ({}) }),
    /not declared as an operation of the daemon/,
  );
  assert.throws(
    // @ts-expect-error: nobody declared it
    () => implement("call", { "fleet.nope": () => null }),
    /not declared/,
  );
});

Deno.test("callers are typed by the registry", () => {
  // Compile-time checks: a wrong argument or result is a type error.
  const args: OpArgs<"voyage.tasks"> = { id: "abcd", status: "failed" };
  // @ts-expect-error: not a task status
  const bad: OpArgs<"voyage.tasks"> = { status: "lost" };
  const result: OpResult<"voyage.stop"> = { voyage: "v", ships: ["a"] };
  assert.ok(args && bad && result);
});
