import { OhcError } from "../errors.ts";

/**
 * JSON state files: validated on read, written atomically (temp file in the
 * same directory, fsync, rename), and every read-modify-write under an
 * advisory lock on a sibling `.lock` file, so concurrent commands never lose
 * an update.
 */

/** Reads and validates a JSON file; null if it does not exist. */
export async function readJsonFile<T>(
  path: string,
  parse: (v: unknown, file: string) => T,
  recoverHint?: string,
): Promise<T | null> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) return null;
    throw e;
  }
  try {
    return parse(JSON.parse(text), path);
  } catch (e) {
    const why = e instanceof Error ? e.message : String(e);
    throw new OhcError(
      "corrupt_state",
      `${path} is corrupt: ${why.replace(`${path}: `, "")}`,
      recoverHint ?? `move it aside (mv ${path} ${path}.bad) and retry`,
    );
  }
}

/** Writes JSON atomically with the given mode (default 0600). */
export async function writeJsonAtomic(
  path: string,
  value: unknown,
  mode = 0o600,
): Promise<void> {
  await writeFileAtomic(path, JSON.stringify(value, null, 2) + "\n", mode);
}

export async function writeFileAtomic(
  path: string,
  data: string | Uint8Array,
  mode = 0o600,
): Promise<void> {
  const dir = path.slice(0, path.lastIndexOf("/")) || ".";
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const tmp = `${path}.tmp.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}`;
  const f = await Deno.open(tmp, {
    write: true,
    createNew: true,
    mode,
  });
  try {
    const bytes = typeof data === "string"
      ? new TextEncoder().encode(data)
      : data;
    let off = 0;
    while (off < bytes.length) off += await f.write(bytes.subarray(off));
    await f.sync();
  } finally {
    f.close();
  }
  try {
    await Deno.chmod(tmp, mode); // the umask may have narrowed it
    await Deno.rename(tmp, path);
  } catch (e) {
    await Deno.remove(tmp).catch(() => {});
    throw e;
  }
}

/** Runs fn while holding an exclusive advisory lock tied to `path`. */
export async function withLock<T>(
  path: string,
  fn: () => Promise<T>,
): Promise<T> {
  const dir = path.slice(0, path.lastIndexOf("/")) || ".";
  await Deno.mkdir(dir, { recursive: true, mode: 0o700 });
  const lock = await Deno.open(`${path}.lock`, {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  try {
    await lock.lock(true);
    return await fn();
  } finally {
    lock.close(); // closing releases the lock
  }
}

/** Read-modify-write of a JSON file under its lock. */
export async function updateJsonFile<T, R>(
  path: string,
  parse: (v: unknown, file: string) => T,
  empty: () => T,
  fn: (current: T) => Promise<R> | R,
  recoverHint?: string,
): Promise<R> {
  return await withLock(path, async () => {
    const current = (await readJsonFile(path, parse, recoverHint)) ?? empty();
    const result = await fn(current);
    await writeJsonAtomic(path, current);
    return result;
  });
}
