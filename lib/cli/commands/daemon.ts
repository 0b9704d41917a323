/**
 * `daemon ...`: the per-machine daemon that owns the inbox database, on the
 * flagship and on ships (refused on the user's machine).
 */
import type { Command } from "@commander-js/extra-typings";
import { OhcError } from "../../errors.ts";
import { notOnVm } from "../../daemon/entry.ts";
import type { CliContext } from "../context.ts";
import { out, printJson } from "../io.ts";

/**
 * The daemon as its commands see it (lib/daemon/control.ts and its socket
 * in the program; a fake in unit tests).
 */
export interface DaemonApi {
  state(): Promise<{
    running: boolean;
    answering: boolean;
    pid: number | null;
    supervisor: string | null;
  }>;
  start(): Promise<{ pid: number | null }>;
  /** false when it was not running. */
  stop(): Promise<boolean>;
  call<T>(op: string): Promise<T>;
}

/** This machine's daemon, where this machine is a VM. */
export async function machineDaemon(
  ctx: CliContext,
  what: string,
): Promise<DaemonApi> {
  const m = await ctx.machine();
  if (!m.identity) throw notOnVm(what);
  const c = await import("../../daemon/control.ts");
  const { daemonCall } = await import("../../daemon/client.ts");
  return {
    state: () => c.daemonState(m.home),
    start: () => c.ensureDaemon(m.home),
    stop: () => c.stopDaemon(m.home),
    call: (op) => daemonCall(op, {}, { home: m.home }),
  };
}

export function registerDaemon(
  program: Command,
  ctx: CliContext,
  daemon: (what: string) => Promise<DaemonApi> = (what) =>
    machineDaemon(ctx, what),
): void {
  const { io } = ctx;
  const cmd = program.command("daemon").description(
    "the per-machine daemon that owns the inbox database (flagship and ships)",
  );
  const daemonProcess = async (verb: "run" | "supervise") => {
    const { runDaemonProcess } = await import("../../daemon/entry.ts");
    await runDaemonProcess(verb, (await ctx.machine()).home);
  };

  cmd.command("status")
    .description("is the daemon running, and what is it doing")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const d = await daemon("status");
      const st = await d.state();
      let info: Record<string, unknown> | null = null;
      if (st.answering) info = await d.call("daemon.status");
      if (o.json) return printJson(io, { ...st, ...info });
      out(
        io,
        st.running
          ? `running (pid ${st.pid ?? "?"}, ${st.supervisor ?? "unsupervised"})`
          : "stopped",
      );
      if (info?.paused) {
        out(
          io,
          "the scheduler is paused: 'ohcommodore daemon resume' starts it",
        );
      }
      if (info) out(io, JSON.stringify(info));
      if (!st.running) {
        throw new OhcError(
          "daemon_down",
          "the daemon is not running",
          "ohcommodore daemon start",
        );
      }
    });
  cmd.command("start").description("start the daemon (supervised)").action(
    async () => {
      const st = await (await daemon("start")).start();
      out(io, `running (pid ${st.pid ?? "?"})`);
    },
  );
  cmd.command("stop").description("stop the daemon").action(async () => {
    out(io, (await (await daemon("stop")).stop()) ? "stopped" : "not running");
  });
  cmd.command("restart").description("stop, then start the daemon").action(
    async () => {
      const d = await daemon("restart");
      await d.stop();
      const st = await d.start();
      out(io, `running (pid ${st.pid ?? "?"})`);
    },
  );
  const hold = (verb: "pause" | "resume") => async (o: { json?: true }) => {
    const r = await (await daemon(verb)).call<
      { paused: boolean; running: number }
    >(`daemon.${verb}`);
    if (o.json) return printJson(io, r);
    out(
      io,
      r.paused
        ? `paused: nothing new starts${
          r.running ? ` (${r.running} running finish first)` : ""
        }; 'ohcommodore daemon resume' goes on`
        : "resumed",
    );
  };
  cmd.command("pause")
    .description(
      "hold the scheduler: unread messages wait, running ones finish (kept over restarts)",
    )
    .option("--json", "machine-readable output")
    .action(hold("pause"));
  cmd.command("resume")
    .description("let a paused scheduler run messages again")
    .option("--json", "machine-readable output")
    .action(hold("resume"));
  cmd.command("run", { hidden: true })
    .description("run the daemon in the foreground (the supervisor does this)")
    .action(() => daemonProcess("run"));
  cmd.command("supervise", { hidden: true })
    .description("keep the daemon running (started by 'daemon start')")
    .action(() => daemonProcess("supervise"));
}
