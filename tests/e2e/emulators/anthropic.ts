/**
 * A scripted Anthropic API for tests: a `Deno.serve` on 127.0.0.1 that the
 * real Claude Code talks to through `ANTHROPIC_BASE_URL`, answering as
 * api.anthropic.com does (the Messages API with server-sent events), with
 * what the model "says" taken from a per-test script.
 *
 * ```ts
 * await using api = await startAnthropic();              // writes task-<id>.txt per task
 * // ANTHROPIC_BASE_URL=api.url ANTHROPIC_API_KEY=anything claude -p …
 * api.requests.filter((r) => r.main).map((r) => r.task?.id);
 * ```
 *
 * - `POST /v1/messages` (with or without `?beta=true`): `stream: true` gets
 *   `message_start`, `content_block_start`/`content_block_delta`
 *   (`text_delta`, `input_json_delta` in two pieces)/`content_block_stop`,
 *   `message_delta` (stop reason and usage), `message_stop`; otherwise one
 *   Message JSON. `POST /v1/messages/count_tokens` answers
 *   `{input_tokens}`. `HEAD /api/hello` (the client's reachability probe)
 *   answers 200. Anything else: 404 `not_found_error`.
 * - **The script** decides each answer of the main conversation (a request
 *   with tools) from a `TurnContext`: the task (parsed from our prompt's
 *   `# Task <id>: <subject>` line), the working directory (from the
 *   client's environment note), and the turn (how many assistant messages
 *   the conversation holds). A turn is text, a `Write`/`Edit`/`Read`/`Bash`
 *   tool call, or a failure (401, 429 with `retry-after`, 500, 529), for a
 *   number of requests or for good. Requests without tools (the client's
 *   side calls) get a short text answer and do not consume the script.
 * - **Usage is fixed per turn** (`usage`, default 2000 input and 500 output
 *   tokens), so the cost the client computes is known.
 * - **Keys**: with `apiKeys`, a request whose `x-api-key` or bearer token is
 *   not one of them gets 401 `authentication_error`, as a bad key does.
 * - **The request log** (`requests`) holds, per request: path, model,
 *   tool names, system prompt text, the first user message, the task, the
 *   turn, which credential header came and the status answered.
 *
 * Errors have the API's shape `{"type":"error","error":{type,message},
 * "request_id"}` and a `request-id` header; 429 carries `retry-after`.
 */

export type FailStatus = 401 | 429 | 500 | 529;

export type Turn =
  | { text: string }
  /** `file` is relative to the working directory, or absolute. */
  | { tool: "Write"; file: string; content: string }
  | { tool: "Read"; file: string }
  | { tool: "Edit"; file: string; old: string; new: string }
  | { tool: "Bash"; command: string }
  /**
   * Fail `times` requests of this turn (default: every one; the client
   * retries the same turn), then answer `then` (default: "Done.").
   */
  | { fail: FailStatus; times?: number; retryAfter?: number; then?: Turn };

export interface TurnContext {
  /** From the prompt's `# Task <id>: <subject>` line; null if none. */
  task: { id: string; subject: string } | null;
  /** The whole first user message (the prompt), as text. */
  prompt: string;
  /** The client's working directory, from its environment note. */
  cwd: string | null;
  /** 0 for the first request of a conversation, +1 per assistant message. */
  turn: number;
  model: string;
}

export type Script = (ctx: TurnContext) => Turn;

/** A script from a list of turns (each fixed or made from the context); after the last: "Done." */
export function scriptOf(
  ...turns: (Turn | ((ctx: TurnContext) => Turn))[]
): Script {
  return (ctx) => {
    const t = turns[ctx.turn];
    if (t === undefined) return { text: "Done." };
    return typeof t === "function" ? t(ctx) : t;
  };
}

/** The file a task writes in the default script. */
export const taskFile = (id: string) => `task-${id}.txt`;
/** Its content. */
export const taskFileText = (id: string, subject: string) =>
  `task ${id}: ${subject}\n`;

/** Each task writes its own file (Write), then says it is done. */
export const writeTaskFile: Script = scriptOf(
  (c) => ({
    tool: "Write",
    file: taskFile(c.task?.id ?? "unknown"),
    content: taskFileText(c.task?.id ?? "unknown", c.task?.subject ?? ""),
  }),
  (c) => ({ text: `Task ${c.task?.id} is done.` }),
);

export interface RecordedRequest {
  at: number;
  method: string;
  path: string;
  /** A conversation request with tools (the script answered it). */
  main: boolean;
  model?: string;
  stream?: boolean;
  tools: string[];
  /** The system prompt's text, blocks joined. */
  system: string;
  /** The first user message's text. */
  prompt: string;
  task: { id: string; subject: string } | null;
  cwd: string | null;
  turn: number;
  /** Which credential came: `x-api-key`, `bearer`, or none. */
  auth: "x-api-key" | "bearer" | null;
  /** The client's retry counter header (x-stainless-retry-count). */
  retryCount: string | null;
  userAgent: string | null;
  status: number;
}

export interface AnthropicOptions {
  script?: Script;
  /** Usage of every answer (default 2000 input, 500 output tokens). */
  usage?: { input_tokens: number; output_tokens: number };
  /** Accepted keys/tokens; default: any non-empty one. */
  apiKeys?: string[];
}

export interface AnthropicEmulator extends AsyncDisposable {
  /** `http://127.0.0.1:<port>`: the client's ANTHROPIC_BASE_URL. */
  url: string;
  requests: RecordedRequest[];
  /** Main requests only, in arrival order. */
  turns(): RecordedRequest[];
  setScript(script: Script): void;
  setApiKeys(keys: string[] | undefined): void;
  stop(): Promise<void>;
}

const ERROR_TYPES: Record<FailStatus, [string, string]> = {
  401: ["authentication_error", "invalid x-api-key"],
  429: [
    "rate_limit_error",
    "Number of request tokens has exceeded your per-minute rate limit",
  ],
  500: ["api_error", "Internal server error"],
  529: ["overloaded_error", "Overloaded"],
};

type Json = Record<string, unknown>;

function textOf(content: unknown): string {
  if (typeof content === "string") return content;
  if (!Array.isArray(content)) return "";
  return content.map((b) =>
    typeof b === "object" && b !== null && (b as Json).type === "text"
      ? String((b as Json).text ?? "")
      : ""
  ).join("\n");
}

function parseTask(prompt: string): TurnContext["task"] {
  const m = /^# Task (\S+): (.*)$/m.exec(prompt);
  return m ? { id: m[1], subject: m[2].trim() } : null;
}

function parseCwd(texts: string[]): string | null {
  for (const t of texts) {
    const m = /Primary working directory: (.+)$/m.exec(t) ??
      /^Working directory: (.+)$/m.exec(t);
    if (m) return m[1].trim();
  }
  return null;
}

let ids = 0;
const nextId = (prefix: string) =>
  `${prefix}_emu${Date.now().toString(36)}${(++ids).toString(36)}`;

function errorResponse(status: FailStatus | 404, retryAfter?: number) {
  const [type, message] = status === 404
    ? ["not_found_error", "Not found"]
    : ERROR_TYPES[status];
  const requestId = nextId("req");
  const headers: Record<string, string> = {
    "content-type": "application/json",
    "request-id": requestId,
  };
  if (status === 429 || retryAfter !== undefined) {
    headers["retry-after"] = String(retryAfter ?? 1);
  }
  return new Response(
    JSON.stringify({
      type: "error",
      error: { type, message },
      request_id: requestId,
    }),
    { status, headers },
  );
}

/** The content block and stop reason of a turn that is not a failure. */
function blockOf(
  t: Exclude<Turn, { fail: FailStatus }>,
  cwd: string | null,
): { block: Json; stop: string } {
  if ("text" in t) {
    return { block: { type: "text", text: t.text }, stop: "end_turn" };
  }
  const abs = (f: string) => f.startsWith("/") ? f : `${cwd ?? "."}/${f}`;
  let input: Json;
  switch (t.tool) {
    case "Write":
      input = { file_path: abs(t.file), content: t.content };
      break;
    case "Read":
      input = { file_path: abs(t.file) };
      break;
    case "Edit":
      input = {
        file_path: abs(t.file),
        old_string: t.old,
        new_string: t.new,
        replace_all: false,
      };
      break;
    case "Bash":
      input = { command: t.command, description: "scripted command" };
      break;
  }
  return {
    block: { type: "tool_use", id: nextId("toolu"), name: t.tool, input },
    stop: "tool_use",
  };
}

function sse(events: [string, Json][]): string {
  return events.map(([e, d]) => `event: ${e}\ndata: ${JSON.stringify(d)}\n\n`)
    .join("");
}

/** The streamed form of one answer, event by event as the API sends it. */
function streamOf(
  model: string,
  block: Json,
  stop: string,
  usage: { input_tokens: number; output_tokens: number },
): string {
  const id = nextId("msg");
  const ev: [string, Json][] = [[
    "message_start",
    {
      type: "message_start",
      message: {
        id,
        type: "message",
        role: "assistant",
        model,
        content: [],
        stop_reason: null,
        stop_sequence: null,
        usage: {
          input_tokens: usage.input_tokens,
          output_tokens: 1,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 0,
        },
      },
    },
  ], ["ping", { type: "ping" }]];
  if (block.type === "text") {
    const text = String(block.text);
    const half = Math.ceil(text.length / 2);
    ev.push(
      ["content_block_start", {
        type: "content_block_start",
        index: 0,
        content_block: { type: "text", text: "" },
      }],
      ...[text.slice(0, half), text.slice(half)].filter(Boolean).map((
        piece,
      ): [string, Json] => [
        "content_block_delta",
        {
          type: "content_block_delta",
          index: 0,
          delta: { type: "text_delta", text: piece },
        },
      ]),
    );
  } else {
    const json = JSON.stringify(block.input);
    const half = Math.ceil(json.length / 2);
    ev.push(
      ["content_block_start", {
        type: "content_block_start",
        index: 0,
        content_block: { ...block, input: {} },
      }],
      ...[json.slice(0, half), json.slice(half)].map((
        piece,
      ): [string, Json] => [
        "content_block_delta",
        {
          type: "content_block_delta",
          index: 0,
          delta: { type: "input_json_delta", partial_json: piece },
        },
      ]),
    );
  }
  ev.push(
    ["content_block_stop", { type: "content_block_stop", index: 0 }],
    ["message_delta", {
      type: "message_delta",
      delta: { stop_reason: stop, stop_sequence: null },
      usage: { output_tokens: usage.output_tokens },
    }],
    ["message_stop", { type: "message_stop" }],
  );
  return sse(ev);
}

export function startAnthropic(
  opts: AnthropicOptions = {},
): Promise<AnthropicEmulator> {
  let script = opts.script ?? writeTaskFile;
  let keys = opts.apiKeys;
  const usage = opts.usage ?? { input_tokens: 2000, output_tokens: 500 };
  const requests: RecordedRequest[] = [];
  /** Requests seen per (conversation, turn), for `fail … times`. */
  const seen = new Map<string, number>();

  const handle = async (req: Request): Promise<Response> => {
    const url = new URL(req.url);
    const body = req.method === "POST" ? await req.text() : "";
    const apiKey = req.headers.get("x-api-key");
    const bearer = /^Bearer (.+)$/.exec(req.headers.get("authorization") ?? "")
      ?.[1];
    const rec: RecordedRequest = {
      at: Date.now(),
      method: req.method,
      path: url.pathname,
      main: false,
      tools: [],
      system: "",
      prompt: "",
      task: null,
      cwd: null,
      turn: 0,
      auth: apiKey ? "x-api-key" : bearer ? "bearer" : null,
      retryCount: req.headers.get("x-stainless-retry-count"),
      userAgent: req.headers.get("user-agent"),
      status: 200,
    };
    requests.push(rec);
    const answer = (r: Response) => {
      rec.status = r.status;
      return r;
    };
    if (req.method === "HEAD" || url.pathname === "/api/hello") {
      return answer(new Response(null, { status: 200 }));
    }
    if (req.method !== "POST" || !url.pathname.startsWith("/v1/messages")) {
      return answer(errorResponse(404));
    }
    const credential = apiKey ?? bearer;
    if (!credential || (keys && !keys.includes(credential))) {
      return answer(errorResponse(401));
    }
    let b: Json;
    try {
      b = JSON.parse(body);
    } catch {
      return answer(
        new Response(
          JSON.stringify({
            type: "error",
            error: { type: "invalid_request_error", message: "invalid JSON" },
          }),
          { status: 400, headers: { "content-type": "application/json" } },
        ),
      );
    }
    const messages = Array.isArray(b.messages) ? b.messages as Json[] : [];
    const system = Array.isArray(b.system)
      ? b.system.map((x: Json) => String(x.text ?? "")).join("\n")
      : String(b.system ?? "");
    const firstUser = messages.find((m) => m.role === "user");
    rec.model = String(b.model ?? "");
    rec.stream = b.stream === true;
    rec.tools = Array.isArray(b.tools)
      ? b.tools.map((t: Json) => String(t.name))
      : [];
    rec.system = system;
    rec.prompt = textOf(firstUser?.content);
    rec.task = parseTask(rec.prompt);
    rec.cwd = parseCwd([
      system,
      ...messages.map((m) => textOf(m.content)),
    ]);
    rec.turn = messages.filter((m) => m.role === "assistant").length;

    if (url.pathname.startsWith("/v1/messages/count_tokens")) {
      return answer(Response.json({ input_tokens: usage.input_tokens }));
    }
    rec.main = rec.tools.length > 0;
    let turn: Turn = rec.main
      ? script({
        task: rec.task,
        prompt: rec.prompt,
        cwd: rec.cwd,
        turn: rec.turn,
        model: rec.model,
      })
      : { text: "OK" };
    if ("fail" in turn) {
      const key = `${
        rec.task?.id ?? req.headers.get("x-claude-code-session-id") ?? ""
      }\0${rec.turn}`;
      const n = (seen.get(key) ?? 0) + 1;
      seen.set(key, n);
      if (n <= (turn.times ?? Infinity)) {
        return answer(errorResponse(turn.fail, turn.retryAfter));
      }
      turn = turn.then ?? { text: "Done." };
      if ("fail" in turn) {
        return answer(errorResponse(turn.fail, turn.retryAfter));
      }
    }
    const { block, stop } = blockOf(turn, rec.cwd);
    if (!rec.stream) {
      return answer(Response.json({
        id: nextId("msg"),
        type: "message",
        role: "assistant",
        model: rec.model,
        content: [block],
        stop_reason: stop,
        stop_sequence: null,
        usage: {
          ...usage,
          cache_creation_input_tokens: 0,
          cache_read_input_tokens: 0,
        },
      }));
    }
    return answer(
      new Response(streamOf(rec.model, block, stop, usage), {
        headers: {
          "content-type": "text/event-stream; charset=utf-8",
          "cache-control": "no-cache",
          "request-id": nextId("req"),
        },
      }),
    );
  };

  const server = Deno.serve({
    hostname: "127.0.0.1",
    port: 0,
    onListen: () => {},
  }, handle);
  const addr = server.addr as Deno.NetAddr;
  let stopped = false;
  const emu: AnthropicEmulator = {
    url: `http://127.0.0.1:${addr.port}`,
    requests,
    turns: () => requests.filter((r) => r.main),
    setScript: (s) => script = s,
    setApiKeys: (k) => keys = k,
    async stop() {
      if (stopped) return;
      stopped = true;
      await server.shutdown();
    },
    [Symbol.asyncDispose]: () => emu.stop(),
  };
  return Promise.resolve(emu);
}
