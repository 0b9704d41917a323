/**
 * A load generator for inbox tests: run with HOME set to a VM's home, it
 * sends `count` messages to `recipient` through that VM's daemon, one after
 * the other, and prints their ids as JSON. The daemon socket is the API the
 * CLI uses too; this skips only the CLI's process start per message.
 *
 *   deno run -A tests/helpers/sender.ts <recipient> <count> [command]
 */
import { daemonCall } from "../../lib/daemon/client.ts";
import type { Envelope } from "../../lib/inbox/types.ts";

const [recipient, countArg, command] = Deno.args;
const count = Number(countArg);
const ids: string[] = [];
for (let i = 0; i < count; i++) {
  for (let attempt = 0;; attempt++) {
    try {
      const env = await daemonCall<Envelope>("inbox.send", {
        recipient,
        command: command ?? 'echo "$OHC_MESSAGE_ID" >> "$HOME/ids.txt"',
        timeout_s: null,
      }, { home: Deno.env.get("HOME")! });
      ids.push(env.id);
      break;
    } catch (e) {
      // The sender's own daemon may be restarting; the CLI would fail here.
      if (attempt > 50) throw e;
      await new Promise((r) => setTimeout(r, 100));
    }
  }
}
console.log(JSON.stringify(ids));
