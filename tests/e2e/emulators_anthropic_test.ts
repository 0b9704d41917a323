/**
 * The scripted Anthropic API itself, over HTTP (the real client's side is
 * in claude_code_test.ts): event order and shapes of a streamed answer,
 * count_tokens, a non-streamed answer, errors in the API's shape.
 */
import assert from "node:assert/strict";
import { scriptOf, startAnthropic } from "./emulators/anthropic.ts";

const post = (url: string, body: unknown, headers: HeadersInit = {}) =>
  fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: JSON.stringify(body),
  });

const conversation = (turns: number) => ({
  model: "m-1",
  stream: true,
  tools: [{ name: "Write" }],
  system: [{ type: "text", text: "Primary working directory: /w" }],
  messages: [
    { role: "user", content: "# Task 4: four\n\nbody" },
    ...Array.from({ length: turns }, () => [
      { role: "assistant", content: [{ type: "text", text: "x" }] },
      { role: "user", content: "go on" },
    ]).flat(),
  ],
});

Deno.test("anthropic emulator: a streamed tool call, event by event", async () => {
  await using api = await startAnthropic({
    usage: { input_tokens: 7, output_tokens: 3 },
  });
  const r = await post(`${api.url}/v1/messages?beta=true`, conversation(0), {
    "x-api-key": "k",
  });
  assert.equal(r.status, 200);
  assert.match(r.headers.get("content-type")!, /^text\/event-stream/);
  const events = (await r.text()).trim().split("\n\n").map((chunk) => {
    const [e, d] = chunk.split("\n");
    return { event: e.slice(7), data: JSON.parse(d.slice(6)) };
  });
  assert.deepEqual(events.map((e) => e.event), [
    "message_start",
    "ping",
    "content_block_start",
    "content_block_delta",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
  ]);
  assert.equal(events[0].data.message.usage.input_tokens, 7);
  assert.equal(events[2].data.content_block.name, "Write");
  const json = events.slice(3, 5).map((e) => {
    assert.equal(e.data.delta.type, "input_json_delta");
    return e.data.delta.partial_json;
  }).join("");
  assert.deepEqual(JSON.parse(json), {
    file_path: "/w/task-4.txt",
    content: "task 4: four\n",
  });
  assert.equal(events[6].data.delta.stop_reason, "tool_use");
  assert.equal(events[6].data.usage.output_tokens, 3);
  const [rec] = api.requests;
  assert.deepEqual(rec.task, { id: "4", subject: "four" });
  assert.equal(rec.cwd, "/w");
  assert.equal(rec.main, true);

  // The next turn is text, as text deltas.
  const t = await (await post(`${api.url}/v1/messages`, conversation(1), {
    authorization: "Bearer tok",
  })).text();
  assert.match(t, /"type":"text_delta"/);
  assert.match(t, /"stop_reason":"end_turn"/);
  assert.equal(api.requests[1].auth, "bearer");
  assert.equal(api.requests[1].turn, 1);
});

Deno.test("anthropic emulator: count_tokens, non-streamed answers, errors", async () => {
  await using api = await startAnthropic({
    apiKeys: ["good"],
    script: scriptOf({ fail: 429, times: 1, retryAfter: 2 }),
  });
  const h = { "x-api-key": "good" };
  const c = await post(
    `${api.url}/v1/messages/count_tokens`,
    conversation(0),
    h,
  );
  assert.deepEqual(await c.json(), { input_tokens: 2000 });

  const side = await post(`${api.url}/v1/messages`, {
    model: "m",
    messages: [{ role: "user", content: "title?" }],
  }, h);
  const msg = await side.json();
  assert.equal(msg.type, "message");
  assert.deepEqual(msg.content, [{ type: "text", text: "OK" }]);

  const bad = await post(`${api.url}/v1/messages`, conversation(0), {
    "x-api-key": "bad",
  });
  assert.equal(bad.status, 401);
  assert.equal((await bad.json()).error.type, "authentication_error");

  const limited = await post(`${api.url}/v1/messages`, conversation(0), h);
  assert.equal(limited.status, 429);
  assert.equal(limited.headers.get("retry-after"), "2");
  assert.equal((await limited.json()).error.type, "rate_limit_error");
  const then = await post(`${api.url}/v1/messages`, conversation(0), h);
  assert.equal(then.status, 200);
  await then.body?.cancel();

  const nf = await fetch(`${api.url}/v1/models`);
  assert.equal(nf.status, 404);
  assert.equal((await nf.json()).error.type, "not_found_error");
  assert.deepEqual(api.requests.map((r) => r.status), [
    200,
    200,
    401,
    429,
    200,
    404,
  ]);
});
