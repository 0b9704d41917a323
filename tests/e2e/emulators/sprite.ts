/**
 * The fake `sprite` CLI (sprite/sprite.ts) for tests: an executable named
 * `sprite` in `binDir`, driven by environment variables. Needs no root.
 *
 * ```ts
 * const sprites = await startFakeSprites({ dir: `${tmp}/sprites` });
 * await new Deno.Command("sprite", {
 *   args: ["create", "--skip-console", "ship-a"],
 *   env: sprites.env,
 * }).output();
 * // …
 * await sprites.stop(); // kills processes still running in any sprite
 * ```
 */

import { killSandboxed } from "./sprite/sprite.ts";

export const FAKE_SPRITE_BIN_DIR =
  new URL("./sprite", import.meta.url).pathname;

export interface FakeSprites {
  dir: string;
  /** Directory holding the `sprite` executable: put it first on PATH. */
  binDir: string;
  /**
   * PATH (binDir first), FAKE_SPRITE_DIR, FAKE_SPRITE_DENO, FAKE_SPRITE_ORG:
   * pass to the program that runs `sprite`.
   */
  env: Record<string, string>;
  /** Host path standing in for /home/sprite of sprite `name`. */
  home(name: string): string;
  /** Names of the existing sprites. */
  list(): Promise<string[]>;
  /** Kills every process started by `sprite exec` in these sprites. */
  stop(): Promise<void>;
}

export async function startFakeSprites(
  opts: { dir: string; org?: string },
): Promise<FakeSprites> {
  const dir = opts.dir.replace(/\/+$/, "");
  await Deno.mkdir(`${dir}/sprites`, { recursive: true });
  const env: Record<string, string> = {
    PATH: `${FAKE_SPRITE_BIN_DIR}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    FAKE_SPRITE_DIR: dir,
    FAKE_SPRITE_DENO: Deno.execPath(),
    FAKE_SPRITE_ORG: opts.org ?? "test-org",
  };
  return {
    dir,
    binDir: FAKE_SPRITE_BIN_DIR,
    env,
    home: (name) => `${dir}/sprites/${name}/home`,
    async list() {
      const names: string[] = [];
      for await (const e of Deno.readDir(`${dir}/sprites`)) {
        if (e.isDirectory) names.push(e.name);
      }
      return names.sort();
    },
    async stop() {
      for (let i = 0; i < 3; i++) {
        if (killSandboxed(`${dir}/sprites/`, true).length === 0) break;
        await new Promise((r) => setTimeout(r, 50));
      }
    },
  };
}
