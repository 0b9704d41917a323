/**
 * `inbox ...`: on the flagship and ships, the local daemon's inbox; on the
 * laptop, the flagship's.
 */
import type { Command } from "@commander-js/extra-typings";
import { OhcError, UsageError } from "../../errors.ts";
import {
  type Envelope,
  MAX_TIMEOUT_S,
  type Message,
  type SentRecord,
  type WireRecord,
} from "../../inbox/types.ts";
import type { CallOptions } from "../../rpc/stream.ts";
import { readIdentity } from "../../state/identity.ts";
import { age, out, printJson, table } from "../render.ts";
import type { Exit } from "../program.ts";

const ID_HELP =
  "a message id, or a unique prefix of 4 or more characters (as inbox list shows)";

type InboxCall = <T>(
  op: string,
  args?: Record<string, unknown>,
  opts?: CallOptions,
) => Promise<T>;

async function inbox(): Promise<InboxCall> {
  if (await readIdentity()) {
    const { daemonCall } = await import("../../daemon/client.ts");
    return daemonCall;
  }
  const { flagshipTransport, requireConfig } = await import(
    "../../../roles/local.ts"
  );
  const { call } = await import("../../rpc/client.ts");
  const t = flagshipTransport(await requireConfig());
  return (op, args, opts) => call(t, op, args, opts);
}

const STATUSES = ["unread", "running", "pending", "done", "error"];

function decode(b64: string | null): Uint8Array {
  if (!b64) return new Uint8Array();
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function writeAll(f: typeof Deno.stdout, b: Uint8Array) {
  let off = 0;
  while (off < b.length) off += f.writeSync(b.subarray(off));
}

function oneLine(s: string, max = 40): string {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length > max ? flat.slice(0, max - 1) + "…" : flat;
}

export function registerInbox(program: Command, exit: Exit): void {
  const cmd = program.command("inbox").description(
    "durable commands between machines: send, list, and handle messages",
  );

  cmd.command("send")
    .description(
      "send a shell command to captain@<ship>, commodore@<flagship> or commodore;\n" +
        "the recipient's daemon runs it with bash -c in its checkout",
    )
    .argument("<recipient>")
    .argument("<command>", "one argument: quote it")
    .option(
      "--timeout <seconds>",
      "kill the command and everything it started after this long\n" +
        "(default 300, at most 2147483)",
    )
    .option(
      "--wait",
      "wait for the result, print its output and exit with its code",
    )
    .option("--json", "machine-readable output")
    .action(async (recipient, command, o) => {
      let timeout: number | null = null;
      if (o.timeout !== undefined) {
        timeout = Number(o.timeout);
        if (!Number.isFinite(timeout) || timeout <= 0) {
          throw new UsageError(
            `--timeout must be a positive number of seconds, not "${o.timeout}"`,
          );
        }
        if (timeout > MAX_TIMEOUT_S) {
          throw new UsageError(
            `--timeout must be at most ${MAX_TIMEOUT_S} seconds (about 24 days), not ${o.timeout}`,
          );
        }
      }
      if (command === "") throw new UsageError("the command must not be empty");
      const call = await inbox();
      const env = await call<Envelope>("inbox.send", {
        recipient,
        command,
        timeout_s: timeout,
      });
      if (!o.wait) {
        if (o.json) printJson(env);
        else out(`Message sent: ${env.id} -> ${env.recipient}`);
        return;
      }
      const res = await call<WireRecord<SentRecord>>("inbox.wait", {
        id: env.id,
      });
      if (o.json) printJson(res);
      else {
        writeAll(Deno.stdout, decode(res.stdout_b64));
        writeAll(Deno.stderr, decode(res.stderr_b64));
        if (res.status === "error" && res.exit_code === null) {
          writeAll(
            Deno.stderr,
            new TextEncoder().encode(`error: ${res.error}\n`),
          );
        }
      }
      exit.code = res.exit_code ?? 1;
    });

  cmd.command("list")
    .description(
      "list this machine's inbox (newest first) and what waits to leave it",
    )
    .option("--status <status>", `only this status: ${STATUSES.join(", ")}`)
    .option("--limit <n>", "at most this many")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      if (o.status !== undefined && !STATUSES.includes(o.status)) {
        throw new UsageError(
          `invalid status "${o.status}": one of ${STATUSES.join(", ")}`,
        );
      }
      const limit = o.limit === undefined ? undefined : Number(o.limit);
      if (limit !== undefined && !(Number.isInteger(limit) && limit > 0)) {
        throw new UsageError(
          `--limit must be a positive whole number, not "${o.limit}"`,
        );
      }
      const call = await inbox();
      const r = await call<{
        messages: WireRecord<Message>[];
        queued: {
          id: string;
          recipient: string;
          kind: string;
          command: string | null;
          created_at: string;
        }[];
      }>("inbox.list", { status: o.status, limit });
      if (o.json) return printJson(r);
      if (r.messages.length === 0) out("No messages.");
      else {
        out(table(
          ["ID", "STATUS", "SENDER", "RECIPIENT", "COMMAND", "EXIT", "AGE"],
          r.messages.map((m) => [
            m.id.slice(0, 8),
            m.status,
            m.sender,
            m.recipient,
            oneLine(m.command),
            m.exit_code === null ? "-" : String(m.exit_code),
            age(m.received_at),
          ]),
        ));
      }
      if (r.queued.length > 0 && !o.status) {
        out(`\nQUEUED (${r.queued.length}):`);
        out(table(
          ["ID", "KIND", "RECIPIENT", "COMMAND", "AGE"],
          r.queued.map((q) => [
            q.id.slice(0, 8),
            q.kind,
            q.recipient,
            oneLine(q.command ?? ""),
            age(q.created_at),
          ]),
        ));
      }
    });

  cmd.command("identity")
    .description("this machine's address, e.g. captain@alpha")
    .action(async () => out(await (await inbox())<string>("inbox.identity")));

  cmd.command("show")
    .description("everything about one message, output included")
    .argument("<id>", ID_HELP)
    .option("--json", "machine-readable output")
    .action(async (id, o) => {
      const r = await (await inbox())<
        { kind: string; record: WireRecord<Message> }
      >(
        "inbox.show",
        { id },
      );
      if (o.json) return printJson(r);
      const m = r.record;
      for (
        const [k, v] of Object.entries(m).filter(([k]) => !k.endsWith("_b64"))
      ) out(`${k.padEnd(17)} ${v === null ? "-" : String(v)}`);
      out("--- stdout" + (m.stdout_truncated ? " (truncated)" : ""));
      writeAll(Deno.stdout, decode(m.stdout_b64));
      out("--- stderr" + (m.stderr_truncated ? " (truncated)" : ""));
      writeAll(Deno.stdout, decode(m.stderr_b64));
    });

  const setter = (
    name: string,
    status: "pending" | "done" | "error",
    desc: string,
    label: string,
  ) =>
    cmd.command(name)
      .description(desc)
      .argument("<id>", ID_HELP)
      .option("--json", "machine-readable output")
      .action(async (id, o) => {
        const m = await (await inbox())<WireRecord<Message>>("inbox.set", {
          id,
          status,
        });
        if (o.json || status === "pending") printJson(m);
        else out(`${label}: ${m?.id ?? id}`);
      });
  setter(
    "read",
    "pending",
    "claim a message for handling by hand (status pending)",
    "Claimed",
  );
  setter("done", "done", "mark a message done", "Marked done");

  cmd.command("error")
    .description("mark a message failed, with a reason")
    .argument("<id>", ID_HELP)
    .argument("<message>")
    .action(async (id, message) => {
      const m = await (await inbox())<WireRecord<Message>>("inbox.set", {
        id,
        status: "error",
        error: message,
      });
      out(`Marked error: ${m?.id ?? id}`);
    });

  cmd.command("delete")
    .description("delete a message")
    .argument("<id>", ID_HELP)
    .action(async (id) => {
      const r = await (await inbox())<{ deleted: string }>("inbox.delete", {
        id,
      });
      out(`Deleted: ${r.deleted}`);
    });
}

export function registerDaemon(program: Command): void {
  const cmd = program.command("daemon").description(
    "the per-machine daemon that owns the inbox database (flagship and ships)",
  );
  const onVm = async (what: string) => {
    await (await import("../../daemon/entry.ts")).requireVm(what);
    return await import("../../daemon/control.ts");
  };
  const daemonProcess = async (verb: "run" | "supervise") => {
    const { runDaemonProcess } = await import("../../daemon/entry.ts");
    await runDaemonProcess(verb);
  };

  cmd.command("status")
    .description("is the daemon running, and what is it doing")
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const c = await onVm("status");
      const st = await c.daemonState();
      let info: Record<string, unknown> | null = null;
      if (st.answering) {
        const { daemonCall } = await import("../../daemon/client.ts");
        info = await daemonCall("daemon.status");
      }
      if (o.json) return printJson({ ...st, ...info });
      out(
        st.running
          ? `running (pid ${st.pid ?? "?"}, ${st.supervisor ?? "unsupervised"})`
          : "stopped",
      );
      if (info?.paused) {
        out("the scheduler is paused: 'ohcommodore daemon resume' starts it");
      }
      if (info) out(JSON.stringify(info));
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
      const st = await (await onVm("start")).ensureDaemon();
      out(`running (pid ${st.pid ?? "?"})`);
    },
  );
  cmd.command("stop").description("stop the daemon").action(async () => {
    out((await (await onVm("stop")).stopDaemon()) ? "stopped" : "not running");
  });
  cmd.command("restart").description("stop, then start the daemon").action(
    async () => {
      const c = await onVm("restart");
      await c.stopDaemon();
      const st = await c.ensureDaemon();
      out(`running (pid ${st.pid ?? "?"})`);
    },
  );
  const hold = (verb: "pause" | "resume") => async (o: { json?: true }) => {
    await onVm(verb);
    const { daemonCall } = await import("../../daemon/client.ts");
    const r = await daemonCall<{ paused: boolean; running: number }>(
      `daemon.${verb}`,
    );
    if (o.json) return printJson(r);
    out(
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
