/**
 * The settings read on VMs, declared once: name, meaning, default and how a
 * value is checked. A VM takes each from its environment, else from its
 * settings file (`~/.ohcommodore/settings.json`, written at create from the
 * laptop's environment and changed by `fleet config set`), else the
 * default. A bad value is an error naming the setting wherever it is read,
 * and exit 2 on the laptop before anything is created or changed.
 */
import { UsageError } from "./errors.ts";
import { readJsonFile, writeJsonAtomic } from "./state/atomic.ts";
import { paths } from "./state/paths.ts";
import { MAX_SHIPS } from "./voyage/plan/plan_rules.ts";

interface Spec<T> {
  help: string;
  /** Shown by `fleet config get`. */
  fallback: string;
  /** The value, or a thrown Error saying what a good one looks like. */
  parse(raw: string): T;
}

/** The largest delay a timer holds (2^31 - 1 ms), in whole seconds. */
export const MAX_TIMER_S = Math.floor((2 ** 31 - 1) / 1000);

const seconds = (what: string): Spec<number>["parse"] => (raw) => {
  const n = Number(raw);
  if (!(raw.trim() !== "" && n > 0 && n <= MAX_TIMER_S)) {
    throw new Error(`${what}: a number of seconds from 0 to ${MAX_TIMER_S}`);
  }
  return n;
};
const count = (what: string, max: number): Spec<number>["parse"] => (raw) => {
  const n = Number(raw);
  if (!(/^\d+$/.test(raw.trim()) && n >= 1 && n <= max)) {
    throw new Error(`${what}: a whole number from 1 to ${max}`);
  }
  return n;
};
const flag: Spec<boolean>["parse"] = (raw) => {
  if (raw === "1" || raw === "0" || raw === "") return raw === "1";
  throw new Error("1 or 0");
};
const releaseUrl: Spec<string | null>["parse"] = (raw) => {
  if (raw === "") return null;
  if (!/^https?:\/\/[^\s"'\\]+$/.test(raw)) {
    throw new Error("an http:// or https:// URL (a published release)");
  }
  return raw.replace(/\/+$/, "");
};
const userName: Spec<string | null>["parse"] = (raw) => {
  if (raw === "") return null;
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(raw)) {
    throw new Error("a system user name (lowercase letters, digits, _ and -)");
  }
  return raw;
};

export const SETTINGS = {
  OHCOMMODORE_INBOX_TIMEOUT: {
    help: "each inbox command's default timeout, in seconds",
    fallback: "300",
    parse: seconds("the inbox timeout"),
  } as Spec<number>,
  OHCOMMODORE_INBOX_CONCURRENCY: {
    help: "inbox commands a VM runs at once",
    fallback: "1",
    parse: count("commands at once", 64),
  } as Spec<number>,
  OHCOMMODORE_TASK_LEASE: {
    help: "voyages: seconds a ship may go silent before its task is retaken",
    fallback: "60",
    parse: seconds("the task lease"),
  } as Spec<number>,
  OHCOMMODORE_DEFAULT_SHIPS: {
    help:
      "voyages: ships a voyage sails with when neither --ships nor the plan's recommended_ships says",
    fallback: "3",
    parse: count("ships", MAX_SHIPS),
  } as Spec<number>,
  OHCOMMODORE_TASK_ATTEMPTS: {
    help: "voyages: tries per task",
    fallback: "3",
    parse: count("tries per task", 100),
  } as Spec<number>,
  OHCOMMODORE_AGENT_USER: {
    help:
      "ships: the user agents run as when the captain is root (claude: ohcommodore-agent, made if missing)",
    fallback: "",
    parse: userName,
  } as Spec<string | null>,
  OHCOMMODORE_CLAUDE_ALLOW_ROOT: {
    help:
      "ships: 1 runs claude as root, telling Claude Code the VM is a sandbox (IS_SANDBOX=1)",
    fallback: "0",
    parse: flag,
  } as Spec<boolean>,
  OHCOMMODORE_DEPLOY_COMPRESS: {
    help: "deploy: 0 sends the binary to new VMs as is, not gzip'd",
    fallback: "1",
    parse: flag,
  } as Spec<boolean>,
  OHCOMMODORE_DEPLOY_REUSE: {
    help: "deploy: 0 sends the binary even to a VM that holds the same build",
    fallback: "1",
    parse: flag,
  } as Spec<boolean>,
  OHCOMMODORE_RELEASE_URL: {
    help:
      "deploy: new VMs download their platform's binary from this published release (<url>/ohcommodore-<target>, checked against <url>/SHA256SUMS)",
    fallback: "",
    parse: releaseUrl,
  } as Spec<string | null>,
  OHCOMMODORE_NO_CGROUP: {
    help:
      "inbox: 1 contains commands by their marker only, not in cgroups (taken when the daemon starts)",
    fallback: "0",
    parse: flag,
  } as Spec<boolean>,
} as const;

export type SettingName = keyof typeof SETTINGS;
type ValueOf<K extends SettingName> = ReturnType<
  (typeof SETTINGS)[K]["parse"]
>;

export const isSettingName = (k: string): k is SettingName =>
  Object.hasOwn(SETTINGS, k);

/** `raw` checked as a value of `name`: the value, or a UsageError naming it. */
export function parseSetting<K extends SettingName>(
  name: K,
  raw: string,
): ValueOf<K> {
  try {
    return SETTINGS[name].parse(raw) as ValueOf<K>;
  } catch (e) {
    throw new UsageError(
      `${name}=${JSON.stringify(raw)} is not valid: ${(e as Error).message}`,
    );
  }
}

/** `k` as a setting's name, or a UsageError listing them. */
export function settingName(k: string): SettingName {
  if (!isSettingName(k)) {
    throw new UsageError(
      `unknown setting "${k}": one of ${Object.keys(SETTINGS).join(", ")}`,
    );
  }
  return k;
}

/** Checks `KEY=VALUE` pairs; the checked raw values by name. */
export function parseAssignments(pairs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const p of pairs) {
    const eq = p.indexOf("=");
    const k = settingName(eq < 0 ? p : p.slice(0, eq));
    if (eq < 0) throw new UsageError(`${k}: give a value, as ${k}=VALUE`);
    parseSetting(k, p.slice(eq + 1));
    out[k] = p.slice(eq + 1);
  }
  return out;
}

/** The VM settings set in `env` (the laptop's, for new VMs), checked. */
export function settingsFromEnv(
  env: Record<string, string> = Deno.env.toObject(),
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of Object.keys(SETTINGS) as SettingName[]) {
    if (env[k] === undefined) continue;
    parseSetting(k, env[k]);
    out[k] = env[k];
  }
  return out;
}

/** This machine's settings file (`~/.ohcommodore/settings.json`). */
export async function readSettingsFile(
  home: string,
): Promise<Record<string, string>> {
  return (await readJsonFile(paths.settings(home), (v, file) => {
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      throw new TypeError(`${file} must hold an object`);
    }
    const out: Record<string, string> = {};
    for (const [k, raw] of Object.entries(v)) {
      if (isSettingName(k) && typeof raw === "string") out[k] = raw;
    }
    return out;
  })) ?? {};
}

export async function writeSettingsFile(
  values: Record<string, string>,
  home: string,
): Promise<void> {
  await writeJsonAtomic(paths.settings(home), values, 0o644);
}

/** Typed settings, as a machine reads them (see the module's comment). */
export class Settings {
  constructor(
    private file: Record<string, string>,
    private env: (k: string) => string | undefined = (k) => Deno.env.get(k),
  ) {}

  /** Reads the settings file once. */
  static async load(
    home: string,
    env: (k: string) => string | undefined = (k) => Deno.env.get(k),
  ): Promise<Settings> {
    return new Settings(await readSettingsFile(home), env);
  }

  raw(name: SettingName): string {
    return this.env(name) ?? this.file[name] ?? SETTINGS[name].fallback;
  }

  get<K extends SettingName>(name: K): ValueOf<K> {
    return parseSetting(name, this.raw(name));
  }
}

export { type Env, knob, type KnobName, knobOn, KNOBS } from "./knobs.ts";
