/**
 * The flagship's verify run: the voyage tip checked out, the plan's
 * verify.sh run there in its own process group, bounded in time and output.
 */
import { resolve } from "../path.ts";
import { concatBytes } from "../bytes.ts";
import { prepareCheckout } from "./checkout.ts";
import { decoder } from "./exec.ts";

export interface VerifyResult {
  ok: boolean;
  /** Exit code; 124 on timeout, 128+n when killed by signal n. */
  code: number;
  /** stdout and stderr interleaved as they arrived, bounded. */
  output: string;
  timedOut: boolean;
}

/**
 * Checks out the branch tip into `dir` (prepareCheckout) and runs
 * `bash <script>` there (a relative script path is relative to `dir`), in
 * its own process group: on timeout (default 10 min) the whole group is
 * killed and `code` is 124. Output is stdout and stderr as they came,
 * bounded to `maxOutputBytes` (default 1 MiB: the start and the end are
 * kept). Background processes the script leaves behind are killed when it
 * exits.
 */
export async function runVerify(opts: {
  bare: string;
  branch: string;
  dir: string;
  script: string;
  timeoutMs?: number;
  maxOutputBytes?: number;
  env?: Record<string, string>;
}): Promise<VerifyResult> {
  const timeoutMs = opts.timeoutMs ?? 10 * 60 * 1000;
  const dir = resolve(opts.dir);
  // A run whose runner died (the flagship's daemon restarted) goes first:
  // two verify.sh in one checkout would disturb each other.
  const pidFile = `${dir}.pid`;
  await endOldVerify(pidFile, dir);
  await prepareCheckout({ bare: opts.bare, branch: opts.branch, dir });
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(Deno.env.toObject())) {
    if (!k.startsWith("GIT_")) env[k] = v;
  }
  Object.assign(env, { GIT_TERMINAL_PROMPT: "0" }, opts.env ?? {});
  const out = new BoundedOutput(opts.maxOutputBytes ?? 1024 * 1024);
  const child = new Deno.Command("bash", {
    args: [opts.script],
    cwd: dir,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    detached: true, // its own session and process group, so we can kill it all
  }).spawn();
  await Deno.writeTextFile(pidFile, `${child.pid}\n`);
  const killGroup = () => {
    try {
      Deno.kill(-child.pid, "SIGKILL");
    } catch { /* already gone */ }
  };
  const readers = [child.stdout.getReader(), child.stderr.getReader()];
  const pumps = readers.map(async (r) => {
    try {
      for (;;) {
        const { value, done } = await r.read();
        if (done) return;
        out.push(value);
      }
    } catch { /* cancelled */ }
  });
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    killGroup();
  }, timeoutMs);
  const status = await child.status;
  clearTimeout(timer);
  // Leftover background processes may hold the pipes open: give them a
  // moment to flush, then end them.
  let grace: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([
    Promise.all(pumps),
    new Promise((r) => grace = setTimeout(r, 1000)),
  ]);
  clearTimeout(grace);
  killGroup();
  for (const r of readers) await r.cancel().catch(() => {});
  await Promise.all(pumps);
  await Deno.remove(pidFile).catch(() => {});
  let output = out.text();
  let code = status.code;
  if (timedOut) {
    code = 124;
    output += `\n[ohcommodore: verify timed out after ${
      Math.round(timeoutMs / 1000)
    }s]\n`;
  }
  return { ok: !timedOut && code === 0, code, output, timedOut };
}

/**
 * Kills the process group of a verify run recorded in `pidFile`, if that
 * process still works in `dir` (Linux; elsewhere any such group).
 */
async function endOldVerify(pidFile: string, dir: string): Promise<void> {
  const pid = Number(
    (await Deno.readTextFile(pidFile).catch(() => "")).trim(),
  );
  if (!Number.isInteger(pid) || pid <= 1) return;
  const cwd = await Deno.readLink(`/proc/${pid}/cwd`).catch(() => null);
  const proc = await Deno.stat("/proc/self").then(() => true, () => false);
  if (proc && cwd !== dir && !cwd?.startsWith(`${dir}/`)) return;
  try {
    Deno.kill(-pid, "SIGKILL");
  } catch { /* gone */ }
  await Deno.remove(pidFile).catch(() => {});
}

/** Keeps the first quarter and the last three quarters of `limit` bytes. */
class BoundedOutput {
  #head: Uint8Array[] = [];
  #headLen = 0;
  #tail: Uint8Array[] = [];
  #tailLen = 0;
  #dropped = 0;
  constructor(readonly limit: number) {}

  push(chunk: Uint8Array): void {
    const headMax = Math.floor(this.limit / 4);
    if (this.#headLen < headMax) {
      const take = chunk.subarray(0, headMax - this.#headLen);
      this.#head.push(take.slice());
      this.#headLen += take.length;
      chunk = chunk.subarray(take.length);
    }
    if (chunk.length === 0) return;
    this.#tail.push(chunk.slice());
    this.#tailLen += chunk.length;
    const tailMax = this.limit - headMax;
    while (this.#tailLen > tailMax) {
      const over = this.#tailLen - tailMax;
      const first = this.#tail[0];
      if (first.length <= over) {
        this.#tail.shift();
        this.#tailLen -= first.length;
        this.#dropped += first.length;
      } else {
        this.#tail[0] = first.subarray(over);
        this.#tailLen -= over;
        this.#dropped += over;
      }
    }
  }

  text(): string {
    const join = (parts: Uint8Array[]) => decoder.decode(concatBytes(parts));
    const gap = this.#dropped
      ? `\n[... ${this.#dropped} bytes of output omitted ...]\n`
      : "";
    return join(this.#head) + gap + join(this.#tail);
  }
}
