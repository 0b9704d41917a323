/** What several `voyage` verbs check the same way. */
import type { Command } from "@commander-js/extra-typings";
import { UsageError } from "../../errors.ts";
import type { CliContext } from "../context.ts";

export function positiveInt(
  flag: string,
  v: string | undefined,
): number | undefined {
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1) {
    throw new UsageError(`${flag} must be a positive whole number, not "${v}"`);
  }
  return n;
}

/** OHCOMMODORE_DEFAULT_SHIPS from this environment, checked, if set. */
export async function defaultShipsFromEnv(
  ctx: CliContext,
): Promise<number | undefined> {
  const raw = ctx.env("OHCOMMODORE_DEFAULT_SHIPS");
  if (raw === undefined) return undefined;
  const { parseSetting } = await import("../../settings.ts");
  return parseSetting("OHCOMMODORE_DEFAULT_SHIPS", raw);
}

export function maxShips(flag: string, v: string | undefined, max: number) {
  const n = positiveInt(flag, v);
  if (n !== undefined && n > max) {
    throw new UsageError(`${flag} must be between 1 and ${max}, not ${n}`);
  }
  return n;
}

/** Declares a verb of `voyage` (also at the top level if ocaptain has it). */
export type DefineVerb = (
  name: string,
  description: string,
  define: (cmd: Command) => void,
) => void;
