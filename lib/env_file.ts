/**
 * `.env` files: the parser and the loader.
 *
 * Precedence, lowest to highest (a later source wins, key by key):
 *
 *   1. `~/.ohcommodore/.env`   the user's defaults for every project
 *   2. `./.env`                in the current directory, for this project
 *   3. the real environment    always wins, even when a variable is set to ""
 *
 * So `GH_TOKEN=x ohcommodore ...` beats both files, and a project's `.env`
 * beats the user's. (ocaptain loaded its config-dir file first with
 * override=False, so that file won over the cwd one, against its own
 * docstring; the seeds' bash script `export`ed its `.env` over the real
 * environment. Neither is copied here.) When the current directory is
 * `~/.ohcommodore`, the one file is read once, as the home file.
 *
 * The format is the usual subset of shell assignments, with no expansion:
 *
 *   KEY=value            unquoted; trailing spaces dropped; ` #` starts a comment
 *   export KEY=value     `export ` is allowed and ignored
 *   KEY='v a l'          single quotes: taken literally, may span lines
 *   KEY="a\nb \"q\""     double quotes: \n \r \t \\ \" \$ \` are escapes (any
 *                        other backslash is kept as is), may span lines
 *   # comment            whole-line comments and blank lines are ignored
 *
 * `$VAR` is never expanded. A key may appear twice; the later line wins. Any
 * other line is rejected with its file and line number, and never with its
 * value (a `.env` holds secrets).
 */
import { resolve } from "./path.ts";
import { OhcError, UsageError } from "./errors.ts";

/** A malformed `.env` file: bad input, exit code 2. */
export class EnvFileError extends UsageError {
  constructor(
    message: string,
    readonly path: string | undefined,
    readonly line: number,
  ) {
    super(
      message,
      "each line must be KEY=VALUE, `export KEY=VALUE`, a # comment or blank",
    );
    this.name = "EnvFileError";
  }
}

/** One assignment read from a file. */
export interface EnvEntry {
  key: string;
  value: string;
  /** 1-based line the assignment starts on. */
  line: number;
}

const KEY = /^[A-Za-z_][A-Za-z0-9_]*$/;
const ASSIGNMENT = /^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$/;
const DOUBLE_QUOTE_ESCAPES: Record<string, string> = {
  n: "\n",
  r: "\r",
  t: "\t",
  "\\": "\\",
  '"': '"',
  $: "$",
  "`": "`",
};

/** Parses `.env` text into its assignments, in file order. */
export function parseEnvEntries(text: string, path?: string): EnvEntry[] {
  const lines = text.replace(/^\uFEFF/, "").split(/\r?\n/);
  const entries: EnvEntry[] = [];
  const fail = (line: number, msg: string): never => {
    throw new EnvFileError(
      `${path ?? ".env"}:${line}: ${msg}`,
      path,
      line,
    );
  };

  let i = 0;
  while (i < lines.length) {
    const lineNo = i + 1;
    const raw = lines[i++];
    const trimmed = raw.trim();
    if (trimmed === "" || trimmed.startsWith("#")) continue;

    const m = ASSIGNMENT.exec(raw);
    if (!m) fail(lineNo, diagnose(raw));
    const key = m![1];
    const afterEq = m![2];
    const body = afterEq.trimStart();

    if (body.startsWith('"') || body.startsWith("'")) {
      const quote = body[0];
      let text = body.slice(1);
      let value = "";
      let rest: string | undefined;
      // Scan for the closing quote, pulling in further lines if needed.
      for (;;) {
        let j = 0;
        while (j < text.length) {
          const c = text[j];
          if (quote === '"' && c === "\\" && j + 1 < text.length) {
            const next = text[j + 1];
            value += DOUBLE_QUOTE_ESCAPES[next] ?? c + next;
            j += 2;
            continue;
          }
          if (c === quote) {
            rest = text.slice(j + 1);
            break;
          }
          value += c;
          j++;
        }
        if (rest !== undefined) break;
        if (i >= lines.length) {
          fail(lineNo, `value of ${key} has no closing ${quote}`);
        }
        value += "\n";
        text = lines[i++];
      }
      if (!/^\s*(#.*)?$/.test(rest!)) {
        fail(
          lineNo,
          `unexpected text after the closing ${quote} of ${key}'s value`,
        );
      }
      entries.push({ key, value, line: lineNo });
      continue;
    }

    // Unquoted: a `#` after whitespace starts a comment.
    let value = afterEq;
    const hash = value.search(/\s#/);
    if (hash >= 0) value = value.slice(0, hash);
    entries.push({ key, value: value.trim(), line: lineNo });
  }
  return entries;
}

/** Parses `.env` text; a key that appears twice keeps its later value. */
export function parseEnvFile(
  text: string,
  path?: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of parseEnvEntries(text, path)) out[e.key] = e.value;
  return out;
}

/** Why a line is not an assignment, without repeating its value. */
function diagnose(raw: string): string {
  const s = raw.trim().replace(/^export(\s+|$)/, "");
  const eq = s.indexOf("=");
  if (s === "") return "`export` needs KEY=VALUE";
  if (eq < 0) {
    return KEY.test(s)
      ? `${s} has no '=' (write ${s}= for an empty value)`
      : "expected KEY=VALUE";
  }
  const key = s.slice(0, eq).trim();
  if (key === "") return "missing variable name before '='";
  return KEY.test(key.replace(/\s+$/, ""))
    ? "expected KEY=VALUE"
    : "invalid variable name (use letters, digits and _, not starting with a digit)";
}

// ------------------------------------------------------------------ loader

/** Where a variable's value came from, lowest precedence first. */
export type EnvSource = "home-file" | "cwd-file" | "environment";

export interface EnvOrigin {
  source: EnvSource;
  /** The file, for the two file sources. */
  path?: string;
  /** The line in that file. */
  line?: number;
}

export interface EnvFileInfo {
  source: "home-file" | "cwd-file";
  path: string;
  found: boolean;
  /** Permission bits (e.g. 0o600), when found and the platform has them. */
  mode: number | null;
  /** Keys the file sets, whether or not a higher source overrode them. */
  keys: string[];
}

export interface LoadedEnv {
  /** The merged variables: the real environment plus what the files add. */
  values: Record<string, string>;
  /** For every key in `values`, the source whose value won. */
  origins: Record<string, EnvOrigin>;
  /** The files considered, lowest precedence first. */
  files: EnvFileInfo[];
}

export interface LoadEnvOptions {
  /** Directory whose `.env` is read; default `Deno.cwd()`. */
  cwd?: string;
  /** Home whose `.ohcommodore/.env` is read; default `env.HOME`. None: skipped. */
  home?: string;
  /** The real environment; default `Deno.env.toObject()`. */
  env?: Record<string, string>;
}

/** The `.env` files `loadEnv` reads, lowest precedence first. */
export function envFilePaths(
  opts: { cwd: string; home?: string },
): { source: "home-file" | "cwd-file"; path: string }[] {
  const out: { source: "home-file" | "cwd-file"; path: string }[] = [];
  if (opts.home) {
    out.push({
      source: "home-file",
      path: resolve(opts.home, ".ohcommodore", ".env"),
    });
  }
  const cwdFile = resolve(opts.cwd, ".env");
  if (!out.some((f) => f.path === cwdFile)) {
    out.push({ source: "cwd-file", path: cwdFile });
  }
  return out;
}

interface FileRead {
  text: string | null;
  mode: number | null;
}

function merge(
  env: Record<string, string>,
  files: { source: "home-file" | "cwd-file"; path: string; read: FileRead }[],
): LoadedEnv {
  const values: Record<string, string> = {};
  const origins: Record<string, EnvOrigin> = {};
  const infos: EnvFileInfo[] = [];
  for (const f of files) {
    const entries = f.read.text === null
      ? []
      : parseEnvEntries(f.read.text, f.path);
    for (const e of entries) {
      values[e.key] = e.value;
      origins[e.key] = { source: f.source, path: f.path, line: e.line };
    }
    infos.push({
      source: f.source,
      path: f.path,
      found: f.read.text !== null,
      mode: f.read.mode,
      keys: [...new Set(entries.map((e) => e.key))],
    });
  }
  for (const [k, v] of Object.entries(env)) {
    values[k] = v;
    origins[k] = { source: "environment" };
  }
  return { values, origins, files: infos };
}

function resolveOptions(opts: LoadEnvOptions) {
  const env = opts.env ?? Deno.env.toObject();
  const cwd = opts.cwd ?? Deno.cwd();
  const home = opts.home ?? env.HOME;
  return { env, paths: envFilePaths({ cwd, home }) };
}

function unreadable(path: string, err: unknown): OhcError {
  const why = err instanceof Error ? err.message : String(err);
  return new OhcError(
    "env_file_unreadable",
    `cannot read ${path}: ${why}`,
    "fix its permissions or remove it",
  );
}

/**
 * Reads `~/.ohcommodore/.env` and `./.env` and merges them under the real
 * environment (see the precedence at the top of this file). Missing files are
 * fine; a malformed one throws EnvFileError, an unreadable one OhcError.
 */
export async function loadEnv(opts: LoadEnvOptions = {}): Promise<LoadedEnv> {
  const { env, paths } = resolveOptions(opts);
  const files = [];
  for (const p of paths) {
    let read: FileRead = { text: null, mode: null };
    try {
      const st = await Deno.stat(p.path);
      if (!st.isFile) throw new Error("not a regular file");
      read = {
        text: await Deno.readTextFile(p.path),
        mode: st.mode === null ? null : st.mode & 0o777,
      };
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw unreadable(p.path, err);
    }
    files.push({ ...p, read });
  }
  return merge(env, files);
}

/** `loadEnv`, synchronously (for start-up code that cannot await). */
export function loadEnvSync(opts: LoadEnvOptions = {}): LoadedEnv {
  const { env, paths } = resolveOptions(opts);
  const files = paths.map((p) => {
    let read: FileRead = { text: null, mode: null };
    try {
      const st = Deno.statSync(p.path);
      if (!st.isFile) throw new Error("not a regular file");
      read = {
        text: Deno.readTextFileSync(p.path),
        mode: st.mode === null ? null : st.mode & 0o777,
      };
    } catch (err) {
      if (!(err instanceof Deno.errors.NotFound)) throw unreadable(p.path, err);
    }
    return { ...p, read };
  });
  return merge(env, files);
}

/**
 * Puts the variables that came from files into this process's environment
 * (the real environment already holds the rest). Returns the keys it set.
 */
export function applyLoadedEnv(
  loaded: LoadedEnv,
  target: { set(key: string, value: string): void } = Deno.env,
): string[] {
  const set: string[] = [];
  for (const [k, origin] of Object.entries(loaded.origins)) {
    if (origin.source === "environment") continue;
    target.set(k, loaded.values[k]);
    set.push(k);
  }
  return set;
}
