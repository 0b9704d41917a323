import { OhcError, UsageError } from "../errors.ts";
import { err } from "./render.ts";

/**
 * Turns a failure into one line on stderr (and a hint, if any) and its exit
 * code: 2 for misuse, else the error's own (1 for failures while acting).
 */
export function reportFailure(e: unknown): number {
  if (e instanceof UsageError) {
    err(`error: ${e.message}`);
    return 2;
  }
  if (e instanceof OhcError) {
    err(`error: ${e.message}`);
    if (e.hint) err(`hint: ${e.hint}`);
    return e.exitCode;
  }
  err(`error: ${e instanceof Error ? e.message : String(e)}`);
  return 1;
}
