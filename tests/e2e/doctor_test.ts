import assert from "node:assert/strict";
import { localFleet, ohc, ohcOk, scratchHome } from "../helpers/cli.ts";

interface Doctor {
  ok: boolean;
  checks: { name: string; ok: boolean; detail: string }[];
}

Deno.test("doctor: tools and tokens, then each VM's version; a wrong binary fails it", async () => {
  const fresh: Doctor = JSON.parse(
    (await ohcOk(await scratchHome(), ["doctor", "--json"])).stdout,
  );
  assert.ok(fresh.checks.some((c) => c.name === "duckdb" && c.ok));
  assert.ok(fresh.checks.some((c) => c.name === "GH_TOKEN"));
  assert.ok(
    fresh.checks.some((c) =>
      c.name === "claude credential" && !c.ok &&
      /CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_API_KEY/.test(c.detail)
    ),
  );
  const keyed: Doctor = JSON.parse(
    (await ohcOk(await scratchHome(), ["doctor", "--json"], {
      env: {
        ANTHROPIC_API_KEY: "sk-ant-doctor",
        ANTHROPIC_BASE_URL: "http://gw",
      },
    })).stdout,
  );
  const cred = keyed.checks.find((c) => c.name === "claude credential");
  assert.equal(cred?.ok, true);
  assert.equal(
    cred?.detail,
    "set (agent environment: ANTHROPIC_API_KEY, ANTHROPIC_BASE_URL)",
  );

  await using fleet = await localFleet("alpha");
  const home = fleet.home;
  const d: Doctor = JSON.parse(
    (await ohcOk(home, ["doctor", "--json"])).stdout,
  );
  assert.ok(d.ok);
  assert.ok(d.checks.some((c) => c.name === "ship alpha" && c.ok));

  const bin = `${home}/.ohcommodore/local/alpha/.ohcommodore/bin/ohcommodore`;
  const real = await Deno.readTextFile(bin);
  await Deno.writeTextFile(bin, "#!/bin/sh\necho broken >&2; exit 1\n");
  const r = await ohc(home, ["doctor"]);
  assert.equal(r.code, 1);
  assert.match(r.stdout, /^FAIL +ship alpha +unreachable/m);
  await Deno.writeTextFile(bin, real);
});
