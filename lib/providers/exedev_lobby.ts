/**
 * What exe.dev's lobby accepts and answers (reference §1): its VM name rules,
 * status strings, ssh destinations, JSON-lines output, `new --env` flags, and
 * its errors as one line each. Pure, so the fleet's naming reads it too.
 */
import { OhcError, UsageError } from "../errors.ts";
import type { RunResult } from "../transport/run.ts";
import type { VmStatus } from "./types.ts";

// ------------------------------------------------------------------ pure

/** exe.dev's VM name rule (reference §1.6). */
const NAME_RE = /^[a-z][a-z0-9]*(-[a-z0-9]+)*$/;

export const INVALID_NAME_MESSAGE =
  "invalid VM name, must be 5-52 characters: start with a lowercase letter, then lowercase letters or digits, with optional single hyphen separators (e.g., a-vm-name)";

/** Why exe.dev would reject this name by its shape, or null. */
export function exeDevNameError(name: string): string | null {
  if (name.length < 5 || name.length > 52 || !NAME_RE.test(name)) {
    return INVALID_NAME_MESSAGE;
  }
  return null;
}

export const RESERVED_NAME_MESSAGE =
  "invalid VM name: this VM name is not available";

/**
 * Why `new` would refuse this name before looking for its owner: its shape,
 * or the reservations that follow from the name itself (reference §1.6:
 * port-like endings, `exelet`). exe.dev's word denylist is not public, so
 * the lobby's answer still decides the rest.
 */
export function exeDevNewNameError(name: string): string | null {
  const shape = exeDevNameError(name);
  if (shape !== null) return shape;
  if (
    /-(p|port)[0-9]+$/.test(name) || /^(p|port)[0-9]*$/.test(name) ||
    /^na[0-9]+$/.test(name) || name.replaceAll("-", "").includes("exelet")
  ) {
    return RESERVED_NAME_MESSAGE;
  }
  return null;
}

const STATUSES: readonly VmStatus[] = [
  "pending",
  "running",
  "stopped",
  "failed",
  "building",
  "unknown",
];

/** exe.dev's status strings; anything new reads as "unknown". */
export function parseExeDevStatus(s: unknown): VmStatus {
  const v = typeof s === "string" ? s.toLowerCase() : "";
  return (STATUSES as readonly string[]).includes(v)
    ? v as VmStatus
    : "unknown";
}

/**
 * Splits an ssh_dest: `host`, `user@host` (e.g. `vm+name@vm.exe.xyz`).
 * The user part may itself hold `+`; the last `@` separates.
 */
export function parseSshDest(dest: string): { user?: string; host: string } {
  if (
    dest === "" || dest.startsWith("-") ||
    [...dest].some((c) => c <= " " || c === "\x7f")
  ) {
    throw new Error(`invalid ssh_dest: ${JSON.stringify(dest)}`);
  }
  const at = dest.lastIndexOf("@");
  if (at < 0) return { host: dest };
  const user = dest.slice(0, at);
  const host = dest.slice(at + 1);
  if (user === "" || host === "") {
    throw new Error(`invalid ssh_dest: ${JSON.stringify(dest)}`);
  }
  return { user, host };
}

/** Every JSON object on its own line of `text` (other lines are skipped). */
export function parseJsonLines(text: string): Record<string, unknown>[] {
  const docs: Record<string, unknown>[] = [];
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (!line.startsWith("{")) continue;
    try {
      const v = JSON.parse(line);
      if (v !== null && typeof v === "object" && !Array.isArray(v)) {
        docs.push(v as Record<string, unknown>);
      }
    } catch { /* not JSON: a text line */ }
  }
  return docs;
}

const SECRET_NAME =
  /TOKEN|SECRET|PASSW(OR)?D|API_?KEY|PRIVATE|CREDENTIAL|AUTH|COOKIE|SESSION/i;

/** Checks `new --env` entries; secrets never go on a command line. */
export function envFlags(env: Record<string, string> = {}): string[] {
  const out: string[] = [];
  for (const [k, v] of Object.entries(env)) {
    if (!/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)) {
      throw new UsageError(`invalid environment variable name: ${k}`);
    }
    if (SECRET_NAME.test(k)) {
      throw new UsageError(
        `refusing to pass ${k} to exe.dev with --env: it looks like a secret, and secrets travel on stdin only`,
      );
    }
    if (/[\n\r\0]/.test(v)) {
      throw new UsageError(`the value of ${k} must be one line`);
    }
    out.push("--env", `${k}=${v}`);
  }
  return out;
}

// ------------------------------------------------------------------ errors

export const REGISTRATION_TEXT = "Please complete registration";

export function notRegistered(
  lobby: string,
  keyPath: string | undefined,
  detail?: string,
) {
  const why = detail ? ` (${detail})` : "";
  if (keyPath === undefined) {
    return new OhcError(
      "exedev_not_registered",
      `exe.dev does not know the SSH key your \`ssh ${lobby}\` offers${why}`,
      `run \`ssh ${lobby}\` in a terminal and finish the sign-up (or register the key there), then try again; or give a key that is registered: --identity FILE`,
    );
  }
  return new OhcError(
    "exedev_not_registered",
    `this key is not registered on your exe.dev account: run ssh ${lobby}` +
      why,
    `register ${keyPath}.pub: \`ssh -i ${keyPath} ${lobby}\` and finish the sign-up, or add it with a key that is already registered: \`ssh ${lobby} ssh-key add < ${keyPath}.pub\``,
  );
}

export function firstError(docs: Record<string, unknown>[]): string | null {
  for (const d of docs) if (typeof d.error === "string") return d.error;
  return null;
}

/** One line of what a failed lobby command said. */
export function lobbyText(res: RunResult): string {
  const docs = parseJsonLines(res.stdout);
  const err = firstError(docs);
  if (err !== null) return err;
  const text = (res.stdout + "\n" + res.stderr).split("\n").map((l) => l.trim())
    .filter(Boolean);
  return text.at(-1) ?? `exit ${res.code}`;
}

export interface ExeDevKey {
  public_key: string;
  fingerprint: string;
  name?: string;
  current: boolean;
}

export interface ExeDevWhoami {
  email: string;
  region: string;
  region_display?: string;
  ssh_keys: ExeDevKey[];
}

/** The account `whoami --json` describes. */
export function parseWhoami(doc: Record<string, unknown>): ExeDevWhoami {
  const keys = Array.isArray(doc.ssh_keys) ? doc.ssh_keys : [];
  return {
    email: doc.email as string,
    region: typeof doc.region === "string" ? doc.region : "",
    region_display: typeof doc.region_display === "string"
      ? doc.region_display
      : undefined,
    ssh_keys: keys.filter((k) => k !== null && typeof k === "object").map(
      (k) => ({
        public_key: String(k.public_key ?? ""),
        fingerprint: String(k.fingerprint ?? ""),
        ...(typeof k.name === "string" ? { name: k.name } : {}),
        current: k.current === true,
      }),
    ),
  };
}

/** Maps an error message from `new` to the error people should see. */
export function newVmError(name: string, msg: string): Error {
  // Taken by another account, or on exe.dev's list of reserved words:
  // either way somebody else's, and another name may do.
  if (
    /^VM name ".*" is not available$/.test(msg) ||
    msg === "invalid VM name: this VM name is not available"
  ) {
    return new OhcError(
      "name_taken",
      `VM name "${name}" is not available`,
      "pick another name (exe.dev names are global, not per account)",
    );
  }
  if (msg.startsWith("invalid VM name")) {
    return new UsageError(`${msg}: ${name}`);
  }
  if (msg.startsWith("You have reached the maximum number of VMs")) {
    return new OhcError(
      "exedev_quota",
      `exe.dev: ${msg}`,
      "destroy a VM (ssh exe.dev ls) or upgrade your plan",
    );
  }
  return new OhcError("exedev_create_failed", `exe.dev new ${name}: ${msg}`);
}
