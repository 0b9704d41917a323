/**
 * Helpers for tests of the inbox store and the database under it, against
 * real DuckDB (no mocks): child processes are real `deno` processes on the
 * same database file.
 */
import assert from "node:assert/strict";
import { join } from "node:path";
import { OhcError } from "../../lib/errors.ts";
import { type InboxStore, openStore } from "../../lib/inbox/store.ts";
import type { NewMessage } from "../../lib/inbox/types.ts";

export const ROOT = new URL("../../", import.meta.url);
export const STORE_URL = new URL("lib/inbox/store.ts", ROOT).href;
export const DB_URL = new URL("lib/db/database.ts", ROOT).href;
export const MACHINE_DB_URL = new URL("lib/daemon/database.ts", ROOT).href;
export const dec = new TextDecoder();
export const enc = new TextEncoder();

export function msg(id: string, extra: Partial<NewMessage> = {}): NewMessage {
  return {
    id,
    sender: "captain@alpha",
    recipient: "captain@beta",
    command: `echo ${id}`,
    ...extra,
  };
}

export async function withStore(
  fn: (s: InboxStore, path: string) => Promise<void>,
  opts: { maxOutputBytes?: number } = {},
): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "inbox_store_test_" });
  const path = join(dir, "data.duckdb");
  const store = await openStore(path, opts);
  try {
    await fn(store, path);
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true });
  }
}

export async function rejectsWith(
  p: Promise<unknown>,
  code: string,
  re?: RegExp,
): Promise<OhcError> {
  try {
    await p;
  } catch (err) {
    assert.ok(err instanceof OhcError, `expected OhcError, got ${err}`);
    assert.equal(err.code, code, err.message);
    if (re) assert.match(err.message, re);
    return err;
  }
  assert.fail(`expected rejection with ${code}`);
}

/** Runs a TypeScript snippet with `deno eval` (all permissions) at the project root. */
export async function denoEval(
  code: string,
): Promise<{ code: number; stdout: string; stderr: string }> {
  return await output(["eval", code]);
}

/** Runs a snippet with `deno run` and only the given permissions. */
export async function denoRun(
  code: string,
  perms: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const file = await Deno.makeTempFile({ suffix: ".ts" });
  try {
    await Deno.writeTextFile(file, code);
    const config = new URL("deno.json", ROOT).pathname;
    return await output(["run", "--config", config, ...perms, file]);
  } finally {
    await Deno.remove(file);
  }
}

async function output(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(Deno.execPath(), {
    args,
    cwd: ROOT,
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

/** Every byte value, invalid UTF-8 and quotes, repeated to `size` bytes. */
export function nastyBytes(size: number): Uint8Array {
  const unit = new Uint8Array([
    ...Array.from({ length: 256 }, (_, i) => i),
    0xc3, // truncated 2-byte sequence
    0xff,
    0xfe, // never valid in UTF-8
    0xed,
    0xa0,
    0x80, // encoded surrogate
    ...enc.encode(`'";\\ $(rm -rf /) \`x\` ''\0`),
  ]);
  const out = new Uint8Array(size);
  for (let i = 0; i < size; i += unit.length) {
    out.set(unit.subarray(0, Math.min(unit.length, size - i)), i);
  }
  return out;
}
