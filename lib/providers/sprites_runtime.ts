/**
 * The sprite runtime, seen from inside a sprite through `sprite-env`, the
 * CLI every sprite's base image has (reference §6): services (processes
 * the runtime starts at boot, restarts on crash and after a cold wake) and
 * the Tasks API (a hold that keeps the sprite running while work is in
 * flight; a sprite pauses ~30 s after its last inbound activity, and a cold
 * pause kills what `sprite exec` started).
 *
 * Elsewhere (no `sprite-env` on PATH) there is no runtime: `onSprite()` is
 * false and holds do nothing, so other providers pay nothing for this.
 */

let found: Promise<string | null> | null = null;

/** The `sprite-env` on PATH, or null when this is not a sprite. */
export function spriteEnv(): Promise<string | null> {
  found ??= (async () => {
    for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
      if (!dir) continue;
      try {
        const st = await Deno.stat(`${dir}/sprite-env`);
        if (st.isFile && (st.mode ?? 0o111) & 0o111) return `${dir}/sprite-env`;
      } catch { /* not here */ }
    }
    return null;
  })();
  return found;
}

export async function onSprite(): Promise<boolean> {
  return (await spriteEnv()) !== null;
}

export interface SpriteEnvResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `sprite-env args...` (arguments as words, nothing secret in them). */
export async function spriteEnvRun(args: string[]): Promise<SpriteEnvResult> {
  const bin = await spriteEnv();
  if (!bin) return { code: 127, stdout: "", stderr: "sprite-env: not found" };
  const r = await new Deno.Command(bin, {
    args,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    signal: AbortSignal.timeout(60_000),
  }).output();
  const dec = new TextDecoder();
  return {
    code: r.signal ? 128 : r.code,
    stdout: dec.decode(r.stdout),
    stderr: dec.decode(r.stderr),
  };
}

/** A service's state as `services get` shows it, or null when undefined. */
export async function serviceState(
  name: string,
): Promise<{ status: string; pid?: number } | null> {
  const r = await spriteEnvRun(["services", "get", name]);
  if (r.code !== 0) return null;
  try {
    const v = JSON.parse(r.stdout);
    return v?.state && typeof v.state.status === "string" ? v.state : null;
  } catch {
    return null;
  }
}

/**
 * A named hold through the Tasks API: `set(true)` registers it with an
 * expiry refreshed well before it runs out (the vendor's heartbeat
 * pattern: 5 minutes, refreshed every minute), `set(false)` deletes it. A
 * holder that dies without deleting it frees the sprite when it expires, so
 * holds of processes that can be killed with their session (an `_rpc`) use
 * a short one. Off a sprite, nothing happens.
 */
export class SpriteHold {
  private on = false;
  private timer: ReturnType<typeof setInterval> | null = null;
  private chain: Promise<unknown> = Promise.resolve();
  private readonly expireS: number;

  constructor(
    readonly name: string,
    o: { log?: (m: string) => void; expireS?: number } = {},
  ) {
    this.log = o.log ?? (() => {});
    this.expireS = o.expireS ?? 300;
  }

  private readonly log: (m: string) => void;

  get held(): boolean {
    return this.on;
  }

  /** Holds or releases; calls are applied in order. */
  set(on: boolean): Promise<void> {
    if (on === this.on) return this.chain.then(() => {});
    this.on = on;
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
    if (on) {
      this.timer = setInterval(
        () => void this.send(true),
        this.expireS * 1000 / 5,
      );
      Deno.unrefTimer(this.timer);
    }
    const step = this.chain.then(() => this.send(on));
    this.chain = step.catch(() => {});
    return step;
  }

  private async send(on: boolean): Promise<void> {
    if (!(await onSprite())) return;
    const path = `/v1/tasks/${encodeURIComponent(this.name)}`;
    const r = await spriteEnvRun(
      on
        ? [
          "curl",
          "-s",
          "-X",
          "PUT",
          "-H",
          "Content-Type: application/json",
          "-d",
          JSON.stringify({ expire: `${this.expireS}s` }),
          path,
        ]
        : ["curl", "-s", "-X", "DELETE", path],
    ).catch((e) => ({ code: 1, stdout: "", stderr: String(e) }));
    if (r.code !== 0) {
      this.log(
        `sprite hold ${this.name}: ${
          (r.stderr || r.stdout).trim() || `exit ${r.code}`
        }`,
      );
    }
  }

  /**
   * Runs `fn` while holding (one piece of work). The hold is taken while
   * `fn` starts (nothing waits for it: the caller's own traffic keeps the
   * sprite awake that long) and released, waited for, when it is done.
   */
  async during<T>(fn: () => Promise<T>): Promise<T> {
    void this.set(true).catch(() => {});
    try {
      return await fn();
    } finally {
      await this.set(false).catch(() => {});
    }
  }
}
