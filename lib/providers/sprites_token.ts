/**
 * Where the sprites token comes from on the user's machine, so `init` can
 * hand it to the flagship (which has no CLI and no login):
 *
 * 1. `$SPRITE_TOKEN` (the CLI's legacy override) or `$SPRITES_TOKEN`;
 * 2. the `sprite` CLI's login: `~/.sprites/sprites.json` names the selected
 *    API URL and org (`current_selection`), and the org's entry (in that
 *    file, or in the per-user file `users[].config_path` names) holds the
 *    token itself (`api_token`/`token`, with the keyring disabled) or a
 *    `keyring_key`: the account of a keyring item whose service is
 *    `sprites-cli:<user id>` (else `sprites-cli:manual-tokens` or
 *    `sprites-cli`). That item is read from the CLI's file keyring
 *    (`~/.sprites/keyring/<service>/<key>`, `:` as `-`), else with macOS
 *    `security` or Linux `secret-tool`.
 *
 * The CLI documents its files as "managed by the CLI; format may evolve",
 * and the keyring layout comes from third-party readers of it; anything
 * missing or malformed falls through to the next source. No token value is
 * ever part of an error or of a command line.
 */
import { DEFAULT_API_URL } from "./sprites_api.ts";

export interface SpriteCredentials {
  token: string;
  /** The org the token belongs to, when known. */
  org?: string;
  /** The API it is for. */
  url: string;
  /** Where it was found, for messages (never the token). */
  source: string;
}

export interface FindTokenOptions {
  /** The org asked for (--org, $SPRITE_ORG); else the CLI's selection. */
  org?: string;
  env?: Record<string, string | undefined>;
  home?: string;
  /** Reads an OS keyring item; default: `security` or `secret-tool`. */
  keyring?: (service: string, account: string) => Promise<string | null>;
}

type Json = Record<string, unknown>;

const obj = (v: unknown): Json | null =>
  v && typeof v === "object" && !Array.isArray(v) ? v as Json : null;
const str = (v: unknown): string | null =>
  typeof v === "string" && v.trim() !== "" ? v.trim() : null;

async function readJson(path: string): Promise<Json | null> {
  try {
    return obj(JSON.parse(await Deno.readTextFile(path)));
  } catch {
    return null;
  }
}

/** The org a token names (`org-slug/…/token-value`), if it names one. */
export function orgOfToken(token: string): string | undefined {
  const parts = token.split("/");
  return parts.length >= 3 && parts[0] ? parts[0] : undefined;
}

/** The sprites token for this machine's user, or null when none is found. */
export async function findSpriteToken(
  o: FindTokenOptions = {},
): Promise<SpriteCredentials | null> {
  const env = o.env ?? Deno.env.toObject();
  const home = o.home ?? env.HOME ?? "";
  const root = await readJson(`${home}/.sprites/sprites.json`) ??
    await readJson(`${home}/.sprites/config.json`);
  const selection = obj(root?.current_selection);
  const url = (str(env.SPRITES_API_URL) ?? str(selection?.url) ??
    DEFAULT_API_URL).replace(/\/+$/, "");
  const org = o.org ?? str(env.SPRITE_ORG) ?? str(env.SPRITES_ORG) ??
    undefined;

  for (const k of ["SPRITE_TOKEN", "SPRITES_TOKEN"]) {
    const token = str(env[k]);
    if (token) {
      return { token, org: org ?? orgOfToken(token), url, source: `$${k}` };
    }
  }
  if (!root) return null;
  const wanted = org ?? str(selection?.org);
  if (!wanted) return null;
  const user = str(root.current_user);
  const trees: Json[] = [];
  if (user && !/[/\\\0]/.test(user) && user !== "." && user !== "..") {
    const users = Array.isArray(root.users) ? root.users : [];
    const entry = users.map(obj).find((u) => u?.id === user);
    const hash = Array.from(
      new Uint8Array(
        await crypto.subtle.digest("SHA-256", new TextEncoder().encode(user)),
      ).subarray(0, 8),
      (b) => b.toString(16).padStart(2, "0"),
    ).join("");
    for (
      const path of [
        str(entry?.config_path),
        `${home}/.sprites/users/${user}-${hash}.json`,
        `${home}/.sprites/users/${user}.json`,
      ]
    ) {
      const t = path ? await readJson(path) : null;
      if (t) {
        trees.push(t);
        break;
      }
    }
  }
  trees.push(root);
  const keyring = o.keyring ?? osKeyring;
  for (const tree of trees) {
    const orgs = obj(obj(obj(tree.urls)?.[url])?.orgs);
    const entry = obj(orgs?.[wanted]);
    if (!entry) continue;
    const found = (token: string, source: string): SpriteCredentials => ({
      token,
      org: wanted,
      url,
      source,
    });
    const inline = str(entry.api_token) ?? str(entry.token);
    if (inline) return found(inline, "~/.sprites/sprites.json");
    const key = str(entry.keyring_key);
    if (!key || key.includes("\0")) continue;
    const owner = str(entry.user_id) ?? user;
    const services = [
      ...(owner && !/[/\\\0]/.test(owner) ? [`sprites-cli:${owner}`] : []),
      "sprites-cli:manual-tokens",
      "sprites-cli",
    ];
    for (const service of services) {
      const fromFile = await fileKeyring(home, service, key);
      if (fromFile) return found(fromFile, "the sprite CLI's file keyring");
    }
    for (const service of services) {
      const v = await keyring(service, key);
      if (v) return found(unwrapKeyring(v), "the sprite CLI's keyring");
    }
  }
  return null;
}

/** go-keyring stores non-ASCII values as base64 behind a marker. */
function unwrapKeyring(v: string): string {
  const marker = "go-keyring-base64:";
  const t = v.trim();
  if (!t.startsWith(marker)) return t;
  try {
    return new TextDecoder().decode(
      Uint8Array.from(atob(t.slice(marker.length)), (c) => c.charCodeAt(0)),
    ).trim();
  } catch {
    return t;
  }
}

async function fileKeyring(
  home: string,
  service: string,
  key: string,
): Promise<string | null> {
  const part = (s: string) => s.replaceAll(":", "-");
  if (part(key).split("/").some((p) => p === "..")) return null;
  for (const dir of [".sprites", ".sprite"]) {
    try {
      const v = (await Deno.readTextFile(
        `${home}/${dir}/keyring/${part(service)}/${part(key)}`,
      )).trim();
      if (v) return unwrapKeyring(v);
    } catch { /* not there */ }
  }
  return null;
}

/** The OS keyring: macOS `security`, else the Secret Service (Linux). */
async function osKeyring(
  service: string,
  account: string,
): Promise<string | null> {
  const tries: [string, string[]][] = Deno.build.os === "darwin"
    ? [[
      "/usr/bin/security",
      ["find-generic-password", "-w", "-s", service, "-a", account],
    ]]
    : [["secret-tool", ["lookup", "service", service, "username", account]]];
  for (const [cmd, args] of tries) {
    try {
      const r = await new Deno.Command(cmd, {
        args,
        stdin: "null",
        stdout: "piped",
        stderr: "null",
        signal: AbortSignal.timeout(10_000),
      }).output();
      const v = new TextDecoder().decode(r.stdout).trim();
      if (r.success && v) return v;
    } catch { /* no such tool */ }
  }
  return null;
}

/** What to tell a user who has no token anywhere. */
export const NO_TOKEN_HINT =
  "log in with `sprite login` (or `sprite auth setup --token ...`), or set SPRITE_TOKEN";
