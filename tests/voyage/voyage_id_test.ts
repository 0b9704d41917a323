/**
 * One definition of a voyage id (lib/voyage/voyage_id.ts): what sail makes,
 * what a ship's captain.session takes and what names the voyage's git branch
 * agree. They used to differ: the captain took "-x" (which git refused) and
 * refused "V1" or "a.b" (which git took).
 */
import assert from "node:assert/strict";
import { UsageError } from "../../lib/errors.ts";
import { voyageBranch } from "../../lib/git/refs.ts";
import {
  checkVoyageId,
  isVoyageId,
  newVoyageId,
} from "../../lib/voyage/voyage_id.ts";
import { captainHandlers } from "../../roles/captain.ts";

const GOOD = ["v", "vtest", "v-1234", "abc-1", "0v", "v".repeat(64)];
const BAD = [
  "",
  "-x",
  "V1",
  "a.b",
  "a_b",
  "a/b",
  "..",
  "x.lock",
  "a b",
  "v".repeat(65),
];

Deno.test("voyage id: sail's ids are valid, and one rule decides", () => {
  for (let i = 0; i < 200; i++) assert.ok(isVoyageId(newVoyageId()));
  for (const id of GOOD) assert.equal(checkVoyageId(id), id);
  for (const id of BAD) {
    assert.equal(isVoyageId(id), false, id);
    assert.throws(() => checkVoyageId(id, "here"), UsageError);
  }
  assert.equal(isVoyageId(7), false);
});

Deno.test("voyage id: the git branch and the ship's session take the same ids", async () => {
  const home = await Deno.makeTempDir({ prefix: "ohc-voyage-id-" });
  try {
    const session = captainHandlers(
      {
        role: "captain",
        name: "s1",
      } as Parameters<typeof captainHandlers>[0],
      home,
    )["captain.session"];
    // An input that is closed at once: an accepted id ends the session
    // (null); a refused one is a usage error before anything runs.
    const open = (id: string) =>
      session({
        args: { voyage_id: id },
        secrets: {},
        emit: () => {},
        input: new ReadableStream({ start: (c) => c.close() }),
        signal: new AbortController().signal,
      });
    for (const id of [...GOOD, ...BAD]) {
      const good = GOOD.includes(id);
      if (good) {
        assert.equal(voyageBranch(id), `voyage/${id}`);
        assert.equal(await open(id), null, id);
      } else {
        assert.throws(() => voyageBranch(id), UsageError, id);
        await assert.rejects(open(id), UsageError, id);
      }
    }
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
