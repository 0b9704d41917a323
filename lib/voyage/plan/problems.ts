/**
 * What checking a plan's files shares: a collector of problems, JSON read
 * with positions, descriptions of bad values, paths made absolute.
 */

import {
  parse as parseJsonc,
  type ParseError,
  printParseErrorCode,
} from "jsonc-parser";
import type { PlanProblem } from "./plan.ts";

export type Obj = Record<string, unknown>;

export function isObject(v: unknown): v is Obj {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function describe(v: unknown): string {
  if (v === null) return "null";
  if (Array.isArray(v)) return "an array";
  if (typeof v === "string") return `a string (${JSON.stringify(v)})`;
  if (typeof v === "object") return "an object";
  return `${typeof v} ${JSON.stringify(v)}`;
}

/** Collects problems and warnings while a plan is read. */
export class Collector {
  errors: PlanProblem[] = [];
  warnings: PlanProblem[] = [];
  error(file: string, message: string): void {
    this.errors.push({ file, message });
  }
  warn(file: string, message: string): void {
    this.warnings.push({ file, message });
  }
  has(file: string): boolean {
    return this.errors.some((e) => e.file === file);
  }
}

/**
 * Parses strict JSON. On failure records "bad JSON at line L, column C:
 * reason" and returns undefined.
 */
export function parseJson(text: string, file: string, c: Collector): unknown {
  try {
    return JSON.parse(text);
  } catch (e) {
    c.error(file, badJsonMessage(text, (e as Error).message));
    return undefined;
  }
}

/** Describes a JSON syntax error with a line and column (1-based). */
export function badJsonMessage(text: string, v8Message: string): string {
  // jsonc-parser (strict settings) finds the offset for every kind of error;
  // V8's messages only sometimes carry one.
  const errors: ParseError[] = [];
  parseJsonc(text, errors, {
    disallowComments: true,
    allowTrailingComma: false,
    allowEmptyContent: false,
  });
  let offset = errors.length > 0 ? errors[0].offset : undefined;
  const m = /at position (\d+)/.exec(v8Message);
  if (offset === undefined && m) offset = Number(m[1]);
  if (offset === undefined) offset = text.length;
  const before = text.slice(0, offset);
  const line = before.split("\n").length;
  const column = offset - (before.lastIndexOf("\n") + 1) + 1;
  const comment = errors.length > 0 &&
    printParseErrorCode(errors[0].error) === "InvalidCommentToken";
  const reason = comment ? "comments are not allowed in JSON" : v8Message
    .replace(/ in JSON at position \d+.*$/, "")
    .replace(/, ".*" is not valid JSON$/s, "")
    .replace(/ is not valid JSON$/, "");
  return text.trim() === ""
    ? "bad JSON: the file is empty"
    : `bad JSON at line ${line}, column ${column}: ${reason}`;
}

export function absolute(dir: string): string {
  return normalise(dir.startsWith("/") ? dir : `${Deno.cwd()}/${dir}`);
}

export function normalise(p: string): string {
  const parts: string[] = [];
  for (const seg of p.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return "/" + parts.join("/");
}
