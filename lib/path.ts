/**
 * POSIX path helpers, for the few the code needs. Not `node:path`: importing
 * any `node:` module starts Deno's Node compatibility layer, about 15 ms on
 * every process that does (every `_rpc`, every daemon start), measured with
 * bench/suite.ts.
 */

/** `p` with `.`, `..` and repeated slashes resolved; relative stays relative. */
export function normalize(p: string): string {
  const abs = p.startsWith("/");
  const out: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg !== "..") out.push(seg);
    else if (out.length && out[out.length - 1] !== "..") out.pop();
    else if (!abs) out.push("..");
  }
  const s = out.join("/");
  return abs ? `/${s}` : s || ".";
}

/** The parts joined by `/`, normalized. */
export function join(...parts: string[]): string {
  return normalize(parts.filter((x) => x !== "").join("/"));
}

/** An absolute path: the parts from the last absolute one, else from cwd. */
export function resolve(...parts: string[]): string {
  let p = "";
  for (let i = parts.length - 1; i >= 0 && !p.startsWith("/"); i--) {
    if (parts[i]) p = p ? `${parts[i]}/${p}` : parts[i];
  }
  return normalize(p.startsWith("/") ? p : `${Deno.cwd()}/${p}`);
}

/** The last part of `p` (trailing slashes ignored). */
export function basename(p: string): string {
  const s = p.replace(/\/+$/, "");
  return s.slice(s.lastIndexOf("/") + 1);
}

/** All of `p` but its last part. */
export function dirname(p: string): string {
  const s = p.replace(/\/+$/, "");
  if (s === "") return p.startsWith("/") ? "/" : ".";
  const i = s.lastIndexOf("/");
  if (i < 0) return ".";
  return i === 0 ? "/" : s.slice(0, i);
}
