/**
 * The one registry of operations: every operation any machine answers,
 * declared once by its feature (lib/<feature>/rpc.ts: name, owner, where
 * it is served, argument validator, result type). `_rpc` routes by owner
 * (lib/rpc/server.ts), callers are typed by it (`OpArgs`, `OpResult`), and
 * each server builds its table with `implement`, which checks arguments
 * before a handler runs and refuses an operation of another owner.
 */
import { OhcError } from "../errors.ts";
import { DAEMON_OPS } from "../daemon/rpc.ts";
import { FLEET_OPS } from "../fleet/rpc.ts";
import { INBOX_OPS } from "../inbox/rpc.ts";
import { LINK_OPS } from "../link/rpc.ts";
import { VOYAGE_OPS } from "../voyage/rpc.ts";
import type { OpSpec, Owner } from "./op.ts";
import type { RpcContext, RpcHandler, RpcHandlers } from "./stream.ts";

const GROUPS = [DAEMON_OPS, INBOX_OPS, LINK_OPS, FLEET_OPS, VOYAGE_OPS];

type Registry =
  & typeof DAEMON_OPS
  & typeof INBOX_OPS
  & typeof LINK_OPS
  & typeof FLEET_OPS
  & typeof VOYAGE_OPS;

function gather(): Registry {
  const all: Record<string, OpSpec> = {};
  for (const group of GROUPS) {
    for (const [name, spec] of Object.entries(group)) {
      // Declared once: a second declaration is a bug, found at load.
      if (Object.hasOwn(all, name)) {
        throw new Error(`operation "${name}" is declared twice`);
      }
      all[name] = spec as OpSpec;
    }
  }
  return all as Registry;
}

export const OPS: Registry = gather();

export type OpName = keyof Registry & string;
/** What a caller passes (and a handler receives) for `N`. */
export type OpArgs<N extends OpName> = ReturnType<Registry[N]["args"]>;
export type OpResult<N extends OpName> = Registry[N] extends
  OpSpec<unknown, infer R> ? R : never;
export type OpsOf<O extends Owner> = {
  [N in OpName]: Registry[N]["owner"] extends O ? N : never;
}[OpName];

/** The operation's declaration, or undefined for a name nobody declared. */
export function opSpec(name: string): OpSpec | undefined {
  return Object.hasOwn(OPS, name)
    ? (OPS as Record<string, OpSpec>)[name]
    : undefined;
}

export type OpHandler<N extends OpName> = (
  args: OpArgs<N>,
  ctx: RpcContext,
) => Promise<OpResult<N>> | OpResult<N>;

/** Handlers for some of `owner`'s operations, by name. */
export type Implementation<O extends Owner> = {
  [N in OpsOf<O>]?: OpHandler<N>;
};

/**
 * A server's table for `owner`'s operations: each handler gets arguments
 * its declaration's validator accepted. A feature exports the result;
 * a server merges those of the features it serves.
 */
export function implement<O extends Owner>(
  owner: O,
  handlers: Implementation<O>,
): RpcHandlers {
  const table: RpcHandlers = {};
  for (const [name, h] of Object.entries(handlers)) {
    const spec = opSpec(name);
    if (!spec || spec.owner !== owner) {
      throw new OhcError(
        "internal",
        `"${name}" is not declared as an operation of the ${owner}`,
      );
    }
    const handler = h as (args: unknown, ctx: RpcContext) => unknown;
    table[name] = (async (ctx) =>
      await handler(spec.args(ctx.args), ctx)) as RpcHandler;
  }
  return table;
}

/**
 * Wraps handlers of `table` named by `pick` (e.g. operations that give
 * ships work, or that can be quiet long) with `around`.
 */
export function wrapOps(
  table: RpcHandlers,
  pick: (spec: OpSpec) => boolean,
  around: (h: RpcHandler) => RpcHandler,
): RpcHandlers {
  const out = { ...table };
  for (const [name, h] of Object.entries(table)) {
    const spec = opSpec(name);
    if (spec && pick(spec)) out[name] = around(h);
  }
  return out;
}
