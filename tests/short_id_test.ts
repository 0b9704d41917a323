import assert from "node:assert/strict";
import { UsageError } from "../lib/errors.ts";
import { resolveShortId } from "../lib/short_id.ts";

const IDS = [
  "0a1b2c3d-0000",
  "0a1b2c3d-1111",
  "0a1bffff-2222",
  "9f00aa11-3333",
];
const find = (p: string, n: number) =>
  Promise.resolve(IDS.filter((id) => id.startsWith(p)).slice(0, n));

Deno.test("resolveShortId: a whole id, a unique prefix of 4+, or a clear usage error", async () => {
  assert.equal(await resolveShortId("9f00aa11-3333", find, "message"), IDS[3]);
  assert.equal(await resolveShortId("9f00", find, "message"), IDS[3]);
  assert.equal(await resolveShortId("0a1bf", find, "message"), IDS[2]);
  const ambiguous = await resolveShortId("0a1b2c", find, "message").catch((
    e,
  ) => e);
  assert.ok(ambiguous instanceof UsageError);
  assert.equal(
    ambiguous.message,
    'message id "0a1b2c" is ambiguous: 0a1b2c3d-0000, 0a1b2c3d-1111',
  );
  await assert.rejects(
    resolveShortId("9f0", find, "voyage"),
    (e: Error) =>
      e instanceof UsageError &&
      e.message === "no voyage 9f0 (a short id needs 4 characters or more)",
  );
  await assert.rejects(
    resolveShortId("ffff", find, "message"),
    (e: Error) => e instanceof UsageError && e.message === "no message ffff",
  );
});

Deno.test("resolveShortId: an id shorter than 4 characters still names itself exactly", async () => {
  const short = (p: string) =>
    Promise.resolve(["ab", "abc"].filter((id) => id.startsWith(p)));
  assert.equal(await resolveShortId("ab", short, "task"), "ab");
});
