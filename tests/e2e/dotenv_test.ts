/**
 * .env files are read on the user's machine only: a VM (a home with an
 * identity) takes its settings from requests, never from a .env that
 * happens to lie in its home or working directory.
 */
import assert from "node:assert/strict";
import { ohc, scratchHome } from "../helpers/cli.ts";

async function ghTokenCheck(home: string): Promise<string> {
  const r = await ohc(home, ["doctor", "--json"]);
  const checks = JSON.parse(r.stdout).checks as {
    name: string;
    detail: string;
  }[];
  return checks.find((c) => c.name === "GH_TOKEN")!.detail;
}

Deno.test("dotenv: the user's machine reads ~/.ohcommodore/.env and ./.env; a VM neither", async () => {
  const home = await scratchHome();
  try {
    await Deno.mkdir(`${home}/.ohcommodore`, { recursive: true });
    await Deno.writeTextFile(`${home}/.ohcommodore/.env`, "GH_TOKEN=t\n", {
      mode: 0o600,
    });
    assert.equal(await ghTokenCheck(home), "set");
    // The same home as a ship's.
    await Deno.writeTextFile(
      `${home}/.ohcommodore/identity.json`,
      JSON.stringify({
        role: "captain",
        name: "alpha",
        flagship: "flagship",
        provider: { kind: "local", root: home },
        created_at: new Date().toISOString(),
      }),
    );
    assert.match(await ghTokenCheck(home), /^not set/);
    await Deno.writeTextFile(`${home}/.env`, "GH_TOKEN=t\n", { mode: 0o600 });
    assert.match(await ghTokenCheck(home), /^not set/);
  } finally {
    await Deno.remove(home, { recursive: true });
  }
});
