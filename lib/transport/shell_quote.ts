/**
 * The one place a remote command string is built.
 *
 * SSH carries a command as one string that the remote user's login shell
 * parses (`$SHELL -c "<string>"`). To make that shell see exactly our argv,
 * every word is wrapped in POSIX single quotes, inside which nothing is
 * special; a single quote itself is written as `'\''` (close, escaped quote,
 * reopen). Every word is quoted, even plain ones, so that no word can turn
 * into a keyword (`if`), an assignment (`A=b`), a tilde or glob expansion.
 *
 * This assumes a POSIX login shell (sh, dash, bash, zsh, ksh, busybox sh),
 * as on exe.dev and sprites VMs; fish and csh parse quotes differently.
 */

/** Quotes one word for a POSIX shell. NUL cannot be in an argv word. */
export function quoteArg(s: string): string {
  if (s.includes("\0")) {
    throw new Error("an argument cannot contain a NUL byte");
  }
  return "'" + s.replaceAll("'", "'\\''") + "'";
}

/** Quotes argv into one command line that a POSIX shell splits back exactly. */
export function quoteArgv(argv: readonly string[]): string {
  if (argv.length === 0) throw new Error("quoteArgv needs at least one word");
  return argv.map(quoteArg).join(" ");
}
