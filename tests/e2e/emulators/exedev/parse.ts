/**
 * Command-line parsing as exe.dev's lobby does it (reference §1.2):
 *
 * - the SSH exec payload is split like a POSIX shell would (go-shlex, posix
 *   mode), with no expansion;
 * - commands and subcommands are matched case-insensitively;
 * - every token that starts with `-` (except `-----BEGIN…` style PEM lines)
 *   is moved before the positionals; a flag token without `=` takes the next
 *   token as its value when that token does not start with `-`; `--` ends
 *   flag parsing;
 * - then Go's `flag` package parses: `-x` == `--x`, `--k=v` == `--k v`,
 *   booleans take no separate value, unknown flags are errors.
 *
 * Pure logic, no I/O: unit-tested in tests/e2e/emulators_test.ts.
 */

/** Splits a command line like go-shlex in POSIX mode. Throws on bad quoting. */
export function shlexSplit(line: string): string[] {
  const out: string[] = [];
  let cur = "";
  let inWord = false;
  let i = 0;
  const n = line.length;
  while (i < n) {
    const c = line[i];
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      if (inWord) {
        out.push(cur);
        cur = "";
        inWord = false;
      }
      i++;
      continue;
    }
    inWord = true;
    if (c === "\\") {
      if (i + 1 >= n) throw new Error("EOF found after escape character");
      const next = line[i + 1];
      // A backslash-newline is a line continuation.
      if (next !== "\n") cur += next;
      i += 2;
      continue;
    }
    if (c === "'") {
      const end = line.indexOf("'", i + 1);
      if (end < 0) throw new Error("EOF found when expecting closing quote");
      cur += line.slice(i + 1, end);
      i = end + 1;
      continue;
    }
    if (c === '"') {
      i++;
      let closed = false;
      while (i < n) {
        const d = line[i];
        if (d === '"') {
          closed = true;
          i++;
          break;
        }
        if (d === "\\" && i + 1 < n && '$`"\\\n'.includes(line[i + 1])) {
          if (line[i + 1] !== "\n") cur += line[i + 1];
          i += 2;
          continue;
        }
        cur += d;
        i++;
      }
      if (!closed) throw new Error("EOF found when expecting closing quote");
      continue;
    }
    cur += c;
    i++;
  }
  if (inWord) out.push(cur);
  return out;
}

/** Moves flags before positionals exactly as exe.dev's executeCommand does. */
export function reorderArgs(args: string[]): string[] {
  if (args.length === 0) return [];
  const flagArgs: string[] = [];
  const posArgs: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i];
    if (a === "--") {
      posArgs.push(...args.slice(i + 1));
      break;
    }
    if (a.startsWith("-") && !a.startsWith("-----")) {
      flagArgs.push(a);
      if (
        !a.includes("=") && i + 1 < args.length && !args[i + 1].startsWith("-")
      ) {
        flagArgs.push(args[i + 1]);
        i++;
      }
      continue;
    }
    posArgs.push(a);
  }
  const needsTerminator = posArgs.some((p) => p.startsWith("-"));
  return [...flagArgs, ...(needsTerminator ? ["--"] : []), ...posArgs];
}

export type FlagKind = "bool" | "string" | "uint" | "repeated";

export interface FlagSpec {
  kind: FlagKind;
  usage: string;
  default?: string;
}

export type FlagSpecs = Record<string, FlagSpec>;

export interface ParsedFlags {
  bools: Record<string, boolean>;
  strings: Record<string, string>;
  repeated: Record<string, string[]>;
  /** Names of flags given on the command line. */
  set: Set<string>;
  args: string[];
}

/** Thrown for `-h`/`-help` when the command defines no such flag. */
export class HelpRequested extends Error {
  constructor() {
    super("flag: help requested");
  }
}

/** Go's strconv.ParseBool. */
function parseGoBool(v: string): boolean | undefined {
  if (["1", "t", "T", "TRUE", "true", "True"].includes(v)) return true;
  if (["0", "f", "F", "FALSE", "false", "False"].includes(v)) return false;
  return undefined;
}

/** Go's `%q` for the plain strings that occur here. */
export function goQuote(s: string): string {
  return JSON.stringify(s);
}

/**
 * Go's flag.FlagSet.Parse with ContinueOnError. Throws Error with Go's
 * message (the caller prefixes "flag parsing error: ").
 */
export function parseGoFlags(specs: FlagSpecs, argv: string[]): ParsedFlags {
  const result: ParsedFlags = {
    bools: {},
    strings: {},
    repeated: {},
    set: new Set(),
    args: [],
  };
  for (const [name, spec] of Object.entries(specs)) {
    if (spec.kind === "bool") result.bools[name] = spec.default === "true";
    else if (spec.kind === "repeated") result.repeated[name] = [];
    else {result.strings[name] = spec.default ??
        (spec.kind === "uint" ? "0" : "");}
  }
  let i = 0;
  while (i < argv.length) {
    const s = argv[i];
    if (s.length < 2 || s[0] !== "-") break;
    let minuses = 1;
    if (s[1] === "-") {
      minuses++;
      if (s.length === 2) {
        i++;
        break;
      }
    }
    let name = s.slice(minuses);
    if (name.length === 0 || name[0] === "-" || name[0] === "=") {
      throw new Error(`bad flag syntax: ${s}`);
    }
    i++;
    let hasValue = false;
    let value = "";
    const eq = name.indexOf("=");
    if (eq > 0) {
      value = name.slice(eq + 1);
      hasValue = true;
      name = name.slice(0, eq);
    }
    const spec = specs[name];
    if (spec === undefined) {
      if (name === "help" || name === "h") throw new HelpRequested();
      throw new Error(`flag provided but not defined: -${name}`);
    }
    if (spec.kind === "bool") {
      if (hasValue) {
        const b = parseGoBool(value);
        if (b === undefined) {
          throw new Error(
            `invalid boolean value ${goQuote(value)} for -${name}: parse error`,
          );
        }
        result.bools[name] = b;
      } else {
        result.bools[name] = true;
      }
    } else {
      if (!hasValue && i < argv.length) {
        value = argv[i];
        hasValue = true;
        i++;
      }
      if (!hasValue) throw new Error(`flag needs an argument: -${name}`);
      if (spec.kind === "uint") {
        if (!/^(0x[0-9a-fA-F]+|0[0-7]*|[1-9][0-9]*)$/.test(value)) {
          throw new Error(
            `invalid value ${goQuote(value)} for flag -${name}: parse error`,
          );
        }
        result.strings[name] = String(Number(value));
      } else if (spec.kind === "repeated") {
        result.repeated[name].push(value);
      } else {
        result.strings[name] = value;
      }
    }
    result.set.add(name);
  }
  result.args = argv.slice(i);
  return result;
}

/** exe.dev VM names (reference §1.6, server at 2026-05). */
export const INVALID_NAME_MESSAGE =
  "invalid VM name, must be 5-52 characters: start with a lowercase letter, then lowercase letters or digits, with optional single hyphen separators (e.g., a-vm-name)";
export const RESERVED_NAME_MESSAGE =
  "invalid VM name: this VM name is not available";

/**
 * A short stand-in for exe.dev's long denylist: the reference's examples and
 * the same rules (checked with hyphens removed).
 */
const DENYLIST = new Set([
  "admin",
  "claude",
  "agent",
  "agents",
  "worker",
  "docker",
  "tailscale",
  "sandbox",
  "session",
  "example",
  "examples",
  "mail",
  "email",
  "team",
  "teams",
  "work",
  "jobs",
  "job",
  "exedev",
  "shelley",
  "whoami",
  "hello",
  "world",
  "helloworld",
  "foobar",
  "sshkey",
  "config",
  "server",
  "daemon",
]);
const DRUG_WORDS = ["viagra", "xanax", "opioid", "oxycodone", "cialis"];

/** null when `name` is a valid, unreserved VM name, else the error text. */
export function vmNameError(name: string): string | null {
  if (name.length < 5 || name.length > 52) return INVALID_NAME_MESSAGE;
  if (!/^[a-z][a-z0-9]*(-[a-z0-9]+)*$/.test(name)) return INVALID_NAME_MESSAGE;
  const flat = name.replaceAll("-", "");
  if (DENYLIST.has(flat)) return RESERVED_NAME_MESSAGE;
  if (DRUG_WORDS.some((w) => flat.includes(w)) || flat.includes("exelet")) {
    return RESERVED_NAME_MESSAGE;
  }
  if (/-(p|port)[0-9]+$/.test(name)) return RESERVED_NAME_MESSAGE;
  if (/^(p|port)[0-9]*$/.test(name) || /^na[0-9]+$/.test(name)) {
    return RESERVED_NAME_MESSAGE;
  }
  return null;
}

const NAME_WORDS = [
  "alpha",
  "bravo",
  "delta",
  "echo",
  "hotel",
  "kilo",
  "lima",
  "oscar",
  "sierra",
  "tango",
  "river",
  "stone",
  "maple",
  "cedar",
  "otter",
  "heron",
  "falcon",
  "comet",
  "nebula",
  "photon",
  "harbor",
  "canyon",
  "mesa",
  "grove",
];

/** A random `word-word` name like exe.dev's generator. */
export function randomVmName(): string {
  const pick = () => NAME_WORDS[Math.floor(Math.random() * NAME_WORDS.length)];
  const a = pick();
  let b = pick();
  while (b === a) b = pick();
  return `${a}-${b}`;
}

/** `ls` glob → RegExp (shell pattern, whole string). */
export function globToRegExp(glob: string): RegExp {
  let re = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") re += ".*";
    else if (c === "?") re += ".";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 1);
      if (end < 0) re += "\\[";
      else {
        let body = glob.slice(i + 1, end);
        if (body.startsWith("!")) body = "^" + body.slice(1);
        re += `[${body.replaceAll("\\", "\\\\")}]`;
        i = end;
      }
    } else re += c.replace(/[.+^${}()|\\/]/g, "\\$&");
  }
  return new RegExp(`^${re}$`);
}

export function hasGlobMeta(s: string): boolean {
  return /[*?[]/.test(s);
}
