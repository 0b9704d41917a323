/**
 * The sprites.dev provider (reference §2) on the `sprite` CLI:
 * `create --skip-console`, `destroy --force`, listing through the REST API
 * (`sprite api /v1/sprites`, JSON) with `sprite list` text as a fallback.
 * A sprite is reached with `sprite exec` (transport/sprite.ts); its
 * ssh_dest is its name.
 *
 * The org comes from the settings, else $SPRITE_ORG or $SPRITES_ORG, else
 * the CLI's own default.
 */

import { OhcError, UsageError } from "../errors.ts";
import { run } from "../transport/run.ts";
import { orgArgs, spawnCli, SpriteTransport } from "../transport/sprite.ts";
import type {
  Provider,
  ProviderSettings,
  VmRecord,
  VmStatus,
} from "./types.ts";

export type SpritesSettings = Extract<ProviderSettings, { kind: "sprites" }>;

export interface SpritesProviderOptions {
  /** Extra environment for every CLI call (the rest is inherited). */
  env?: Record<string, string>;
  /** How long `create` waits for the first `exec` to answer. Default 120 s. */
  readyTimeoutMs?: number;
  /** Bound on one CLI call (create, destroy, list). Default 120 s. */
  cliTimeoutMs?: number;
}

/** Sprite names: one DNS label (the URL is `<name>-<org>.sprites.app`). */
const NAME_RE = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;

export function spriteNameError(name: string): string | null {
  return NAME_RE.test(name)
    ? null
    : `invalid sprite name "${name}": use 1-63 lowercase letters, digits and inner hyphens`;
}

/**
 * Sprite states: `cold` (stopped, wakes on use), `warm` (suspended) and
 * `running` are all usable, so they read as running.
 */
export function parseSpriteStatus(s: unknown): VmStatus {
  switch (typeof s === "string" ? s.toLowerCase() : "") {
    case "cold":
    case "warm":
    case "running":
    case "started":
      return "running";
    case "creating":
    case "pending":
    case "starting":
      return "pending";
    case "stopped":
    case "suspended":
      return "stopped";
    case "failed":
    case "error":
      return "failed";
    default:
      return "unknown";
  }
}

/**
 * Parses `sprite list` text. The format is undocumented (§2.1); both forms
 * seen in the wild are read: one name per line, or a header line starting
 * with NAME followed by whitespace columns (`NAME STATUS ID`).
 */
export function parseSpriteList(
  text: string,
): { name: string; status?: string }[] {
  const lines = text.split("\n").map((l) => l.trim()).filter(Boolean);
  if (lines.length === 0) return [];
  const head = lines[0].split(/\s+/).map((w) => w.toLowerCase());
  const out: { name: string; status?: string }[] = [];
  if (head[0] === "name") {
    const si = head.indexOf("status");
    for (const line of lines.slice(1)) {
      const cols = line.split(/\s+/);
      if (!NAME_RE.test(cols[0])) continue;
      out.push(
        si >= 0 && cols[si] !== undefined
          ? { name: cols[0], status: cols[si] }
          : { name: cols[0] },
      );
    }
    return out;
  }
  for (const line of lines) {
    const name = line.split(/\s+/)[0];
    if (NAME_RE.test(name)) out.push({ name });
  }
  return out;
}

interface CliResult {
  code: number;
  stdout: string;
  stderr: string;
}

function oneLine(r: CliResult): string {
  const lines = (r.stderr + "\n" + r.stdout).split("\n").map((l) => l.trim())
    .filter(Boolean);
  return (lines.at(-1) ?? `exit ${r.code}`).replace(/^Error: /, "");
}

export class SpritesProvider implements Provider {
  readonly kind = "sprites" as const;
  readonly org?: string;
  readonly spriteBin: string;
  private readonly opts: SpritesProviderOptions;

  constructor(
    settings: SpritesSettings = { kind: "sprites" },
    opts: SpritesProviderOptions = {},
  ) {
    this.opts = { ...opts };
    const envOrg = opts.env?.SPRITE_ORG ?? opts.env?.SPRITES_ORG ??
      Deno.env.get("SPRITE_ORG") ?? Deno.env.get("SPRITES_ORG");
    this.org = settings.org || envOrg || undefined;
    orgArgs(this.org); // validates
    this.spriteBin = settings.sprite_bin ?? "sprite";
  }

  private async cli(args: string[]): Promise<CliResult> {
    const child = spawnCli(
      new Deno.Command(this.spriteBin, {
        args,
        ...(this.opts.env ? { env: this.opts.env } : {}),
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        signal: AbortSignal.timeout(this.opts.cliTimeoutMs ?? 120_000),
      }),
      this.spriteBin,
    );
    const out = await child.output();
    const dec = new TextDecoder();
    return {
      code: out.signal ? 128 : out.code,
      stdout: dec.decode(out.stdout),
      stderr: dec.decode(out.stderr),
    };
  }

  private checkName(name: string): void {
    const bad = spriteNameError(name);
    if (bad !== null) throw new UsageError(bad);
  }

  async create(
    name: string,
    opts: { onProgress?: (msg: string) => void } = {},
  ): Promise<VmRecord> {
    this.checkName(name);
    const progress = opts.onProgress ?? (() => {});
    progress(`creating sprite ${name}`);
    const r = await this.cli([
      "create",
      "--skip-console",
      ...orgArgs(this.org),
      name,
    ]);
    if (r.code !== 0) {
      const msg = oneLine(r);
      if (/already exists|is not available|taken/i.test(msg)) {
        throw new OhcError(
          "name_taken",
          `VM name "${name}" is not available`,
          "pick another name",
        );
      }
      throw new OhcError(
        "sprites_create_failed",
        `sprite create ${name}: ${msg}`,
      );
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
      last = oneLine(r);
      const left = deadline - Date.now();
      if (left <= 0) {
        await this.destroy(name).catch(() => {});
        throw new OhcError(
          "sprites_unreachable",
          `sprite ${name} was created but \`sprite exec\` did not answer within ${
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
    const r = await this.cli([
      "destroy",
      "--force",
      ...orgArgs(this.org),
      name,
    ]);
    if (r.code === 0) return;
    const msg = oneLine(r);
    if (/not found|does not exist|no such sprite/i.test(msg)) return;
    throw new OhcError(
      "sprites_destroy_failed",
      `sprite destroy ${name}: ${msg}`,
    );
  }

  async list(): Promise<VmRecord[]> {
    const fromApi = await this.listFromApi();
    const entries = fromApi ?? await this.listFromText();
    return entries.map((e) => ({
      name: e.name,
      ssh_dest: e.name,
      // The list API carries no status; a sprite that exists is usable
      // (it wakes on exec), so a missing status reads as running.
      status: e.status === undefined ? "running" : parseSpriteStatus(e.status),
      provider: "sprites" as const,
      data: e.data,
    })).sort((a, b) => a.name.localeCompare(b.name));
  }

  /** `sprite api /v1/sprites` with pagination; null when it is not usable. */
  private async listFromApi(): Promise<
    | { name: string; status?: string; data: Record<string, unknown> }[]
    | null
  > {
    const out: {
      name: string;
      status?: string;
      data: Record<string, unknown>;
    }[] = [];
    let token: string | null = null;
    for (let page = 0; page < 1000; page++) {
      const q = new URLSearchParams({ max_results: "50" });
      if (token !== null) q.set("continuation_token", token);
      const r = await this.cli([
        "api",
        ...orgArgs(this.org),
        `/v1/sprites?${q}`,
      ]);
      let doc: unknown;
      try {
        doc = JSON.parse(r.stdout);
      } catch {
        doc = null;
      }
      const sprites = (doc as { sprites?: unknown } | null)?.sprites;
      if (r.code !== 0 || !Array.isArray(sprites)) {
        if (page === 0) return null;
        throw new OhcError(
          "sprites_list_failed",
          `sprite api /v1/sprites (page ${page + 1}): ${oneLine(r)}`,
        );
      }
      for (const s of sprites) {
        if (s === null || typeof s !== "object") continue;
        const { name, status, ...data } = s as Record<string, unknown>;
        if (typeof name !== "string") continue;
        out.push({
          name,
          ...(typeof status === "string" ? { status } : {}),
          data,
        });
      }
      const d = doc as {
        has_more?: unknown;
        next_continuation_token?: unknown;
      };
      if (
        d.has_more !== true || typeof d.next_continuation_token !== "string"
      ) {
        return out;
      }
      token = d.next_continuation_token;
    }
    return out;
  }

  private async listFromText(): Promise<
    { name: string; status?: string; data: Record<string, unknown> }[]
  > {
    const r = await this.cli(["list", ...orgArgs(this.org)]);
    if (r.code !== 0) {
      throw new OhcError("sprites_list_failed", `sprite list: ${oneLine(r)}`);
    }
    return parseSpriteList(r.stdout).map((e) => ({ ...e, data: {} }));
  }

  transport(vm: Pick<VmRecord, "name" | "ssh_dest">): SpriteTransport {
    return new SpriteTransport({
      name: vm.ssh_dest || vm.name,
      org: this.org,
      spriteBin: this.spriteBin,
      env: this.opts.env,
    });
  }
}
