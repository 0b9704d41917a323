/**
 * renderAgentLine: Claude Code's stream-json events (shapes as 2.1.332
 * writes them) as one line each for `voyage logs`; other lines as they are.
 */
import assert from "node:assert/strict";
import { renderAgentLine } from "../../lib/voyage/agent_log.ts";

const j = (v: unknown) => JSON.stringify(v);

Deno.test("renderAgentLine: init, text, tool calls, retries, results", () => {
  assert.equal(
    renderAgentLine(j({
      type: "system",
      subtype: "init",
      cwd: "/w",
      model: "claude-opus-5-5",
      claude_code_version: "2.1.332",
    })),
    "claude 2.1.332 started: model claude-opus-5-5, in /w",
  );
  assert.equal(
    renderAgentLine(j({
      type: "system",
      subtype: "api_retry",
      attempt: 2,
      max_retries: 10,
      retry_delay_ms: 1024,
      error_status: 529,
      error: "overloaded",
    })),
    "API retry 2/10 in 1.0 s: 529 overloaded",
  );
  assert.equal(
    renderAgentLine(j({
      type: "assistant",
      message: {
        content: [
          { type: "text", text: "Writing\nthe file." },
          { type: "tool_use", name: "Write", input: { file_path: "/w/a.txt" } },
          { type: "tool_use", name: "Bash", input: { command: "make test" } },
        ],
      },
    })),
    "says: Writing the file.; tool: Write /w/a.txt; tool: Bash make test",
  );
  // Tool results say something only when they failed.
  const result = (is_error: boolean) =>
    j({
      type: "user",
      message: {
        content: [{ type: "tool_result", content: "no such file", is_error }],
      },
    });
  assert.equal(renderAgentLine(result(false)), null);
  assert.equal(renderAgentLine(result(true)), "tool failed: no such file");
  assert.equal(
    renderAgentLine(j({
      type: "result",
      subtype: "success",
      is_error: false,
      num_turns: 2,
      total_cost_usd: 0.036,
      result: "Done.",
    })),
    "result: success, 2 turns, $0.0360: Done.",
  );
  assert.equal(
    renderAgentLine(j({
      type: "result",
      subtype: "success",
      is_error: true,
      api_error_status: 401,
      num_turns: 1,
      total_cost_usd: 0,
      result: "Invalid API key · Fix external API key",
    })),
    "result: error (API error 401), 1 turns, $0.0000: Invalid API key · Fix external API key",
  );
});

Deno.test("renderAgentLine: other lines pass; control characters are escaped", () => {
  assert.equal(renderAgentLine("[ohc] task-1 started"), "[ohc] task-1 started");
  assert.equal(renderAgentLine("{not json"), "{not json");
  assert.equal(
    renderAgentLine(j({ type: "thread.started" })),
    j({ type: "thread.started" }),
  );
  assert.equal(
    renderAgentLine(j({
      type: "assistant",
      message: { content: [{ type: "text", text: "a\u001b[31mb" }] },
    })),
    "says: a\\x1b[31mb",
  );
});
