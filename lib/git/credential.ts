/**
 * How git reaches GitHub with the user's token: a credential helper that
 * reads a 0600 file at the moment git asks, so the token is never in any
 * argv, URL or environment. Ships keep theirs in
 * `~/.ohcommodore/secrets/gh_token`; the flagship holds one only while it
 * clones a voyage's repo (`withTokenFile`).
 */
import { writeFileAtomic } from "../state/atomic.ts";
import { paths, remotePaths } from "../state/paths.ts";
import { quoteArg } from "../transport/shell_quote.ts";

/**
 * git options whose credential helper answers with the token in
 * `tokenFile` (default: the machine's `~/.ohcommodore/secrets/gh_token`).
 * The file's path is in the argv; its content never is.
 */
export function gitCredentialArgs(tokenFile?: string): string[] {
  const file = tokenFile === undefined
    ? `"$HOME/${remotePaths.ghTokenFile}"`
    : quoteArg(tokenFile);
  const helper = '!f() { test "$1" = get || exit 0; ' +
    `f=${file}; test -r "$f" || exit 0; ` +
    'echo username=x-access-token; printf "password=%s\\n" "$(cat "$f")"; }; f';
  return ["-c", "credential.helper=", "-c", `credential.helper=${helper}`];
}

/**
 * Runs `fn` with `token` in a fresh 0600 file under the secrets dir (its
 * path passed to fn), and removes the file when fn is done; no token: fn
 * gets undefined. For a one-off clone that must leave no token behind.
 */
export async function withTokenFile<T>(
  home: string,
  token: string | undefined,
  fn: (tokenFile: string | undefined) => Promise<T>,
): Promise<T> {
  if (!token) return await fn(undefined);
  const file = `${paths.secrets(home)}/gh_token.${crypto.randomUUID()}`;
  await writeFileAtomic(file, token);
  try {
    return await fn(file);
  } finally {
    await Deno.remove(file).catch(() => {});
  }
}
