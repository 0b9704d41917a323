/**
 * Tests that need something the machine may lack (sshd, root, namespaces)
 * skip with one visible NOTICE line; under CI=true they never skip, so a
 * missing install step fails CI instead of hiding. Also a small `runOk`.
 */

export function isCi(): boolean {
  try {
    return Deno.env.get("CI") === "true";
  } catch {
    return false;
  }
}

/**
 * A memoized skip check for `Deno.test({ ignore: check() !== null })`:
 * null when the tests can run (or CI=true), else the reason. `what` names
 * the tests in the NOTICE; `noticeEnv` keeps it to one line per process tree.
 */
export function skipCheck(
  what: string,
  noticeEnv: string,
  missing: () => string | null,
): () => string | null {
  let cached: string | null | undefined;
  return () => {
    if (cached !== undefined) return cached;
    const reason = missing();
    const ci = isCi();
    cached = ci ? null : reason;
    if (reason !== null) {
      let shown = false;
      try {
        shown = Deno.env.get(noticeEnv) === "1";
        Deno.env.set(noticeEnv, "1");
      } catch { /* no env permission: print anyway */ }
      if (!shown) {
        console.error(
          ci
            ? `NOTICE: CI=true makes ${what} mandatory; they will fail: ${reason}`
            : `NOTICE: ${what} skipped: ${reason}`,
        );
      }
    }
    return cached;
  };
}

/** Runs a command; its stdout, or an error naming it with its stderr. */
/** Why `unshare` cannot make these namespaces here, or null. */
export function namespaceProblem(flags: string[]): string | null {
  const probe = new Deno.Command("/usr/bin/unshare", {
    args: [...flags, "--fork", "--mount-proc", "/bin/true"],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).outputSync();
  if (!probe.success) {
    return `cannot create namespaces: ${
      new TextDecoder().decode(probe.stderr).trim()
    }`;
  }
  return null;
}

export async function runOk(cmd: string, args: string[]): Promise<string> {
  const out = await new Deno.Command(cmd, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  if (!out.success) {
    throw new Error(
      `${cmd} ${args.join(" ")}: exit ${out.code}: ${
        dec.decode(out.stderr).trim()
      }`,
    );
  }
  return dec.decode(out.stdout);
}
