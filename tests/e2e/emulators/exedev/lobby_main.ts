/**
 * The lobby sshd's ForceCommand: `deno run -A lobby_main.ts <emulator dir>`.
 * Reads the command line from $SSH_ORIGINAL_COMMAND and the key the client
 * authenticated with from $SSH_USER_AUTH (sshd's ExposeAuthInfo), answers
 * like exe.dev, exits with its status. Unregistered keys get the
 * registration message and exit 1, as on exe.dev.
 */

import { REGISTRATION_MESSAGE, runLobby, type Session } from "./lobby.ts";
import { parseAuthorizedKey } from "./keys.ts";
import { FileStore } from "./store.ts";
import { RealMachines } from "./vm.ts";

function writeAll(text: string): void {
  const bytes = new TextEncoder().encode(text);
  let off = 0;
  while (off < bytes.length) off += Deno.stdout.writeSync(bytes.subarray(off));
}

async function readStdin(limit: number): Promise<string> {
  const chunks: Uint8Array[] = [];
  let total = 0;
  const reader = Deno.stdin.readable.getReader();
  try {
    while (total < limit) {
      const { value, done } = await reader.read();
      if (done) break;
      chunks.push(value);
      total += value.length;
    }
  } finally {
    reader.releaseLock();
  }
  const all = new Uint8Array(total);
  let off = 0;
  for (const c of chunks) {
    all.set(c, off);
    off += c.length;
  }
  return new TextDecoder().decode(all.subarray(0, limit));
}

function sessionKey(): string | null {
  const file = Deno.env.get("SSH_USER_AUTH");
  if (!file) return null;
  try {
    for (const line of Deno.readTextFileSync(file).split("\n")) {
      if (line.startsWith("publickey ")) {
        return parseAuthorizedKey(line.slice("publickey ".length)).canonical;
      }
    }
  } catch { /* unreadable: treat as unknown */ }
  return null;
}

const dir = Deno.args[0];
const store = new FileStore(dir);
const machines = new RealMachines(dir);
const publicKey = sessionKey();
const state = await store.read();
if (publicKey === null || !state.keys.some((k) => k.publicKey === publicKey)) {
  writeAll(REGISTRATION_MESSAGE);
  Deno.exit(1);
}
const session: Session = { publicKey, readStdin, write: writeAll };
let code: number;
try {
  code = await runLobby(Deno.env.get("SSH_ORIGINAL_COMMAND") ?? "", {
    store,
    machines,
    session,
  });
} catch (e) {
  machines.log(`lobby crashed: ${(e as Error).stack ?? e}`);
  writeAll("exe.dev emulator: internal error (see emulator.log)\n");
  code = 1;
}
Deno.exit(code);
