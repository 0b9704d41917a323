/**
 * The sprites.dev provider (reference §2) on the HTTP API (sprites_api.ts),
 * with no `sprite` CLI anywhere: create, list (all pages, with the plan's
 * `running_limit` and `warm_limit`), destroy. A sprite is reached with the
 * exec WebSocket (transport/sprite.ts); its ssh_dest is its name.
 *
 * The token comes from the caller (mod.ts: the flagship's 0600 file, or the
 * user's login); the org is the one the token is for, recorded in the
 * settings.
 */

import { OhcError, UsageError } from "../errors.ts";
import { run } from "../transport/run.ts";
import { SpriteTransport } from "../transport/sprite.ts";
import { DEFAULT_API_URL, SpritesApi, SpritesApiError } from "./sprites_api.ts";
import type {
  Provider,
  ProviderSettings,
  VmRecord,
  VmStatus,
} from "./types.ts";

export type SpritesSettings = Extract<ProviderSettings, { kind: "sprites" }>;

export interface SpritesProviderOptions {
  /** The token, or where to find it when first needed. */
  token: string | (() => Promise<string>);
  /** How long `create` waits for the first exec to answer. Default 120 s. */
  readyTimeoutMs?: number;
  /** How long API calls retry transient failures. Default 120 s. */
  retryForMs?: number;
  log?: (m: string) => void;
}

/** Sprite names: one DNS label (the URL is `<name>-<org>.sprites.app`). */
const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function spriteNameError(name: string): string | null {
  return NAME_RE.test(name)
    ? null
    : `invalid sprite name "${name}": use 1-63 lowercase letters, digits and inner hyphens`;
}

/**
 * Sprite states: `cold` (stopped, wakes on use), `warm` and `suspended`
 * (paused, wake on use) and `running` are all usable, so they read as
 * running: a ship that paused is still a ship that takes work.
 */
export function parseSpriteStatus(s: unknown): VmStatus {
  switch (typeof s === "string" ? s.toLowerCase() : "") {
    case "cold":
    case "warm":
    case "suspended":
    case "paused":
    case "running":
    case "started":
      return "running";
    case "creating":
    case "pending":
    case "starting":
      return "pending";
    case "stopped":
    case "destroyed":
      return "stopped";
    case "failed":
    case "error":
      return "failed";
    default:
      return "unknown";
  }
}

/** The plan's limits, as the list answer gives them (absent: not said). */
export interface SpriteLimits {
  running?: number;
  warm?: number;
}

export class SpritesProvider implements Provider {
  readonly kind = "sprites" as const;
  readonly org?: string;
  readonly api: SpritesApi;
  private readonly opts: SpritesProviderOptions;

  constructor(settings: SpritesSettings, opts: SpritesProviderOptions) {
    this.opts = opts;
    this.org = settings.org || undefined;
    this.api = new SpritesApi(
      opts.token,
      settings.api_url ?? DEFAULT_API_URL,
      { retryForMs: opts.retryForMs, log: opts.log },
    );
  }

  private checkName(name: string): void {
    const bad = spriteNameError(name);
    if (bad !== null) throw new UsageError(bad);
  }

  async create(
    name: string,
    opts: { onProgress?: (msg: string) => void; tags?: string[] } = {},
  ): Promise<VmRecord> {
    this.checkName(name);
    const progress = opts.onProgress ?? (() => {});
    progress(`creating sprite ${name}`);
    try {
      await this.api.create(name, opts.tags ?? []);
    } catch (e) {
      if (
        e instanceof SpritesApiError &&
        (e.status === 400 || e.status === 409) &&
        /exist|taken|not available/i.test(e.message)
      ) {
        throw new OhcError(
          "name_taken",
          `VM name "${name}" is not available`,
          "pick another name",
        );
      }
      throw e;
    }
    progress(`sprite ${name} created; waiting for exec`);
    await this.waitReady(name, progress);
    progress(`sprite ${name} is ready`);
    return {
      name,
      ssh_dest: name,
      status: "running",
      provider: "sprites",
      ...(this.org ? { data: { org: this.org } } : {}),
    };
  }

  /** Runs `true` in the sprite until it answers; destroys it if it never does. */
  private async waitReady(
    name: string,
    progress: (msg: string) => void,
  ): Promise<void> {
    const timeoutMs = this.opts.readyTimeoutMs ?? 120_000;
    const deadline = Date.now() + timeoutMs;
    const t = this.transport({ name, ssh_dest: name });
    let delay = 250;
    let last = "";
    for (let attempt = 1;; attempt++) {
      if (attempt > 1) {
        progress(`waiting for ${name} (try ${attempt}: ${last})`);
      }
      const r = await run(t, ["true"], {
        signal: AbortSignal.timeout(Math.max(deadline - Date.now(), 1000)),
      });
      if (r.code === 0) return;
      last = r.stderr.trim().split("\n").at(-1) || `exit ${r.code}`;
      const left = deadline - Date.now();
      if (left <= 0 || /sprites\.dev runs at most/.test(last)) {
        await this.destroy(name).catch(() => {});
        throw new OhcError(
          "sprites_unreachable",
          `sprite ${name} was created but did not answer within ${
            Math.round(timeoutMs / 1000)
          }s (${last}); it was destroyed`,
        );
      }
      await new Promise((res) => setTimeout(res, Math.min(delay, left)));
      delay = Math.min(delay * 2, 2000);
    }
  }

  async destroy(name: string): Promise<void> {
    this.checkName(name);
    await this.api.destroy(name);
  }

  /** The org's sprites (or those whose names start with `prefix`). */
  async list(prefix?: string): Promise<VmRecord[]> {
    const { sprites } = await this.api.list(prefix);
    return sprites.map(({ name, status, ...data }) => ({
      name,
      ssh_dest: name,
      // The list answer carries no status; a sprite that exists is usable
      // (it wakes on exec), so a missing status reads as running.
      status: status === undefined ? "running" : parseSpriteStatus(status),
      provider: "sprites" as const,
      data,
    })).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** The sprites created with this label; listing wakes none. */
  async listTagged(tag: string): Promise<VmRecord[]> {
    return (await this.list()).filter((v) =>
      Array.isArray(v.data?.labels) && v.data.labels.includes(tag)
    );
  }

  /** The plan's running and warm limits, from the list answer. */
  async limits(): Promise<SpriteLimits> {
    const l = await this.api.limits();
    return { running: l.running_limit, warm: l.warm_limit };
  }

  async runningLimit(): Promise<number | undefined> {
    return (await this.limits()).running;
  }

  transport(vm: Pick<VmRecord, "name" | "ssh_dest">): SpriteTransport {
    return new SpriteTransport({ name: vm.ssh_dest || vm.name, api: this.api });
  }
}
