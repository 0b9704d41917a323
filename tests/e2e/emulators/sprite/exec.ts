/**
 * Exec sessions of the fake sprites service, as the vendor's SDKs speak
 * them: the WebSocket form (binary frames led by a stream byte: 0 stdin,
 * 1 stdout, 2 stderr, 3 exit + code, 4 stdin EOF; text frames for
 * `{"type":"signal"}`) and the HTTP form (POST, the same frames as chunks).
 *
 * The command runs in its own process group (model.ts spawn), in the
 * sprite's home (or `dir`), with only the sprite's base environment plus
 * the `env` parameters: no host PATH or state. When its session ends
 * before it does, its process group is killed.
 */
import { killGroup, type Model, type Session, type Sprite } from "./model.ts";

const SIGNALS: Record<string, number> = {
  SIGHUP: 1,
  SIGINT: 2,
  SIGQUIT: 3,
  SIGABRT: 6,
  SIGKILL: 9,
  SIGSEGV: 11,
  SIGPIPE: 13,
  SIGALRM: 14,
  SIGTERM: 15,
};

export interface ExecRequest {
  argv: string[];
  stdin: boolean;
  tty: boolean;
  dir: string | null;
  env: Record<string, string>;
}

/** Reads the query of an exec URL; a string is the reason it is bad. */
export function parseExec(url: URL): ExecRequest | string {
  const argv = url.searchParams.getAll("cmd");
  if (argv.length === 0) return "no command (cmd=...)";
  const env: Record<string, string> = {};
  for (const kv of url.searchParams.getAll("env")) {
    const i = kv.indexOf("=");
    if (i <= 0) return `invalid env "${kv}": want K=V`;
    env[kv.slice(0, i)] = kv.slice(i + 1);
  }
  return {
    argv,
    stdin: url.searchParams.get("stdin") === "true",
    tty: url.searchParams.get("tty") === "true",
    dir: url.searchParams.get("dir"),
    env,
  };
}

interface Started {
  child: Deno.ChildProcess | null;
  /** Why it could not start: [exit code, message]. */
  failed: [number, string] | null;
}

function start(model: Model, s: Sprite, r: ExecRequest): Started {
  // `dir` as the sprite's processes see it, checked on the host's side.
  const cwd = r.dir ? model.insidePath(s, r.dir) : model.homeIn(s);
  try {
    if (r.dir && !Deno.statSync(model.mapPath(s, r.dir)).isDirectory) {
      throw new Error();
    }
  } catch {
    return { child: null, failed: [1, `chdir ${r.dir}: no such directory`] };
  }
  try {
    const child = model.spawn(s, r.argv, {
      cwd,
      env: { ...model.baseEnv(s), PWD: cwd, ...r.env },
      stdin: r.stdin ? "piped" : "null",
      stdout: "piped",
      stderr: "piped",
    });
    return { child, failed: null };
  } catch (e) {
    if (e instanceof Deno.errors.NotFound) {
      return {
        child: null,
        failed: [
          127,
          `exec: "${r.argv[0]}": executable file not found in $PATH`,
        ],
      };
    }
    return {
      child: null,
      failed: [126, `exec: "${r.argv[0]}": ${(e as Error).message}`],
    };
  }
}

/** Ends the process group of a session whose client went away. */
function reap(child: Deno.ChildProcess): void {
  killGroup(child, "SIGTERM");
  const t = setTimeout(() => killGroup(child, "SIGKILL"), 2_000);
  void child.status.finally(() => clearTimeout(t));
}

async function exitCode(child: Deno.ChildProcess): Promise<number> {
  const st = await child.status;
  return st.signal ? 128 + (SIGNALS[st.signal] ?? 0) : st.code;
}

const frame = (id: number, data?: Uint8Array) => {
  const f = new Uint8Array((data?.length ?? 0) + 1);
  f[0] = id;
  if (data) f.set(data, 1);
  return f;
};

/** The WebSocket form. `cut`: the session drops as it opens. */
export function execWebSocket(
  model: Model,
  s: Sprite,
  r: ExecRequest,
  req: Request,
  clientPort: number,
  cut: boolean,
): Response {
  const { socket, response } = Deno.upgradeWebSocket(req);
  socket.binaryType = "arraybuffer";
  let child: Deno.ChildProcess | null = null;
  let finished = false;
  const session: Session = {
    clientPort,
    pgid: null,
    notice(m) {
      if (!finished && socket.readyState === WebSocket.OPEN) {
        socket.send(JSON.stringify(m));
      }
    },
    drop() {
      if (finished) return;
      finished = true;
      s.sessions.delete(session);
      if (child) reap(child);
      try {
        socket.close(4000, "connection lost");
      } catch { /* closed */ }
    },
  };
  socket.onopen = async () => {
    s.sessions.add(session);
    if (cut) {
      // A connection reset as the command would start: it never runs.
      session.drop();
      return;
    }
    const st = start(model, s, r);
    if (st.failed) {
      socket.send(frame(2, new TextEncoder().encode(st.failed[1] + "\n")));
      socket.send(frame(3, new Uint8Array([st.failed[0]])));
      finished = true;
      s.sessions.delete(session);
      socket.close(1000);
      return;
    }
    child = st.child!;
    session.pgid = child.pid;
    const pump = async (stream: ReadableStream<Uint8Array>, id: number) => {
      for await (const chunk of stream) {
        model.touch(s);
        if (socket.readyState === WebSocket.OPEN) socket.send(frame(id, chunk));
      }
    };
    const code = await Promise.all([
      pump(child.stdout, 1),
      pump(child.stderr, 2),
    ]).then(() => exitCode(child!));
    if (finished) return;
    finished = true;
    s.sessions.delete(session);
    if (socket.readyState === WebSocket.OPEN) {
      socket.send(frame(3, new Uint8Array([code & 255])));
      socket.close(1000);
    }
  };
  let writing = Promise.resolve();
  let writer: WritableStreamDefaultWriter<Uint8Array> | null = null;
  socket.onmessage = (e) => {
    model.touch(s);
    if (!child) return;
    if (typeof e.data === "string") {
      try {
        const m = JSON.parse(e.data);
        if (m?.type === "signal" && typeof m.signal === "string") {
          killGroup(child, m.signal as Deno.Signal);
        }
      } catch { /* ignored */ }
      return;
    }
    const b = new Uint8Array(e.data as ArrayBuffer);
    if (!r.stdin || b.length === 0) return;
    const c = child;
    writer ??= c.stdin.getWriter();
    const w = writer;
    if (b[0] === 0) {
      const data = b.slice(1);
      writing = writing.then(() => w.write(data)).catch(() => {});
    } else if (b[0] === 4) {
      writing = writing.then(() => w.close()).catch(() => {});
    }
  };
  socket.onclose = () => session.drop();
  socket.onerror = () => session.drop();
  return response;
}

/** The HTTP form: stdin is the request body; frames are the chunks. */
export function execHttp(
  model: Model,
  s: Sprite,
  r: ExecRequest,
  req: Request,
): Response {
  const st = start(model, s, r);
  const body = new ReadableStream<Uint8Array>({
    async start(c) {
      if (st.failed) {
        c.enqueue(frame(2, new TextEncoder().encode(st.failed[1] + "\n")));
        c.enqueue(frame(3, new Uint8Array([st.failed[0]])));
        c.close();
        return;
      }
      const child = st.child!;
      if (r.stdin && req.body) {
        void req.body.pipeTo(child.stdin).catch(() => {});
      }
      const pump = async (stream: ReadableStream<Uint8Array>, id: number) => {
        for await (const chunk of stream) {
          model.touch(s);
          c.enqueue(frame(id, chunk));
        }
      };
      await Promise.all([pump(child.stdout, 1), pump(child.stderr, 2)]);
      c.enqueue(frame(3, new Uint8Array([(await exitCode(child)) & 255])));
      c.close();
    },
    cancel() {
      if (st.child) reap(st.child);
    },
  });
  return new Response(body, {
    headers: { "content-type": "application/octet-stream" },
  });
}
