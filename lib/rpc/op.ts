/**
 * How an operation is declared: its owner (the process that serves it on
 * the machine the request reaches), where it is served, and a validator
 * for its arguments, with the type of its result. Features declare their
 * operations with `op` (in their small `rpc.ts`); lib/rpc/ops.ts gathers
 * them into the one registry that routes requests and types callers.
 * Nothing here imports a feature: declarations stay cheap to load on
 * every hop.
 */
import { UsageError } from "../errors.ts";

/**
 * `daemon`: the machine's daemon serves it (it owns the database, the
 * links, the voyage driver); `_rpc` passes it through to the daemon's
 * socket. `call`: the `_rpc` process started for the request serves it.
 */
export type Owner = "daemon" | "call";

/** The machines that serve an operation. */
export type Serves = "any" | "flagship" | "ship";

export type RawArgs = Record<string, unknown>;

export interface OpSpec<A = unknown, R = unknown, O extends Owner = Owner> {
  readonly owner: O;
  readonly on: Serves;
  /** Checks a request's arguments: the typed arguments, or a UsageError. */
  readonly args: (raw: RawArgs) => A;
  /**
   * A `call` op that can be quiet for longer than a sprite waits before
   * it pauses (making a ship, a user's command): the flagship holds itself
   * awake while it serves one.
   */
  readonly long: boolean;
  /** A `daemon` op that gives ships work: a sprite's daemon stays awake. */
  readonly work: boolean;
  /**
   * Lasts as long as its caller's input (a link, a session): the daemon's
   * connection closes when that input ends, not when it first answers.
   */
  readonly session: boolean;
  /** Never set: carries the result's type. */
  readonly result?: R;
}

/** A result type, given to `op` (types cannot be inferred from nothing). */
export interface Returns<R> {
  readonly _returns?: R;
}
export const returns = <R>(): Returns<R> => ({});

export function op<A, R, O extends Owner>(
  owner: O,
  args: (raw: RawArgs) => A,
  _result: Returns<R>,
  flags: { on?: Serves; long?: boolean; work?: boolean; session?: boolean } =
    {},
): OpSpec<A, R, O> {
  return {
    owner,
    args,
    on: flags.on ?? "any",
    long: flags.long ?? false,
    work: flags.work ?? false,
    session: flags.session ?? false,
  };
}

// Argument validators: a field checks one value, `shape` a whole request
// (and refuses a key it does not know: a typo, or a caller of another
// version, is a clear error rather than an argument silently ignored).

export type Field<T> = (v: unknown, key: string) => T;

const bad = (key: string, what: string) =>
  new UsageError(`argument "${key}" must be ${what}`);

export const str: Field<string> = (v, key) => {
  if (typeof v !== "string") {
    throw v === undefined
      ? new UsageError(`missing argument "${key}"`)
      : bad(key, "a string");
  }
  return v;
};

export const num: Field<number> = (v, key) => {
  if (typeof v !== "number" || !Number.isFinite(v)) {
    throw v === undefined
      ? new UsageError(`missing argument "${key}"`)
      : bad(key, "a number");
  }
  return v;
};

export const bool: Field<boolean> = (v, key) => {
  if (typeof v !== "boolean") throw bad(key, "true or false");
  return v;
};

export const strList: Field<string[]> = (v, key) => {
  if (!Array.isArray(v) || v.some((x) => typeof x !== "string")) {
    throw bad(key, "a list of strings");
  }
  return v as string[];
};

/** An object of strings (settings, environment). */
export const strRecord: Field<Record<string, string>> = (v, key) => {
  if (
    typeof v !== "object" || v === null || Array.isArray(v) ||
    Object.values(v).some((x) => typeof x !== "string")
  ) {
    throw bad(key, "an object of strings");
  }
  return v as Record<string, string>;
};

/** An object or a list the handler checks itself (a plan, an identity). */
export const data = <T>(): Field<T> => (v, key) => {
  if (typeof v !== "object" || v === null) {
    throw v === undefined
      ? new UsageError(`missing argument "${key}"`)
      : bad(key, "an object");
  }
  return v as T;
};

/** Absent (undefined or null) is allowed: the handler's default applies. */
export const opt = <T>(f: Field<T>): Field<T | undefined> => (v, key) =>
  v === undefined || v === null ? undefined : f(v, key);

type Shaped<S extends Record<string, Field<unknown>>> =
  & {
    [K in keyof S as undefined extends ReturnType<S[K]> ? never : K]:
      ReturnType<S[K]>;
  }
  & {
    [K in keyof S as undefined extends ReturnType<S[K]> ? K : never]?:
      ReturnType<S[K]>;
  };

/** A validator for arguments of the given fields, and no other. */
export function shape<S extends Record<string, Field<unknown>>>(
  fields: S,
): (raw: RawArgs) => Shaped<S> {
  return (raw) => {
    for (const k of Object.keys(raw)) {
      if (!Object.hasOwn(fields, k)) {
        throw new UsageError(`unknown argument "${k}"`);
      }
    }
    const out: Record<string, unknown> = {};
    for (const [k, f] of Object.entries(fields)) {
      const v = f(raw[k], k);
      if (v !== undefined) out[k] = v;
    }
    return out as Shaped<S>;
  };
}

/** Takes no arguments. */
export const none = shape({});
