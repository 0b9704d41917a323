/**
 * `voyage shell`: a person watching a voyage. One ship: its tmux session
 * `voyage` (or, with --raw, a shell in its checkout). No ship named: the
 * fleet view, a tmux session here (on its own server,
 * `~/.ohcommodore/view.sock`) with one window per ship, each running
 * `voyage shell ID SHIP`; it goes when you detach from it.
 */
import { UsageError } from "../../errors.ts";
import { paths } from "../../state/paths.ts";
import { quoteArgv } from "../../transport/shell_quote.ts";
import type { VoyageStatus } from "../../voyage/rpc.ts";
import {
  resolveVoyageShip,
  shipNumber,
} from "../../voyage/flagship/ship_names.ts";
import type { CliContext } from "../context.ts";

/**
 * On the ship: attach to (or start) its session `voyage`. TMUX is unset:
 * from inside a tmux (the fleet view's window, a user's own) tmux would
 * refuse to attach.
 */
const ATTACH =
  'unset TMUX; exec tmux -S "$HOME/.ohcommodore/tmux.sock" new-session -A -s voyage -n captain';
/** On the ship: a login shell in the voyage's checkout. */
const RAW = 'cd "$HOME/$1" 2>/dev/null; exec "${SHELL:-bash}" -l';

export async function voyageShell(
  ctx: CliContext,
  id: string | undefined,
  ship: string | undefined,
  o: { raw?: boolean },
): Promise<number> {
  // Nothing is asked of the flagship before this is known.
  if (!o.raw && !ctx.io.stdinIsTerminal()) {
    throw new UsageError(
      "voyage shell attaches to tmux and needs a terminal: run it in one, or pass --raw for a plain shell on the ship that reads stdin",
    );
  }
  const s = await (await ctx.voyage("voyage shell")).status(id);
  const v = s.voyage.id;
  const live = s.ships.filter((x) => x.state !== "gone").map((x) => x.ship);
  if (ship === undefined && !o.raw) return await fleetView(ctx, v, live);
  let target: string;
  if (ship === undefined) {
    target = live[0];
    if (!target) throw noShips(s);
  } else {
    target = resolveVoyageShip(v, s.ships.map((x) => x.ship), ship);
    if (!live.includes(target)) {
      throw new UsageError(
        `ship ${target} of voyage ${v} is gone (the voyage is ${s.voyage.state}); ${
          live.length ? `its ships: ${live.join(", ")}` : "it has no ships"
        }`,
      );
    }
  }
  const { shipCheckout } = await import("../../voyage/protocol.ts");
  const argv = o.raw
    ? ["sh", "-c", RAW, "sh", shipCheckout(v)]
    : ["sh", "-c", ATTACH];
  // As `ship ssh` does: through the flagship from the laptop, directly on it.
  return await (await ctx.fleet("voyage shell")).ssh(
    target,
    argv,
    ctx.io.stdinIsTerminal(),
  );
}

function noShips(s: VoyageStatus): UsageError {
  return new UsageError(
    `voyage ${s.voyage.id} has no ships left (it is ${s.voyage.state}); its record stays: voyage logs, tasks, clone`,
  );
}

/** The name of a voyage's fleet view session. */
export const viewSession = (voyage: string) => `voyage-${voyage}`;

async function tmux(
  home: string,
  args: string[],
  env?: Record<string, string>,
) {
  const r = await new Deno.Command("tmux", {
    args: ["-S", paths.viewSocket(home), ...args],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env,
  }).output();
  return { ok: r.success, err: new TextDecoder().decode(r.stderr).trim() };
}

/**
 * One window per ship, each attached to that ship's session; then this
 * terminal attaches to the view. When it detaches, the view goes.
 */
async function fleetView(
  ctx: CliContext,
  voyage: string,
  ships: string[],
): Promise<number> {
  const { home } = await ctx.machine();
  if (ships.length === 0) {
    throw new UsageError(
      `voyage ${voyage} has no ships left; its record stays: voyage logs, tasks, clone`,
    );
  }
  const { selfBinary } = await import("../../daemon/control.ts");
  const session = viewSession(voyage);
  await tmux(home, ["kill-session", "-t", `=${session}`]);
  const windowOf = (ship: string) => {
    const n = shipNumber(voyage, ship);
    return n === null ? ship : `ship-${n}`;
  };
  const command = (ship: string) =>
    quoteArgv([selfBinary(home), "voyage", "shell", voyage, ship]);
  for (const [i, ship] of ships.entries()) {
    const r = i === 0
      ? await tmux(home, [
        "new-session",
        "-d",
        "-s",
        session,
        "-n",
        windowOf(ship),
        "-x",
        "200",
        "-y",
        "50",
        command(ship),
        // In the same breath: a window whose ship could not be reached
        // keeps its last words, and the view does not vanish with it.
        // (The server is the views' own.)
        ";",
        "set-option",
        "-g",
        "remain-on-exit",
        "on",
      ])
      : await tmux(home, [
        "new-window",
        "-d",
        "-t",
        `=${session}:`,
        "-n",
        windowOf(ship),
        command(ship),
      ]);
    if (!r.ok) {
      await tmux(home, ["kill-session", "-t", `=${session}`]);
      throw new Error(`cannot open the fleet view: tmux: ${r.err}`);
    }
  }
  await tmux(home, ["select-window", "-t", `=${session}:^`]);
  const env = ctx.environ();
  delete env.TMUX; // attaching from inside a tmux is refused otherwise
  const code = (await new Deno.Command("tmux", {
    args: ["-S", paths.viewSocket(home), "attach-session", "-t", `=${session}`],
    stdin: "inherit",
    stdout: "inherit",
    stderr: "inherit",
    env,
    clearEnv: true,
  }).output()).code;
  await tmux(home, ["kill-session", "-t", `=${session}`]);
  return code;
}
