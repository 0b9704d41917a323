/**
 * The two kinds of failure a user sees. Both render as one line; the exit
 * code tells scripts which it was: 2 for misuse (nothing was run or written),
 * 1 for anything that went wrong while acting.
 */

/** Bad input or a command run in the wrong place. Exit code 2. */
export class UsageError extends Error {
  readonly exitCode = 2;
  readonly code = "usage";
  constructor(message: string, readonly hint?: string) {
    super(message);
    this.name = "UsageError";
  }
}

/** A failure while acting, with a stable code for scripts and a hint for people. */
export class OhcError extends Error {
  readonly exitCode: number = 1;
  /** Facts for programs (e.g. a failed task's agent cost); travels with the error. */
  data?: Record<string, unknown>;
  constructor(readonly code: string, message: string, readonly hint?: string) {
    super(message);
    this.name = "OhcError";
  }
}

/** The shape errors take on the wire (RPC) and in --json output. */
export interface ErrorInfo {
  code: string;
  message: string;
  hint?: string;
  exit_code: number;
  data?: Record<string, unknown>;
}

export function toErrorInfo(err: unknown): ErrorInfo {
  if (err instanceof UsageError || err instanceof OhcError) {
    const info: ErrorInfo = {
      code: err.code,
      message: err.message,
      hint: err.hint,
      exit_code: err.exitCode,
    };
    if (err instanceof OhcError && err.data) info.data = err.data;
    return info;
  }
  const message = err instanceof Error ? err.message : String(err);
  return { code: "internal", message, exit_code: 1 };
}

/** Rebuilds an error that crossed a machine boundary, keeping its kind. */
export function fromErrorInfo(info: ErrorInfo): UsageError | OhcError {
  if (info.exit_code === 2) return new UsageError(info.message, info.hint);
  const e = new OhcError(info.code, info.message, info.hint);
  if (info.data) e.data = info.data;
  return e;
}
