/**
 * `ohcommodore daemon run`: the one process on a machine that opens its
 * inbox database. It serves the CLI (and `_rpc`, for other machines) on a
 * Unix socket, runs the scheduler and, on the flagship, holds the links to
 * the ships.
 */
import { Settings } from "../settings.ts";
import { OhcError, UsageError } from "../errors.ts";
import { InboxService } from "../inbox/service.ts";
import { illegalTransition } from "../inbox/checks.ts";
import { InboxStore } from "../inbox/store.ts";
import { recordToWire } from "../inbox/types.ts";
import type { LinkManager } from "../link/flagship.ts";
import { ShipLinkEnd } from "../link/ship.ts";
import { implement, wrapOps } from "../rpc/ops.ts";
import { type RpcHandlers, serveOne } from "../rpc/stream.ts";
import { resolveShortId } from "../short_id.ts";
import { readFleet } from "../state/fleet.ts";
import { readIdentity } from "../state/identity.ts";
import { paths } from "../state/paths.ts";
import { VERSION } from "../version.ts";
import { commandCgroups, sweepCommandCgroups } from "./containment.ts";
import { keepAwake } from "./awake.ts";
import { openMachineDatabase } from "./database.ts";
import { HOLD_SCRIPT, Scheduler } from "./scheduler.ts";
import { StartJournal } from "./start_journal.ts";

function log(msg: string) {
  console.error(`${new Date().toISOString()} daemon[${Deno.pid}]: ${msg}`);
}

const schedulerSettings = (s: Settings) => ({
  limit: s.get("OHCOMMODORE_INBOX_CONCURRENCY"),
  defaultTimeoutS: s.get("OHCOMMODORE_INBOX_TIMEOUT"),
});

const mtime = (path: string) =>
  Deno.stat(path).then((s) => s.mtime?.getTime() ?? 0, () => 0);

export async function runDaemon(home: string): Promise<number> {
  const self = await readIdentity(home);
  if (!self) {
    throw new UsageError(
      "this machine has no role: the daemon runs on the flagship and on ships",
    );
  }
  // One owner: a second daemon waits here until the first is gone.
  await Deno.mkdir(paths.runDir(home), { recursive: true, mode: 0o700 });
  const lock = await Deno.open(paths.daemonLock(home), {
    read: true,
    write: true,
    create: true,
    mode: 0o600,
  });
  await lock.lock(true);

  const db = await openMachineDatabase(paths.inboxDb(home));
  const store = new InboxStore(db);
  const { journal, noted } = await StartJournal.open(paths.startJournal(home));
  const interrupted = await store.inbox.markInterrupted(noted);
  journal.clear();
  if (interrupted) {
    log(
      `${interrupted} message(s) were running when the daemon stopped: marked error "interrupted"`,
    );
  }

  // A bad value stops the start with a line naming it (see the log).
  const settings = await Settings.load(home);
  let settingsMtime = await mtime(paths.settings(home));
  const service = new InboxService(store, self);
  const holdScript = `${paths.runDir(home)}/hold.sh`;
  await Deno.writeTextFile(holdScript, HOLD_SCRIPT, { mode: 0o600 });
  const cwd = self.repo_dir ? `${home}/${self.repo_dir}` : home;
  // OHCOMMODORE_NO_CGROUP=1: contain commands by their marker only.
  const cgroups = settings.get("OHCOMMODORE_NO_CGROUP")
    ? null
    : commandCgroups(home);
  // Cgroups left by a daemon that died: their messages are interrupted.
  const stale = await sweepCommandCgroups(cgroups);
  if (stale) log(`ended what ${stale} interrupted message(s) left running`);
  const scheduler = new Scheduler({
    unread: () => store.inbox.unread(),
    claim: (msgs) => store.inbox.claimThese(msgs),
    complete: (m, result, next) => service.complete(m, result, next),
  }, {
    cwd,
    ...schedulerSettings(settings),
    maxOutputBytes: store.maxOutputBytes,
    journal,
    holdScript,
    cgroups,
    env: {
      ...Deno.env.toObject(),
      PATH: `${paths.binDir(home)}:${Deno.env.get("PATH") ?? "/usr/bin:/bin"}`,
    },
    log,
  });
  // On a sprite: held awake while work is in flight (awake.ts).
  let waiting = 0;
  const awake = await keepAwake({
    home,
    self,
    db,
    store,
    running: () => scheduler.busy,
    waiting: () => waiting,
    log,
  });
  service.onInserted = (msgs) => {
    scheduler.kick(msgs);
    awake?.poke();
  };
  const pausedMarker = paths.daemonPaused(home);
  if (await Deno.stat(pausedMarker).then(() => true, () => false)) {
    scheduler.pause();
    log("the scheduler is paused ('daemon resume' starts it)");
  }

  let links: LinkManager | null = null;
  let shipEnd: ShipLinkEnd | null = null;
  let voyageHandlers: RpcHandlers = {};
  if (self.role === "commodore") {
    const { LinkManager } = await import("../link/flagship.ts");
    const { providerFor } = await import("../providers/mod.ts");
    const provider = providerFor(self.provider, { home });
    links = new LinkManager(provider, service, log);
    const { voyageOps } = await import("../voyage/flagship/daemon_ops.ts");
    voyageHandlers = await voyageOps({
      home,
      db,
      provider,
      ships: async () => Object.values((await readFleet(home)).ships),
      log,
    });
  } else {
    shipEnd = new ShipLinkEnd(service, log);
  }
  const syncLinks = async () => {
    if (!links) return;
    try {
      links.sync(Object.values((await readFleet(home)).ships));
    } catch (e) {
      log(`reading the fleet: ${(e as Error).message}`);
    }
  };
  await syncLinks();

  /** The message a (possibly short) id names in this machine's inbox. */
  const inboxId = (id: string) =>
    resolveShortId(
      id,
      (p, n) => store.inbox.idsStartingWith(p, n),
      "message",
    );

  const started = new Date().toISOString();
  const handlers: RpcHandlers = {
    ...implement("daemon", {
      "daemon.status": async () => ({
        pid: Deno.pid,
        version: VERSION,
        started_at: started,
        identity: service.me,
        busy: scheduler.busy,
        paused: scheduler.isPaused,
        counts: await store.inbox.counts(),
        queued: await service.flushDelivered().then(() =>
          store.outbox.countQueued()
        ),
        // Entries the flagship passed on that the next ship has not stored yet.
        relaying: links?.relay.inFlight ?? 0,
      }),
      // The marker is written first: a pause survives a restart (maintenance).
      "daemon.pause": async () => {
        await Deno.writeTextFile(
          pausedMarker,
          new Date().toISOString() + "\n",
        );
        scheduler.pause();
        log("scheduler paused");
        return { paused: true, running: scheduler.busy };
      },
      "daemon.resume": async () => {
        await Deno.remove(pausedMarker).catch((e) => {
          if (!(e instanceof Deno.errors.NotFound)) throw e;
        });
        scheduler.resume();
        log("scheduler resumed");
        return { paused: false, running: scheduler.busy };
      },
      "inbox.identity": () => service.me,
      "inbox.send": (a) =>
        service.send(a.recipient, a.command, a.timeout_s ?? null),
      "inbox.wait": async (a, { signal }) => {
        waiting++;
        awake?.poke();
        try {
          return recordToWire(
            await service.waitResult(a.id, a.timeout_ms ?? 3_600_000, signal),
          );
        } finally {
          waiting--;
        }
      },
      "inbox.list": async (a) => {
        const msgs = await store.inbox.list({
          status: a.status,
          limit: a.limit,
          withOutput: false,
        });
        await service.flushDelivered();
        const queued = await store.outbox.queued();
        return {
          messages: msgs.map(recordToWire),
          queued: queued.map((q) => ({
            id: q.id,
            kind: q.kind,
            recipient: q.recipient,
            ship: q.ship,
            attempts: q.attempts,
            created_at: q.created_at,
            command: q.kind === "message" ? q.payload.command : null,
          })),
        };
      },
      "inbox.show": async (a) => {
        const id = await resolveShortId(
          a.id,
          async (p, n) => [
            ...await store.inbox.idsStartingWith(p, n),
            ...await store.sent.idsStartingWith(p, n),
          ],
          "message",
        );
        const m = await store.inbox.get(id);
        if (m) return { kind: "inbox" as const, record: recordToWire(m) };
        const s = await store.sent.get(id);
        if (s) return { kind: "sent" as const, record: recordToWire(s) };
        throw new UsageError(`no message ${id}`);
      },
      "inbox.set": async (a) => {
        const id = await inboxId(a.id);
        if (!scheduler.handling(id)) {
          const e = illegalTransition(id, a.status, "running", "manual");
          throw new UsageError(e.message, e.hint);
        }
        let ok: boolean;
        try {
          ok = await store.inbox.setStatus(id, a.status, a.error ?? null);
        } catch (e) {
          if (e instanceof OhcError && e.code === "illegal_transition") {
            throw new UsageError(e.message);
          }
          throw e;
        }
        if (!ok) throw new UsageError(`no message ${id}`);
        const m = await store.inbox.get(id);
        if (m && (a.status === "done" || a.status === "error")) {
          await service.finished(m);
        }
        return m ? recordToWire(m) : null;
      },
      "inbox.delete": async (a) => {
        const id = await inboxId(a.id);
        scheduler.handling(id); // a running one may go too, as before
        if (!(await store.inbox.delete(id))) {
          throw new UsageError(`no message ${id}`);
        }
        return { deleted: id };
      },
      "link.attach": async (_a, ctx) => {
        if (!shipEnd) throw new UsageError("only ships accept a link");
        await shipEnd.attach(ctx);
        return null;
      },
      "link.status": async () => {
        await syncLinks();
        return links?.status() ?? [];
      },
      "link.sync": async () => {
        await syncLinks();
        return links?.status() ?? [];
      },
    }),
    ...voyageHandlers,
  };
  // Work for ships (a message, a voyage): a sprite stays awake for it.
  const served = wrapOps(
    handlers,
    (spec) => spec.work,
    (h) => async (ctx) => {
      const r = await h(ctx);
      awake?.poke();
      return r;
    },
  );

  const sock = paths.daemonSocket(home);
  await Deno.remove(sock).catch(() => {});
  const listener = Deno.listen({ transport: "unix", path: sock });
  await Deno.chmod(sock, 0o600);
  log(`serving ${service.me} on ${sock}`);
  await scheduler.begin();

  let stopping = false;
  const shutdown = async (why: string) => {
    if (stopping) return;
    stopping = true;
    log(`stopping: ${why}`);
    try {
      listener.close();
    } catch { /* closed */ }
    links?.stop();
    await scheduler.stop("interrupted: the daemon stopped");
    await awake?.stop().catch(() => {});
    await service.flushDelivered().catch(() => {});
    await db.close();
    journal.close();
    await Deno.remove(sock).catch(() => {});
    lock.close();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGTERM", () => void shutdown("SIGTERM"));
  Deno.addSignalListener("SIGINT", () => void shutdown("SIGINT"));
  // The VM was destroyed under us, or the fleet changed.
  setInterval(async () => {
    try {
      await Deno.stat(paths.identity(home));
    } catch {
      return void shutdown("this machine's identity is gone");
    }
    await syncLinks();
    // `fleet config set` rewrote the settings file: take it from now on.
    const m = await mtime(paths.settings(home));
    if (m !== settingsMtime) {
      settingsMtime = m;
      try {
        scheduler.configure(schedulerSettings(await Settings.load(home)));
        log("settings reloaded");
      } catch (e) {
        log(`settings not reloaded: ${(e as Error).message}`);
      }
    }
  }, 2_000);

  for await (const conn of listener) {
    void serveOne(conn.readable, conn.writable, () => served)
      .catch((e) => log(`connection: ${(e as Error).message}`))
      .finally(() => {
        try {
          conn.close();
        } catch { /* closed */ }
      });
  }
  return 0;
}
