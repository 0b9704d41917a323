/**
 * SSH public keys as exe.dev stores them: canonical `type base64` (the
 * comment dropped, like Go's ssh.MarshalAuthorizedKey), the comment kept as
 * the key's name, fingerprints `SHA256:<base64 without padding>`.
 */

const KEY_TYPES = new Set([
  "ssh-ed25519",
  "ssh-rsa",
  "ssh-dss",
  "ecdsa-sha2-nistp256",
  "ecdsa-sha2-nistp384",
  "ecdsa-sha2-nistp521",
  "sk-ssh-ed25519@openssh.com",
  "sk-ecdsa-sha2-nistp256@openssh.com",
]);

export interface ParsedKey {
  /** `type base64`, no comment. */
  canonical: string;
  type: string;
  blob: Uint8Array;
  comment: string;
}

function b64decode(s: string): Uint8Array | null {
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(s)) return null;
  try {
    const bin = atob(s);
    const out = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
    return out;
  } catch {
    return null;
  }
}

function b64encode(bytes: Uint8Array): string {
  let bin = "";
  for (const b of bytes) bin += String.fromCharCode(b);
  return btoa(bin);
}

/** The type string embedded at the start of an SSH key blob. */
function blobType(blob: Uint8Array): string | null {
  if (blob.length < 4) return null;
  const len = (blob[0] << 24) | (blob[1] << 16) | (blob[2] << 8) | blob[3];
  if (len <= 0 || len > blob.length - 4) return null;
  return new TextDecoder().decode(blob.subarray(4, 4 + len));
}

/**
 * Parses one authorized_keys line (`[options] type base64 [comment]`), like
 * Go's ssh.ParseAuthorizedKey on the first usable line. Throws
 * `ssh: no key found` like Go does.
 */
export function parseAuthorizedKey(text: string): ParsedKey {
  for (const raw of text.split("\n")) {
    const line = raw.trim();
    if (line === "" || line.startsWith("#")) continue;
    const fields = line.split(/\s+/);
    // Skip an options field when the key type comes second.
    let start = 0;
    if (
      !KEY_TYPES.has(fields[0]) && fields.length > 1 && KEY_TYPES.has(fields[1])
    ) {
      start = 1;
    }
    const type = fields[start];
    const data = fields[start + 1];
    if (!KEY_TYPES.has(type) || data === undefined) continue;
    const blob = b64decode(data);
    if (blob === null || blobType(blob) !== type) continue;
    return {
      canonical: `${type} ${b64encode(blob)}`,
      type,
      blob,
      comment: fields.slice(start + 2).join(" "),
    };
  }
  throw new Error("ssh: no key found");
}

/** `SHA256:…` as ssh-keygen -l prints it. */
export async function fingerprint(key: ParsedKey): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", key.blob as Uint8Array<ArrayBuffer>),
  );
  return "SHA256:" + b64encode(digest).replace(/=+$/, "");
}

/** exe.dev's SanitizeComment: drops shell metacharacters, trims. */
export function sanitizeComment(c: string): string {
  return c.replace(/[;|$`&<>(){}\\'"!*?\n\r\t]/g, "").trim().slice(0, 64);
}
