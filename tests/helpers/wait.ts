/**
 * Waiting on an event in tests: poll `fn` until it gives a value, bounded.
 * Never a fixed sleep: on a loaded machine the event comes late, and on an
 * idle one the test need not wait for the worst case.
 */
export async function until<T>(
  what: string,
  fn: () =>
    | T
    | undefined
    | null
    | false
    | Promise<T | undefined | null | false>,
  { timeoutMs = 30_000, everyMs = 50 } = {},
): Promise<T> {
  const end = Date.now() + timeoutMs;
  while (true) {
    const v = await fn();
    if (v) return v;
    if (Date.now() >= end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}
