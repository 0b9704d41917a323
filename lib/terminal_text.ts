/**
 * Text from users (task subjects, plan names, commands) shown on a
 * terminal: control characters are printed escaped (`\n`, `\x1b`), so a
 * subject cannot move the cursor, recolour the screen or break a table
 * row.
 */
// deno-lint-ignore no-control-regex
const CONTROL = /[\x00-\x1f\x7f-\x9f]/g;
const NAMED: Record<string, string> = { "\n": "\\n", "\r": "\\r", "\t": "\\t" };

export function escapeControls(s: string): string {
  return s.replace(
    CONTROL,
    (c) => NAMED[c] ?? `\\x${c.charCodeAt(0).toString(16).padStart(2, "0")}`,
  );
}
