/**
 * A published release: `<url>/ohcommodore-<target>` for each target, and
 * `<url>/SHA256SUMS` in sha256sum's format (`<hex>  ohcommodore-<target>`).
 * scripts/compile.ts writes it; VMs given OHCOMMODORE_RELEASE_URL download
 * their platform's binary from it (lib/deploy.ts).
 */

/** deno compile's target → @duckdb/node-bindings-<platform>. */
export const RELEASE_TARGETS: Record<string, string> = {
  "x86_64-unknown-linux-gnu": "linux-x64",
  "aarch64-unknown-linux-gnu": "linux-arm64",
  "x86_64-apple-darwin": "darwin-x64",
  "aarch64-apple-darwin": "darwin-arm64",
};

export const SUMS_FILE = "SHA256SUMS";

export const releaseBinary = (target: string) => `ohcommodore-${target}`;

/** SHA256SUMS's text for these files (name → hex sha256), sorted. */
export function sha256sums(entries: Record<string, string>): string {
  return Object.entries(entries).sort(([a], [b]) => a.localeCompare(b))
    .map(([name, hex]) => `${hex}  ${name}\n`).join("");
}
