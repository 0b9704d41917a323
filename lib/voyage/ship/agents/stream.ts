/** Reading an agent's JSON-lines output: the helpers claude and codex share. */
import { FAILURE_MARKER } from "../prompt.ts";

export type JsonObject = Record<string, unknown>;

export function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

export function toLines(input: string | Iterable<string>): Iterable<string> {
  return typeof input === "string" ? input.split("\n") : input;
}

export function parseJsonLine(line: string): JsonObject | undefined {
  const t = line.trim();
  if (!t.startsWith("{")) return undefined;
  try {
    const v = JSON.parse(t);
    return isObject(v) ? v : undefined;
  } catch {
    return undefined;
  }
}

export function reportedFailureIn(
  text: string | undefined,
): string | undefined {
  if (!text) return undefined;
  for (const line of text.split("\n")) {
    const t = line.trim();
    if (t.startsWith(FAILURE_MARKER)) {
      return t.slice(FAILURE_MARKER.length).trim() || "(no reason given)";
    }
  }
  return undefined;
}

export const str = (v: unknown) => typeof v === "string" ? v : undefined;
export const num = (v: unknown) => typeof v === "number" ? v : undefined;

export function oneLine(s: string): string {
  const t = s.replace(/\s+/g, " ").trim();
  return t.length > 300 ? t.slice(0, 297) + "..." : t;
}
