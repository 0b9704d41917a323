import { OhcError, UsageError } from "../errors.ts";
import { err, type Io, processIo } from "./io.ts";

/**
 * Turns a failure into one line on stderr (and a hint, if any) and its exit
 * code: 2 for misuse, else the error's own (1 for failures while acting).
 */
export function reportFailure(e: unknown, io: Io = processIo): number {
  if (e instanceof UsageError) {
    err(io, `error: ${e.message}`);
    return 2;
  }
  if (e instanceof OhcError) {
    err(io, `error: ${e.message}`);
    if (e.hint) err(io, `hint: ${e.hint}`);
    return e.exitCode;
  }
  err(io, `error: ${e instanceof Error ? e.message : String(e)}`);
  return 1;
}
