/**
 * ssh's ProxyCommand for bench/deploy.ts: relays stdin/stdout to
 * HOST:PORT, counting the bytes each way, and holds what goes up to
 * BYTES_PER_S (0: no limit) like a laptop's uplink. It keeps
 * `<sent> <received> open|closed` in COUNTFILE.<pid>.<random>, written as it goes
 * and when it ends (ssh ends a ProxyCommand with SIGHUP).
 *
 *   ProxyCommand deno run -A bench/uplink_proxy.ts %h %p COUNTFILE BYTES_PER_S
 */
const [host, port, countFile, rateArg] = Deno.args;
const rate = Number(rateArg ?? 0);
// Unique per relay: pids wrap around (32768 here) within one benchmark run.
const file = `${countFile}.${Deno.pid}.${crypto.randomUUID().slice(0, 8)}`;
let sent = 0;
let received = 0;
let written = 0;
// Written aside and renamed, so a reader never sees the file empty.
const save = (state: "open" | "closed") => {
  Deno.writeTextFileSync(`${file}.tmp`, `${sent} ${received} ${state}\n`);
  Deno.renameSync(`${file}.tmp`, file);
  written = performance.now();
};
const end = () => {
  save("closed");
  Deno.exit(0);
};
for (const sig of ["SIGHUP", "SIGTERM", "SIGINT"] as const) {
  Deno.addSignalListener(sig, end);
}
save("open");
const conn = await Deno.connect({ hostname: host, port: Number(port) });
let next = performance.now();
const PIECE = 16 * 1024;

const up = (async () => {
  const w = conn.writable.getWriter();
  for await (const chunk of Deno.stdin.readable) {
    for (let off = 0; off < chunk.length; off += PIECE) {
      const piece = chunk.subarray(off, off + PIECE);
      if (rate > 0) {
        // A token bucket with no burst: each piece waits its turn.
        next = Math.max(next, performance.now()) + piece.length / rate * 1000;
        const wait = next - performance.now();
        if (wait > 1) await new Promise((r) => setTimeout(r, wait));
      }
      await w.write(piece);
      sent += piece.length;
      if (performance.now() - written > 200) save("open");
    }
  }
  await conn.closeWrite().catch(() => {});
})();
const down = conn.readable.pipeThrough(
  new TransformStream<Uint8Array, Uint8Array>({
    transform(chunk, c) {
      received += chunk.length;
      c.enqueue(chunk);
    },
  }),
).pipeTo(Deno.stdout.writable).catch(() => {});
await Promise.race([up.catch(() => {}), down]);
await down;
end();
