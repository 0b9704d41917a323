/**
 * The inbox under load, ship to ship through the flagship (every hop a real
 * daemon and a real link):
 *
 * (a) latency: one ship sends N messages (`true`) to another, one at a time,
 *     each followed by a wait for its result (`inbox send --wait`
 *     semantics) → p50/p95 ms from send to the result back at the sender,
 *     and where that time goes, from the messages' own timestamps;
 * (b) throughput: 4 ships send 250 messages each to one ship at the same
 *     time → messages/s from the first send to the last message `done` on
 *     the receiver, and each command run exactly once.
 *
 * Goals from the inbox issue: p50 <= 300 ms, >= 100 messages/s. Baseline:
 * the bash version's scheduler polled every 10 s and slept 10 s after every
 * message (a message waited 5 s on average, at most 10 s; at most 0.1
 * messages/s). Prints, never asserts.
 *
 * Messages go in through each VM's daemon socket, as tests/helpers/sender.ts
 * does (`inbox.send`, then `inbox.wait`): the API the CLI uses, minus its
 * process start per message.
 *
 *   deno run -A bench/inbox.ts [--provider local|exedev] [--n 100]
 *     [--senders 4] [--per-sender 250] [--budget 75] [--concurrency K]
 *     [--store-only]
 *
 * (b) stops counting after --budget seconds and reports the rate over the
 * messages finished by then. --concurrency sets the daemons'
 * OHCOMMODORE_INBOX_CONCURRENCY (local provider; default: the product's 1).
 * (c) times the receiver's store operations per message in this process
 * (`--store-only`: just that, no fleet).
 *
 * `--provider exedev` runs the same over the exe.dev emulator (real OpenSSH
 * links; needs root, sshd and unshare, see tests/e2e/emulators/README.md)
 * through tests/helpers/exedev_fleet.ts; if that helper or
 * `init --provider exedev` is not there yet it says so and exits 0.
 */
import { teardown } from "../tests/helpers/cli.ts";
import { parseArgs } from "node:util";
import { daemonCall } from "../lib/daemon/client.ts";
import type { Envelope, Message } from "../lib/inbox/types.ts";

const root = new URL("..", import.meta.url).pathname.replace(/\/$/, "");
const { values: opt } = parseArgs({
  args: Deno.args,
  options: {
    provider: { type: "string", default: "local" },
    n: { type: "string", default: "100" },
    senders: { type: "string", default: "4" },
    "per-sender": { type: "string", default: "250" },
    budget: { type: "string", default: "75" },
    concurrency: { type: "string" },
    "store-only": { type: "boolean", default: false },
  },
});
const provider = opt.provider;
if (provider !== "local" && provider !== "exedev") {
  console.error(`--provider must be local or exedev, not ${provider}`);
  Deno.exit(2);
}
const N = Number(opt.n);
const SENDERS = Number(opt.senders);
const PER = Number(opt["per-sender"]);
/** Seconds (b) may take before it reports the rate over what is done. */
const BUDGET_S = Number(opt.budget);
const WARMUP = 5;
const GOAL_P50_MS = 300;
const GOAL_RATE = 100;
const BASH_POLL_S = 10;
const dec = new TextDecoder();
const artifact = `${root}/dist/dev/ohcommodore`;

await new Deno.Command(Deno.execPath(), {
  args: ["run", "-A", `${root}/scripts/artifact.ts`],
  stdout: "null",
}).output();

/** One call on a VM's daemon socket (what the CLI does, minus its start-up). */
function daemonOn<T>(
  vmHome: string,
  op: string,
  args: Record<string, unknown> = {},
): Promise<T> {
  return daemonCall<T>(op, args, { home: vmHome });
}

interface Fleet {
  /** Host path of a VM's home (its daemon socket lives under it). */
  vmHome(name: string): Promise<string>;
  /** Runs the CLI on the laptop; throws on a non-zero exit. */
  ok(args: string[]): Promise<string>;
  stop(): Promise<void>;
}

async function localFleet(): Promise<Fleet> {
  const home = await Deno.makeTempDir({ prefix: "ohc-bench-inbox-" });
  const run = async (args: string[]) => {
    const r = await new Deno.Command(artifact, {
      args,
      env: {
        HOME: home,
        PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin",
        ...(opt.concurrency === undefined
          ? {}
          : { OHCOMMODORE_INBOX_CONCURRENCY: opt.concurrency }),
      },
      clearEnv: true,
      cwd: home,
      stdin: "null",
    }).output();
    return {
      code: r.code,
      out: dec.decode(r.stdout),
      err: dec.decode(r.stderr),
    };
  };
  const fleet: Fleet = {
    vmHome: (name) => Promise.resolve(`${home}/.ohcommodore/local/${name}`),
    async ok(args) {
      const r = await run(args);
      if (r.code !== 0) {
        throw new Error(
          `ohcommodore ${args.join(" ")} exited ${r.code}\n${r.err}`,
        );
      }
      return r.out;
    },
    async stop() {
      await teardown(home);
    },
  };
  try {
    await fleet.ok(["init", "--provider", "local"]);
  } catch (e) {
    await fleet.stop();
    throw e;
  }
  return fleet;
}

/** The exe.dev emulator fleet helper, if this checkout has it yet. */
interface ExeDevFleetLike {
  flagship: string;
  vmHome(name: string): Promise<string>;
  ok(args: string[]): Promise<{ stdout: string }>;
  stop(): Promise<void>;
}

async function exeDevFleet(): Promise<Fleet | string> {
  // Not a static import: the helper is being written alongside this
  // benchmark, and `deno check` must pass without it.
  const helper = `${root}/tests/helpers/exedev_fleet.ts`;
  let mod: { exeDevFleet?: () => Promise<ExeDevFleetLike> };
  try {
    mod = await import(helper);
  } catch (e) {
    return `cannot load ${helper}: ${(e as Error).message.split("\n")[0]}`;
  }
  if (!mod.exeDevFleet) return `${helper} has no exeDevFleet()`;
  let f: ExeDevFleetLike;
  try {
    f = await mod.exeDevFleet(); // starts the emulator, runs init --provider exedev
  } catch (e) {
    const lines = (e as Error).message.trim().split("\n").filter((l) => l);
    return `init --provider exedev over the emulator failed: ${
      lines.slice(-2).join(" / ")
    }`;
  }
  return {
    vmHome: (name) => f.vmHome(name),
    ok: async (args) => (await f.ok(args)).stdout,
    stop: () => f.stop(),
  };
}

interface Sent extends Envelope {
  status: string;
  started_at: string | null;
  finished_at: string | null;
  result_at: string | null;
}
interface Listed {
  messages: {
    id: string;
    status: string;
    created_at: string;
    received_at: string;
    started_at: string | null;
    finished_at: string | null;
  }[];
}

const t = (iso: string | null) => iso === null ? NaN : Date.parse(iso);
const pct = (xs: number[], p: number) => {
  const s = xs.filter((x) => !Number.isNaN(x)).sort((a, b) => a - b);
  return s.length
    ? s[Math.min(s.length - 1, Math.ceil(p * s.length) - 1)]
    : NaN;
};
const f0 = (x: number) => x.toFixed(0);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function waitLinksUp(flagship: string, ships: string[]) {
  const deadline = Date.now() + 60_000;
  while (true) {
    const links = await daemonOn<{ ship: string; state: string }[]>(
      flagship,
      "link.sync",
    );
    const up = new Set(
      links.filter((l) => l.state === "up").map((l) => l.ship),
    );
    if (ships.every((s) => up.has(s))) return;
    if (Date.now() > deadline) {
      throw new Error(`links not up: ${JSON.stringify(links)}`);
    }
    await sleep(200);
  }
}

async function sendRetrying(
  home: string,
  recipient: string,
  command: string,
): Promise<Envelope> {
  for (let attempt = 0;; attempt++) {
    try {
      return await daemonOn<Envelope>(home, "inbox.send", {
        recipient,
        command,
        timeout_s: null,
      });
    } catch (e) {
      // The roster may not have reached this ship yet.
      if (attempt > 50) throw e;
      await sleep(100);
    }
  }
}

/** (a): N round trips one after the other; ms each, plus the hop times. */
async function latency(fleet: Fleet) {
  const sender = await fleet.vmHome("sender1");
  const target = await fleet.vmHome("target");
  const rtt: number[] = [];
  const sent: Sent[] = [];
  for (let i = 0; i < WARMUP + N; i++) {
    const t0 = performance.now();
    const env = await sendRetrying(sender, "captain@target", "true");
    const rec = await daemonOn<Sent>(sender, "inbox.wait", {
      id: env.id,
      timeout_ms: 30_000,
    });
    const ms = performance.now() - t0;
    if (rec.status !== "done") {
      throw new Error(`message ${env.id}: ${rec.status}`);
    }
    if (i >= WARMUP) {
      rtt.push(ms);
      sent.push(rec);
    }
  }
  const received = new Map(
    (await daemonOn<Listed>(target, "inbox.list", {})).messages.map((
      m,
    ) => [m.id, m]),
  );
  const hops = {
    "sender -> flagship -> receiver (created -> received)": sent.map((s) =>
      t(received.get(s.id)!.received_at) - t(s.created_at)
    ),
    "queued on the receiver (received -> started)": sent.map((s) =>
      t(s.started_at) - t(received.get(s.id)!.received_at)
    ),
    "bash -c true (started -> finished)": sent.map((s) =>
      t(s.finished_at) - t(s.started_at)
    ),
    "result back to the sender (finished -> result_at)": sent.map((s) =>
      t(s.result_at) - t(s.finished_at)
    ),
  };
  return { rtt, hops };
}

/**
 * CPU seconds (self, waited-for children) of the `daemon run` process whose
 * HOME is `vmHome`, from /proc: local provider only (exe.dev VMs all have
 * HOME=/home/exedev). null when it cannot be found.
 */
async function daemonCpu(
  vmHome: string,
): Promise<{ self: number; children: number } | null> {
  for await (const e of Deno.readDir("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const cmd = await Deno.readTextFile(`/proc/${e.name}/cmdline`);
      if (!cmd.includes("daemon\0run")) continue;
      const env = (await Deno.readTextFile(`/proc/${e.name}/environ`)).split(
        "\0",
      );
      if (!env.includes(`HOME=${vmHome}`)) continue;
      const stat = await Deno.readTextFile(`/proc/${e.name}/stat`);
      const f = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      // fields 14-17 of stat: utime stime cutime cstime, in clock ticks (100/s)
      return {
        self: (Number(f[11]) + Number(f[12])) / 100,
        children: (Number(f[13]) + Number(f[14])) / 100,
      };
    } catch { /* gone */ }
  }
  return null;
}

async function cpuSnapshot(fleet: Fleet, vms: string[]) {
  const out: Record<string, { self: number; children: number } | null> = {};
  for (const vm of vms) out[vm] = await daemonCpu(await fleet.vmHome(vm));
  return out;
}

/** (b): SENDERS ships send PER messages each at once to one ship. */
async function throughput(fleet: Fleet, senders: string[]) {
  const target = await fleet.vmHome("receiver");
  const homes = await Promise.all(senders.map((s) => fleet.vmHome(s)));
  const command = 'echo "$OHC_MESSAGE_ID" >> "$HOME/ids.txt"';
  const total = senders.length * PER;
  const vms = ["flagship", "receiver", ...senders];
  const cpu0 = provider === "local" ? await cpuSnapshot(fleet, vms) : null;
  const t0 = Date.now();
  // Where messages wait: sampled twice a second while (b) runs.
  const flagship = await fleet.vmHome("flagship");
  const backlog = { senders: 0, flagship: 0, unread: 0 };
  let sampling = true;
  const sampler = (async () => {
    type St = { counts: Record<string, number>; queued: number };
    while (sampling) {
      try {
        const st = await Promise.all(
          [...homes, flagship, target].map((h) =>
            daemonOn<St>(h, "daemon.status")
          ),
        );
        const out = st.slice(0, homes.length).reduce((a, x) => a + x.queued, 0);
        backlog.senders = Math.max(backlog.senders, out);
        backlog.flagship = Math.max(backlog.flagship, st[homes.length].queued);
        backlog.unread = Math.max(
          backlog.unread,
          st[homes.length + 1].counts.unread ?? 0,
        );
      } catch { /* a daemon busy restarting: skip this sample */ }
      await sleep(500);
    }
  })();
  let sendsDone = 0;
  const ids = await Promise.all(homes.map(async (h) => {
    const mine: string[] = [];
    for (let i = 0; i < PER; i++) {
      mine.push((await sendRetrying(h, "captain@receiver", command)).id);
    }
    sendsDone = Math.max(sendsDone, Date.now());
    return mine;
  }));
  const deadline = t0 + BUDGET_S * 1000;
  let complete = false;
  // Each command appends a line when it runs: counting lines costs the
  // receiver nothing, where asking its daemon every 50 ms would cost it a
  // database read each time. Only the last few polls ask.
  const runs = async () =>
    (await Deno.readTextFile(`${target}/ids.txt`).catch(() => "")).split(
      "\n",
    ).length - 1;
  while (true) {
    if (await runs() >= total) {
      const s = await daemonOn<{ counts: Record<string, number> }>(
        target,
        "daemon.status",
      );
      const terminal = (s.counts.done ?? 0) + (s.counts.error ?? 0);
      if (terminal >= total) {
        complete = true;
        break;
      }
    }
    if (Date.now() > deadline) break;
    await sleep(50);
  }
  const cut = Date.now();
  sampling = false;
  await sampler;
  const cpu1 = cpu0 ? await cpuSnapshot(fleet, vms) : null;
  const cpu: Record<string, { self: number; children: number }> = {};
  for (const vm of vms) {
    const [a, b] = [cpu0?.[vm], cpu1?.[vm]];
    if (a && b) {
      cpu[vm] = { self: b.self - a.self, children: b.children - a.children };
    }
  }
  const all = (await daemonOn<Listed>(target, "inbox.list", {})).messages;
  const msgs = all.filter((m) =>
    m.finished_at !== null && t(m.finished_at) <= cut
  );
  // The last command's end; the rate counts to `cut` instead, when the
  // receiver's database had recorded every one done (the scheduler may hand
  // a slot over before the database records it: start_journal.ts).
  const lastDone = complete
    ? Math.max(...msgs.map((m) => t(m.finished_at)))
    : cut;
  const firstStarted = Math.min(...msgs.map((m) => t(m.started_at)));
  let lastBack = NaN;
  if (complete) {
    // The results travel back too: wait for each sender's last one.
    const back = await Promise.all(
      homes.map((h, i) =>
        daemonOn<Sent>(h, "inbox.wait", {
          id: ids[i].at(-1),
          timeout_ms: 60_000,
        })
      ),
    );
    lastBack = Math.max(...back.map((r) => t(r.result_at)));
  }
  const ran = (await Deno.readTextFile(`${target}/ids.txt`)).trim().split("\n");
  return {
    total,
    complete,
    cpu,
    backlog,
    wallS: (cut - t0) / 1000,
    finished: msgs.length,
    done: all.filter((m) => m.status === "done").length,
    ranOnce: new Set(ran).size === ran.length,
    ranLines: ran.length,
    sendS: (sendsDone - t0) / 1000,
    doneS: (cut - t0) / 1000,
    lastRunS: (lastDone - t0) / 1000,
    backS: (lastBack - t0) / 1000,
    cycleMs: (lastDone - firstStarted) / Math.max(1, msgs.length - 1),
    deliver: msgs.map((m) => t(m.received_at) - t(m.created_at)),
    queued: msgs.map((m) => t(m.started_at) - t(m.received_at)),
    run: msgs.map((m) => t(m.finished_at) - t(m.started_at)),
  };
}

if (opt["store-only"]) {
  await storeCost();
  Deno.exit(0);
}

const senders = Array.from({ length: SENDERS }, (_, i) => `sender${i + 1}`);
let fleet: Fleet;
if (provider === "exedev") {
  const f = await exeDevFleet();
  if (typeof f === "string") {
    console.log(`exedev: not available yet (${f})`);
    Deno.exit(0);
  }
  fleet = f;
} else {
  fleet = await localFleet();
}

try {
  const setup0 = Date.now();
  await fleet.ok(["ship", "create", "target", "receiver", ...senders]);
  await waitLinksUp(await fleet.vmHome("flagship"), [
    "target",
    "receiver",
    ...senders,
  ]);
  console.log(
    `inbox on ${provider}${
      opt.concurrency ? ` (scheduler concurrency ${opt.concurrency})` : ""
    }: flagship + ${2 + SENDERS} ships ready in ${
      ((Date.now() - setup0) / 1000).toFixed(1)
    } s; ${WARMUP} warm-up messages first`,
  );

  const lat = await latency(fleet);
  const p50 = pct(lat.rtt, 0.5), p95 = pct(lat.rtt, 0.95);
  console.log(
    `(a) latency, ${N} x sender1 -> target 'true', send to result back at sender1:`,
  );
  console.log(
    `    p50 ${f0(p50)} ms  p95 ${f0(p95)} ms  max ${f0(pct(lat.rtt, 1))} ms` +
      `   goal p50 <= ${GOAL_P50_MS} ms (${
        p50 <= GOAL_P50_MS ? "met" : "not met"
      })`,
  );
  console.log(
    `    bash baseline: a ${BASH_POLL_S} s poll, 5000 ms wait on average ` +
      `(${(5000 / p50).toFixed(0)}x our p50), ${
        BASH_POLL_S * 1000
      } ms at worst ` +
      `(${(BASH_POLL_S * 1000 / p95).toFixed(0)}x our p95)`,
  );
  console.log("    where it goes (ms, p50 / p95, message timestamps):");
  for (const [name, xs] of Object.entries(lat.hops)) {
    console.log(
      `      ${name.padEnd(54)} ${f0(pct(xs, 0.5)).padStart(5)} / ${
        f0(pct(xs, 0.95))
      }`,
    );
  }
  const sumP50 = Object.values(lat.hops).reduce((a, xs) => a + pct(xs, 0.5), 0);
  console.log(
    `      ${"the rest: socket calls and waking inbox.wait".padEnd(54)} ` +
      `${f0(p50 - sumP50).padStart(5)}   (p50 minus the hops' p50s)`,
  );

  const tp = await throughput(fleet, senders);
  const rate = tp.finished / tp.doneS;
  console.log(
    `(b) throughput, ${SENDERS} senders x ${PER} -> receiver, first send to all recorded done there:`,
  );
  console.log(
    `    ${tp.finished} of ${tp.total} messages finished in ${
      tp.doneS.toFixed(2)
    } s` +
      `${
        tp.complete ? "" : ` (the ${BUDGET_S} s budget; the rest still queued)`
      }` +
      ` = ${rate.toFixed(1)} msg/s   goal >= ${GOAL_RATE} msg/s ` +
      `(${rate >= GOAL_RATE ? "met" : "not met"})`,
  );
  console.log(
    `    bash baseline: at most ${1 / BASH_POLL_S} msg/s (it sleeps ` +
      `${BASH_POLL_S} s after every message): ${
        (rate * BASH_POLL_S).toFixed(0)
      }x that`,
  );
  console.log(
    `    all sends accepted after ${tp.sendS.toFixed(2)} s ` +
      `(${(tp.total / tp.sendS).toFixed(0)} sends/s)` +
      (tp.complete
        ? `; last command ended after ${
          tp.lastRunS.toFixed(2)
        } s, last result back at a sender after ${tp.backS.toFixed(2)} s`
        : ""),
  );
  console.log(
    `    ${tp.done} done, ${tp.ranLines} runs recorded, ` +
      `${tp.ranOnce ? "none twice" : "SOME RAN TWICE"}`,
  );
  console.log(
    `    per finished message (ms, p50 / p95): delivery (created -> received) ` +
      `${f0(pct(tp.deliver, 0.5))} / ${f0(pct(tp.deliver, 0.95))}; queued ` +
      `${f0(pct(tp.queued, 0.5))} / ${f0(pct(tp.queued, 0.95))}; run ` +
      `${f0(pct(tp.run, 0.5))} / ${f0(pct(tp.run, 0.95))}`,
  );
  if (Object.keys(tp.cpu).length) {
    const senderCpu = senders.reduce(
      (a, v) => a + (tp.cpu[v]?.self ?? 0),
      0,
    );
    const c = (vm: string) =>
      `${tp.cpu[vm]?.self.toFixed(1)} s` +
      (tp.cpu[vm]?.children
        ? ` (+${tp.cpu[vm].children.toFixed(1)} s commands)`
        : "");
    console.log(
      `    daemons' CPU over those ${
        tp.wallS.toFixed(0)
      } s (2 cores): flagship ` +
        `${c("flagship")}, receiver ${c("receiver")}, ${SENDERS} senders ${
          senderCpu.toFixed(1)
        } s`,
    );
  }
  console.log(
    `    largest backlog seen: ${tp.backlog.senders} in the senders' outboxes, ` +
      `${tp.backlog.flagship} in the flagship's outbox, ` +
      `${tp.backlog.unread} unread on the receiver`,
  );
  const runMean = tp.run.reduce((a, b) => a + b, 0) / tp.run.length;
  const k = Number(opt.concurrency ?? 1);
  console.log(
    `    the receiver finished one message every ${
      tp.cycleMs.toFixed(1)
    } ms: ` +
      `${runMean.toFixed(1)} ms running the command (mean)` +
      (k > 1
        ? `, up to ${k} at a time`
        : `, ${(tp.cycleMs - runMean).toFixed(1)} ms between commands`),
  );
} finally {
  await fleet.stop();
}

await storeCost();

/**
 * (c) The receiver's database work per message, without processes or
 * links: what its daemon does in the store for each message it receives,
 * runs and answers (store a link batch, finish it + send its result on +
 * claim the next in one transaction, mark the result delivered), timed in
 * this process on a scratch database file, for link batches of 1 and 20.
 */
async function storeCost() {
  const { openStore } = await import("../lib/inbox/store.ts");
  const { InboxService } = await import("../lib/inbox/service.ts");
  const dir = await Deno.makeTempDir({ prefix: "ohc-bench-store-" });
  const store = await openStore(`${dir}/data.duckdb`);
  const svc = new InboxService(
    store,
    {
      role: "captain",
      name: "receiver",
      flagship: "flagship",
    } as ConstructorParameters<typeof InboxService>[1],
  );
  const M = 200;
  try {
    console.log(
      `(c) the receiver's store alone, per message (${M} messages, this process, ` +
        `scratch DuckDB file):`,
    );
    for (const batch of [1, 20]) {
      const cost = { accept: 0, complete: 0, delivered: 0 };
      const timed = async <T>(k: keyof typeof cost, fn: () => Promise<T>) => {
        const t0 = performance.now();
        const r = await fn();
        cost[k] += performance.now() - t0;
        return r;
      };
      let unread: Message[] = [];
      svc.onInserted = (ms) => unread.push(...ms);
      for (let i = 0; i < M; i += batch) {
        const entries = Array.from({ length: batch }, () => {
          const id = crypto.randomUUID();
          return {
            kind: "message" as const,
            id,
            recipient: "captain@receiver",
            payload: {
              id,
              sender: "captain@sender1",
              recipient: "captain@receiver",
              command: "true",
              created_at: new Date().toISOString(),
              timeout_s: null,
            },
          };
        });
        await timed("accept", () => svc.accept(entries));
        let [running]: (Message | null)[] = await store.inbox.claimThese(
          unread.splice(0, 1),
        );
        while (running) {
          const m: Message = running;
          running = await timed("complete", () =>
            svc.complete(m, {
              status: "done",
              exit_code: 0,
              stdout: "",
              stderr: "",
            }, unread.shift() ?? null));
          svc.delivered([{ kind: "result", id: m.id }]);
        }
        // The daemon marks a burst of acknowledgements at once.
        await timed("delivered", () => svc.flushDelivered());
      }
      unread = [];
      const total = cost.accept + cost.complete + cost.delivered;
      console.log(
        `      link batches of ${String(batch).padStart(2)}: store a batch ` +
          `${(cost.accept / M).toFixed(2)}, finish+claim ` +
          `${(cost.complete / M).toFixed(2)}, mark delivered ` +
          `${(cost.delivered / M).toFixed(2)} -> ${
            (total / M).toFixed(2)
          } ms ` +
          `(at most ${
            (1000 * M / total).toFixed(0)
          } msg/s from the store alone)`,
      );
    }
  } finally {
    await store.close();
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}
