/** Secrets an agent reads from files only their owner may read. */
import { OhcError } from "../../../errors.ts";
import { isObject } from "./stream.ts";

/**
 * Reads a secret from a file that only its owner may read (no group/other
 * bits). Trailing whitespace is dropped. Never puts the value in an error.
 */
export function readSecretFile(path: string, what: string): string {
  let info: Deno.FileInfo;
  try {
    info = Deno.statSync(path);
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      throw new OhcError(
        "secret_missing",
        `${what} file ${path} does not exist`,
        "write it with mode 0600 (umask 077; printf %s TOKEN > FILE)",
      );
    }
    throw e;
  }
  if (!info.isFile) {
    throw new OhcError("secret_missing", `${what} file ${path} is not a file`);
  }
  const mode = (info.mode ?? 0) & 0o777;
  if ((mode & 0o077) !== 0) {
    throw new OhcError(
      "secret_perms",
      `${what} file ${path} is readable by others (mode ${
        mode.toString(8).padStart(4, "0")
      })`,
      `chmod 600 ${path}`,
    );
  }
  const value = Deno.readTextFileSync(path).replace(/\s+$/, "");
  if (value === "") {
    throw new OhcError("secret_missing", `${what} file ${path} is empty`);
  }
  if (value.includes("\0") || value.includes("\n")) {
    throw new OhcError(
      "secret_invalid",
      `${what} file ${path} must hold one line`,
    );
  }
  return value;
}

/**
 * Reads a JSON object of variables from a file only its owner may read
 * (the same checks as `readSecretFile`); names outside the agent
 * allow-list are refused, never shown with their values.
 */
export function readSecretEnvFile(
  path: string,
  allowed: readonly string[],
): Record<string, string> {
  const text = readSecretFile(path, "the agent environment");
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch {
    throw new OhcError(
      "secret_invalid",
      `the agent environment file ${path} is not JSON`,
    );
  }
  if (!isObject(v)) {
    throw new OhcError(
      "secret_invalid",
      `the agent environment file ${path} does not hold an object`,
    );
  }
  const out: Record<string, string> = {};
  for (const [k, val] of Object.entries(v)) {
    if (!allowed.includes(k) || typeof val !== "string") {
      throw new OhcError(
        "secret_invalid",
        `the agent environment file ${path} holds ${
          JSON.stringify(k)
        }, which is not an allowed agent variable`,
      );
    }
    out[k] = val;
  }
  return out;
}
