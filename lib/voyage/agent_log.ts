/**
 * `voyage logs` for people: Claude Code's stream-json lines (which a task's
 * log holds as the client wrote them, for parseClaudeStream) rendered as
 * one short line each: the start, what the model says, each tool call,
 * API retries (the client waiting on a failing API is progress, not
 * silence), and the result with its cost. Lines that are not stream-json
 * (the runner's `[ohc]` banners, stderr, other agents' output) pass as
 * they are. `voyage logs --raw` skips this.
 */

type Json = Record<string, unknown>;

const isObject = (v: unknown): v is Json =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/** One line, at most `max` characters, control characters shown escaped. */
function short(s: string, max = 200): string {
  const t = s.replace(/\s+/g, " ").trim()
    // deno-lint-ignore no-control-regex
    .replace(/[\x00-\x1f\x7f]/g, (c) => `\\x${c.charCodeAt(0).toString(16)}`);
  return t.length > max ? t.slice(0, max - 3) + "..." : t;
}

function toolSummary(name: string, input: unknown): string {
  if (!isObject(input)) return name;
  const arg = input.file_path ?? input.command ?? input.pattern ??
    input.url ?? input.description;
  return typeof arg === "string" ? `${name} ${short(arg, 160)}` : name;
}

/**
 * The line a person sees for one log line; null to leave it out (events
 * that say nothing new, such as tool results that succeeded).
 */
export function renderAgentLine(line: string): string | null {
  const t = line.trim();
  if (!t.startsWith("{")) return line;
  let ev: unknown;
  try {
    ev = JSON.parse(t);
  } catch {
    return line;
  }
  if (!isObject(ev) || typeof ev.type !== "string") return line;
  switch (ev.type) {
    case "system":
      if (ev.subtype === "init") {
        const v = ev.claude_code_version ? ` ${ev.claude_code_version}` : "";
        return `claude${v} started: model ${ev.model ?? "?"}, in ${
          ev.cwd ?? "?"
        }`;
      }
      if (ev.subtype === "api_retry") {
        const delay = typeof ev.retry_delay_ms === "number"
          ? ` in ${(ev.retry_delay_ms / 1000).toFixed(1)} s`
          : "";
        const why = [ev.error_status, ev.error].filter((x) => x != null)
          .join(" ");
        return `API retry ${ev.attempt ?? "?"}/${
          ev.max_retries ?? "?"
        }${delay}${why ? `: ${why}` : ""}`;
      }
      return `system ${ev.subtype ?? ""}`.trim();
    case "assistant": {
      const msg = isObject(ev.message) ? ev.message : {};
      const content = Array.isArray(msg.content) ? msg.content : [];
      const parts = content.map((c) => {
        if (!isObject(c)) return null;
        if (c.type === "text" && typeof c.text === "string") {
          return `says: ${short(c.text)}`;
        }
        if (c.type === "tool_use") {
          return `tool: ${toolSummary(String(c.name), c.input)}`;
        }
        return null;
      }).filter((p): p is string => p !== null);
      return parts.length > 0 ? parts.join("; ") : null;
    }
    case "user": {
      const msg = isObject(ev.message) ? ev.message : {};
      const content = Array.isArray(msg.content) ? msg.content : [];
      const failed = content.filter((c) =>
        isObject(c) && c.type === "tool_result" && c.is_error === true
      );
      if (failed.length === 0) return null;
      return failed.map((c) => {
        const body = (c as Json).content;
        const text = typeof body === "string"
          ? body
          : Array.isArray(body)
          ? body.map((b) => isObject(b) ? String(b.text ?? "") : "").join(" ")
          : "";
        return `tool failed: ${short(text)}`;
      }).join("; ");
    }
    case "result": {
      const cost = typeof ev.total_cost_usd === "number"
        ? `, $${ev.total_cost_usd.toFixed(4)}`
        : "";
      const turns = typeof ev.num_turns === "number"
        ? `, ${ev.num_turns} turns`
        : "";
      const api = ev.api_error_status != null
        ? ` (API error ${ev.api_error_status})`
        : "";
      const state = ev.is_error === true ? "error" : String(ev.subtype ?? "");
      return `result: ${state}${api}${turns}${cost}${
        typeof ev.result === "string" ? `: ${short(ev.result)}` : ""
      }`;
    }
  }
  return line;
}
