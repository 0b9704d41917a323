/**
 * Runs CLI commands in this process against fakes: a CliContext whose
 * streams are captured buffers and whose APIs are what the test gives.
 * Nothing is spawned; what a command needs and was not given fails loudly.
 */
import type { Backends } from "../../lib/cli/backends.ts";
import { makeContext } from "../../lib/cli/context.ts";
import type { FlagshipCall } from "../../lib/cli/flagship.ts";
import type { Io } from "../../lib/cli/io.ts";
import type { DoctorProbes } from "../../lib/cli/commands/doctor.ts";
import { runParsed } from "../../lib/cli/run.ts";
import type { FleetApi } from "../../lib/fleet/api.ts";
import type { InboxApi } from "../../lib/inbox/api.ts";
import type { Machine } from "../../lib/machine.ts";
import type { VoyageApi } from "../../lib/voyage/api.ts";
import { Settings } from "../../lib/settings.ts";
import type { Identity } from "../../lib/state/identity.ts";

export interface Fakes {
  /** The machine's identity: none is the user's own machine. */
  identity?: Identity | null;
  home?: string;
  env?: Record<string, string>;
  fleet?: Partial<FleetApi>;
  inbox?: Partial<InboxApi>;
  voyage?: Partial<VoyageApi>;
  flagship?: Record<string, (args: Record<string, unknown>) => unknown>;
  backends?: Partial<Backends>;
  /** What stdin holds; a terminal when `tty`. */
  stdin?: string;
  tty?: boolean;
  /** Answers to prompts, in order. */
  answers?: string[];
  /** What doctor finds on this machine. */
  probes?: DoctorProbes;
}

export interface Ran {
  code: number;
  stdout: string;
  stderr: string;
  /** The calls the fakes saw, as [method, ...args]. */
  calls: unknown[][];
  prompts: string[];
}

export const CAPTAIN: Identity = {
  role: "captain",
  name: "alpha",
  flagship: "flagship",
  provider: { kind: "local", root: "/nonexistent" },
  created_at: "2026-01-01T00:00:00Z",
};

export const COMMODORE: Identity = {
  ...CAPTAIN,
  role: "commodore",
  name: "flagship",
};

/** A fake that records each call and answers with `impl`, or throws. */
function recorder<T extends object>(
  what: string,
  impl: Partial<T>,
  calls: unknown[][],
): T {
  return new Proxy({} as T, {
    get(_t, prop) {
      if (typeof prop !== "string" || prop === "then") return undefined;
      return (...args: unknown[]) => {
        calls.push([`${what}.${prop}`, ...args]);
        const f = (impl as Record<string, unknown>)[prop];
        if (typeof f !== "function") {
          throw new Error(`the fake ${what} has no ${prop}`);
        }
        return f(...args);
      };
    },
  });
}

/** Runs `args` as the program would, in a context built from `fakes`. */
export async function runWith(fakes: Fakes, args: string[]): Promise<Ran> {
  const calls: unknown[][] = [];
  const prompts: string[] = [];
  const answers = [...(fakes.answers ?? [])];
  const dec = new TextDecoder();
  let stdout = "";
  let stderr = "";
  const io: Io = {
    write: (s, d) => {
      if (s === "stdout") stdout += dec.decode(d);
      else stderr += dec.decode(d);
    },
    input: () =>
      fakes.stdin === undefined || fakes.tty
        ? undefined
        : new Blob([fakes.stdin]).stream(),
    stdinIsTerminal: () => !!fakes.tty,
    stderrIsTerminal: () => false,
    prompt: (m) => {
      prompts.push(m);
      return answers.shift() ?? null;
    },
  };
  const env = fakes.env ?? {};
  const home = fakes.home ?? "/nonexistent-home";
  const identity = fakes.identity ?? null;
  const machine: Machine = {
    home,
    identity,
    role: identity?.role ?? "local",
    settings: new Settings({}, (k) => env[k]),
  };
  const refuse = (what: string) => () => {
    throw new Error(`the test gave no ${what}`);
  };
  const fleet = recorder<FleetApi>("fleet", fakes.fleet ?? {}, calls);
  const config = {
    version: 1,
    flagship: {
      name: "flagship",
      ssh_dest: "flagship",
      provider: { kind: "local", root: "/nonexistent" },
      created_at: "2026-01-01T00:00:00Z",
    },
  } as const;
  // The role decides which fleet a command gets (the real dispatch).
  const backends: Backends = {
    laptop: fakes.backends?.laptop ?? (() =>
      Promise.resolve({
        requireConfig: () => Promise.resolve(config),
        fleet: () => fleet,
        transport: refuse("transport"),
        init: refuse("init"),
        scuttle: refuse("scuttle"),
        exeDevAccount: refuse("exe.dev account"),
      })),
    flagship: fakes.backends?.flagship ??
      (() => Promise.resolve({ fleet, handlers: {} })),
  };
  const flagship = ((op: string, a: Record<string, unknown> = {}) => {
    calls.push([op, a]);
    const h = fakes.flagship?.[op];
    if (!h) throw new Error(`the fake flagship has no ${op}`);
    return Promise.resolve(h(a));
  }) as FlagshipCall;
  const ctx = makeContext({
    io,
    env: (k) => env[k],
    environ: () => ({ ...env }),
    cwd: () => home,
    machine: () => Promise.resolve(machine),
    backends,
  });
  const realFleet = ctx.fleet;
  ctx.inbox = () =>
    Promise.resolve(recorder("inbox", fakes.inbox ?? {}, calls));
  ctx.voyage = async (command) => {
    await realFleet(command); // the same refusal on a ship
    return recorder("voyage", fakes.voyage ?? {}, calls);
  };
  ctx.flagship = async (command) => {
    await realFleet(command); // the same refusal on a ship
    return flagship;
  };
  const code = await runParsed(ctx, args, { probes: fakes.probes });
  return { code, stdout, stderr, calls, prompts };
}
