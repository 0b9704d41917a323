/**
 * What every command is given (in the style of gh's cmdutil.Factory): its
 * streams, the environment, this machine, and the APIs it acts through,
 * each built only when a command asks for it. The program builds one from
 * the process (`processContext`); unit tests build one from fakes
 * (tests/helpers/cli_context.ts), so a command runs without spawning.
 */
import type { FleetApi } from "../fleet/api.ts";
import type { InboxApi } from "../inbox/api.ts";
import type { VoyageApi } from "../voyage/api.ts";
import type { Machine } from "../machine.ts";
import type { Backends, LaptopBackend } from "./backends.ts";
import { type FlagshipCall, flagshipCaller, notOnShip } from "./flagship.ts";
import type { Io } from "./io.ts";

export interface CliContext {
  io: Io;
  /** The environment (the real one after .env files are applied). */
  env(name: string): string | undefined;
  /** The whole environment, for what passes parts of it on (bootstrap). */
  environ(): Record<string, string>;
  cwd(): string;
  /** The process's exit code, set by commands that end without throwing. */
  exit: { code: number };
  /** This machine: its home, identity and settings, read once. */
  machine(): Promise<Machine>;
  /** The fleet as seen from here; `command` names it in refusals. */
  fleet(command: string): Promise<FleetApi>;
  /** This machine's inbox on a VM; the flagship's from the laptop. */
  inbox(): Promise<InboxApi>;
  /** The flagship's voyages (from the laptop or on it). */
  voyage(command: string): Promise<VoyageApi>;
  /** Calls the flagship's operations (from the laptop or on it). */
  flagship(command: string): Promise<FlagshipCall>;
  /** The user's machine's side (roles/local.ts), for this machine's home. */
  laptop(): Promise<LaptopBackend>;
  /** The role implementations (roles/), given by main.ts. */
  backends: Backends;
}

/** The context of the running program: its streams, env and home. */
export function processContext(
  backends: Backends,
  io: Io,
  home: string,
): CliContext {
  let machine: Promise<Machine> | undefined;
  return makeContext({
    io,
    backends,
    env: (k) => Deno.env.get(k),
    environ: () => Deno.env.toObject(),
    cwd: () => Deno.cwd(),
    // Loaded when a command first needs it (settings and identity).
    machine: () =>
      machine ??= import("../machine.ts").then((m) => m.readMachine(home)),
  });
}

/** A context from its parts; the APIs are chosen by this machine's role. */
export function makeContext(
  p: Pick<
    CliContext,
    "io" | "backends" | "env" | "environ" | "cwd" | "machine"
  >,
): CliContext {
  const { backends } = p;
  const ctx: CliContext = {
    ...p,
    exit: { code: 0 },
    async fleet(command) {
      const m = await ctx.machine();
      if (!m.identity) {
        const laptop = await ctx.laptop();
        return laptop.fleet(await laptop.requireConfig());
      }
      if (m.identity.role === "commodore") {
        return (await backends.flagship(m.identity, m.home)).fleet;
      }
      throw notOnShip(command, m.identity.name);
    },
    async inbox() {
      const { rpcInbox } = await import("../inbox/api.ts");
      const m = await ctx.machine();
      if (m.identity) {
        const { daemonCall } = await import("../daemon/client.ts");
        return rpcInbox((op, args, opts) =>
          daemonCall(op, args, { ...opts, home: m.home })
        );
      }
      const laptop = await ctx.laptop();
      const t = laptop.transport(await laptop.requireConfig());
      const { call } = await import("../rpc/client.ts");
      return rpcInbox((op, args, opts) => call(t, op, args, opts));
    },
    async flagship(command) {
      return flagshipCaller(backends, await ctx.machine(), command);
    },
    async laptop() {
      return await backends.laptop((await ctx.machine()).home);
    },
    async voyage(command) {
      const { voyageApi } = await import("../voyage/api.ts");
      return voyageApi(await ctx.flagship(command));
    },
  };
  return ctx;
}
