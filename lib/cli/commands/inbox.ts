/**
 * `inbox ...`: on the flagship and ships, the local daemon's inbox; on the
 * laptop, the flagship's.
 */
import type { Command } from "@commander-js/extra-typings";
import { UsageError } from "../../errors.ts";
import { INBOX_STATUSES, type InboxStatus } from "../../inbox/api.ts";
import { MAX_TIMEOUT_S } from "../../inbox/types.ts";
import type { CliContext } from "../context.ts";
import { err, out, printJson } from "../io.ts";
import { age, table } from "../render.ts";

const ID_HELP =
  "a message id, or a unique prefix of 4 or more characters (as inbox list shows)";

const STATUSES: readonly string[] = INBOX_STATUSES;

function decode(b64: string | null): Uint8Array {
  if (!b64) return new Uint8Array();
  return Uint8Array.from(atob(b64), (c) => c.charCodeAt(0));
}

function oneLine(s: string, max = 40): string {
  const flat = s.replace(/\s+/g, " ").trim();
  return flat.length > max ? flat.slice(0, max - 1) + "…" : flat;
}

export function registerInbox(program: Command, ctx: CliContext): void {
  const { io } = ctx;
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
      const inbox = await ctx.inbox();
      const env = await inbox.send(recipient, command, timeout);
      if (!o.wait) {
        if (o.json) printJson(io, env);
        else out(io, `Message sent: ${env.id} -> ${env.recipient}`);
        return;
      }
      const res = await inbox.wait(env.id);
      if (o.json) printJson(io, res);
      else {
        io.write("stdout", decode(res.stdout_b64));
        io.write("stderr", decode(res.stderr_b64));
        if (res.status === "error" && res.exit_code === null) {
          err(io, `error: ${res.error}`);
        }
      }
      ctx.exit.code = res.exit_code ?? 1;
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
      const r = await (await ctx.inbox()).list({
        status: o.status as InboxStatus | undefined,
        limit,
      });
      if (o.json) return printJson(io, r);
      if (r.messages.length === 0) out(io, "No messages.");
      else {
        out(
          io,
          table(
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
          ),
        );
      }
      if (r.queued.length > 0 && !o.status) {
        out(io, `\nQUEUED (${r.queued.length}):`);
        out(
          io,
          table(
            ["ID", "KIND", "RECIPIENT", "COMMAND", "AGE"],
            r.queued.map((q) => [
              q.id.slice(0, 8),
              q.kind,
              q.recipient,
              oneLine(q.command ?? ""),
              age(q.created_at),
            ]),
          ),
        );
      }
    });

  cmd.command("identity")
    .description("this machine's address, e.g. captain@alpha")
    .action(async () => out(io, await (await ctx.inbox()).identity()));

  cmd.command("show")
    .description("everything about one message, output included")
    .argument("<id>", ID_HELP)
    .option("--json", "machine-readable output")
    .action(async (id, o) => {
      const r = await (await ctx.inbox()).show(id);
      if (o.json) return printJson(io, r);
      const m = r.record;
      for (
        const [k, v] of Object.entries(m).filter(([k]) => !k.endsWith("_b64"))
      ) out(io, `${k.padEnd(17)} ${v === null ? "-" : String(v)}`);
      out(io, "--- stdout" + (m.stdout_truncated ? " (truncated)" : ""));
      io.write("stdout", decode(m.stdout_b64));
      out(io, "--- stderr" + (m.stderr_truncated ? " (truncated)" : ""));
      io.write("stdout", decode(m.stderr_b64));
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
        const m = await (await ctx.inbox()).set(id, status);
        if (o.json || status === "pending") printJson(io, m);
        else out(io, `${label}: ${m?.id ?? id}`);
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
      const m = await (await ctx.inbox()).set(id, "error", message);
      out(io, `Marked error: ${m?.id ?? id}`);
    });

  cmd.command("delete")
    .description("delete a message")
    .argument("<id>", ID_HELP)
    .action(async (id) => {
      const r = await (await ctx.inbox()).delete(id);
      out(io, `Deleted: ${r.deleted}`);
    });
}
