/**
 * SshTransport against real OpenSSH: the system ssh client talking to a real
 * sshd on loopback (tests/helpers/sshd.ts). Nothing is mocked.
 */
import assert from "node:assert/strict";
import {
  freePort,
  makeClientKey,
  type Sshd,
  sshdSkipReason,
  startSshd,
} from "../helpers/sshd.ts";
import {
  isSshFailure,
  LOST_MASTER_MESSAGE,
  SshConnectionError,
  sshFailureMessage,
  SshTransport,
  type SshTransportOptions,
  waitForSsh,
} from "../../lib/transport/ssh.ts";
import { run, upload } from "../../lib/transport/run.ts";
import { until } from "../helpers/wait.ts";

/**
 * Reads `stream` until its text holds `want` (the remote command says it
 * got there): what was read, and the reader for the rest.
 */
async function readUntil(stream: ReadableStream<Uint8Array>, want: string) {
  const reader = stream.getReader();
  const dec = new TextDecoder();
  let text = "";
  while (!text.includes(want)) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`the output ended before "${want}": ${text}`);
    text += dec.decode(value, { stream: true });
  }
  return { text, reader };
}

async function readRest(reader: ReadableStreamDefaultReader<Uint8Array>) {
  const dec = new TextDecoder();
  let text = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return text + dec.decode();
    text += dec.decode(value, { stream: true });
  }
}

const ignore = sshdSkipReason() !== null;

interface Ctx {
  dir: string;
  key: { privatePath: string; publicKey: string };
  sshd: Sshd;
  t: SshTransport;
  transport(extra?: Partial<SshTransportOptions>): SshTransport;
}

function transportFor(
  dir: string,
  keyPath: string,
  port: number,
  extra: Partial<SshTransportOptions> = {},
): SshTransport {
  return new SshTransport({
    dest: "root@127.0.0.1",
    port,
    identityFile: keyPath,
    knownHostsFile: `${dir}/client/known_hosts`,
    controlDir: `${dir}/cm`,
    connectTimeoutS: 5,
    ...extra,
  });
}

/** A fresh sshd, key and transport; everything is torn down afterwards. */
function sshTest(name: string, fn: (c: Ctx) => Promise<void>): void {
  Deno.test({
    name,
    ignore,
    async fn() {
      const dir = await Deno.makeTempDir({ prefix: "ohc-ssh-" });
      const key = await makeClientKey(dir);
      const sshd = await startSshd({
        dir: `${dir}/sshd`,
        authorizedKeys: [key.publicKey],
      });
      const made: SshTransport[] = [];
      const transport = (extra: Partial<SshTransportOptions> = {}) => {
        const t = transportFor(dir, key.privatePath, sshd.port, extra);
        made.push(t);
        return t;
      };
      try {
        await fn({ dir, key, sshd, t: transport(), transport });
      } finally {
        for (const t of made) await t.close().catch(() => {});
        await sshd.stop();
        await Deno.remove(dir, { recursive: true });
      }
    },
  });
}

function splitNul(s: string): string[] {
  const parts = s.split("\0");
  assert.equal(parts.pop(), "");
  return parts;
}

const NASTY = [
  "",
  " ",
  "a b",
  "'",
  "it's",
  '"',
  "\"double\" and 'single'",
  "\\",
  "$HOME",
  "${HOME:-x}",
  "$(touch /tmp/ohc-pwned)",
  "`touch /tmp/ohc-pwned`",
  "a\nb\n",
  "\r",
  "\t",
  "日本語 ✓ 🚢",
  "-n",
  "--",
  "-oProxyCommand=touch /tmp/ohc-pwned",
  "~",
  "~root",
  "*",
  "?",
  "[a-z]",
  "{a,b}",
  ";",
  "&& touch /tmp/ohc-pwned",
  "| cat",
  ">",
  "#",
  "!",
  "FOO=bar",
  "\x1b[31m",
  "x".repeat(5000),
];

sshTest("run: argv with nasty words comes back exact", async ({ t }) => {
  await Deno.remove("/tmp/ohc-pwned").catch(() => {});
  const res = await run(t, ["printf", "%s\\0", ...NASTY]);
  assert.equal(res.code, 0, res.stderr);
  assert.equal(res.stderr, "");
  assert.deepEqual(splitNul(res.stdout), NASTY);
  // argv[0] is a program name too, never shell syntax.
  const first = await run(t, ["if", "x"]);
  assert.equal(first.code, 127);
  await assert.rejects(Deno.stat("/tmp/ohc-pwned"), Deno.errors.NotFound);
});

sshTest("run: the command starts in the remote home", async ({ t }) => {
  const res = await run(t, ["pwd"]);
  assert.equal(res.stdout, "/root\n");
});

sshTest(
  "spawn: 5 MB of binary stdin round-trips through cat",
  async ({ t }) => {
    const data = new Uint8Array(5 * 1024 * 1024);
    for (let i = 0; i < data.length; i += 65536) {
      crypto.getRandomValues(data.subarray(i, i + 65536));
    }
    const child = t.spawn(["cat"], {
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    });
    const writing = (async () => {
      const w = child.stdin.getWriter();
      await w.write(data);
      await w.close();
    })();
    const [out, err, status] = await Promise.all([
      new Response(child.stdout).bytes(),
      new Response(child.stderr).text(),
      child.status,
      writing,
    ]);
    assert.equal(status.code, 0, err);
    assert.equal(out.length, data.length);
    assert.ok(out.every((b, i) => b === data[i]), "bytes differ");
  },
);

sshTest("run: exit codes and stderr pass through", async ({ t }) => {
  for (const code of [0, 1, 2, 7, 42, 126, 254]) {
    const res = await run(t, [
      "sh",
      "-c",
      `echo out; echo err >&2; exit $1`,
      "sh",
      String(code),
    ]);
    assert.equal(res.code, code);
    assert.equal(res.stdout, "out\n");
    assert.equal(res.stderr, "err\n");
    assert.equal(isSshFailure(res.code, res.stderr), false);
  }
  assert.equal((await run(t, ["no-such-command-ohc"])).code, 127);
});

sshTest(
  "a remote exit 255 or signal death is not an ssh failure",
  async ({ t }) => {
    const silent = t.spawn(["sh", "-c", "exit 255"]);
    const [st, err] = await Promise.all([
      silent.status,
      new Response(silent.stderr).text(),
      new Response(silent.stdout).text(),
    ]);
    assert.equal(st.code, 255);
    assert.equal(st.sshFailure, false);
    assert.equal(err, "");
    assert.equal(isSshFailure(st.code, err), false);

    const noisy = await run(t, ["sh", "-c", "echo 'it broke' >&2; exit 255"]);
    assert.equal(noisy.code, 255);
    assert.equal(noisy.stderr, "it broke\n");
    assert.equal(isSshFailure(noisy.code, noisy.stderr), false);

    // OpenSSH reports a remote command killed by a signal as 255 too.
    const killed = await run(t, ["sh", "-c", "kill -9 $$"]);
    assert.equal(killed.code, 255);
    assert.equal(isSshFailure(killed.code, killed.stderr), false);
  },
);

sshTest("upload writes an exact file with mode 600", async ({ dir, t }) => {
  const data = new Uint8Array(300_000);
  crypto.getRandomValues(data.subarray(0, 65536));
  data.set(new TextEncoder().encode("'$(x)`y`\n"), 70_000);
  const target = `${dir}/remote/new dir/it's.bin`;
  await upload(t, data, target, "600");
  assert.deepEqual(await Deno.readFile(target), data);
  assert.equal((await Deno.stat(target)).mode! & 0o777, 0o600);
  // Overwrites atomically, leaving no temp file beside it.
  await upload(t, "second", target, "600");
  assert.equal(await Deno.readTextFile(target), "second");
  const names = [...Deno.readDirSync(`${dir}/remote/new dir`)].map((e) =>
    e.name
  );
  assert.deepEqual(names, ["it's.bin"]);
});

sshTest("secrets on stdin never show in any process's argv", async ({ t }) => {
  const secret = `ohc-secret-${crypto.randomUUID()}`;
  // It holds the secret until told to go on: every process is looked at
  // while the secret is in flight.
  const child = t.spawn(
    ["sh", "-c", "read -r s; echo got; read -r _; echo ${#s}"],
    { stdin: "piped", stdout: "piped" },
  );
  const w = child.stdin.getWriter();
  await w.write(new TextEncoder().encode(secret + "\n"));
  const got = await readUntil(child.stdout, "got\n");
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    let cmdline = "";
    try {
      cmdline = Deno.readTextFileSync(`/proc/${e.name}/cmdline`);
    } catch { /* exited */ }
    assert.ok(!cmdline.includes(secret), `pid ${e.name} shows the secret`);
  }
  await w.write(new TextEncoder().encode("go\n"));
  await w.close();
  assert.equal(
    got.text + await readRest(got.reader),
    `got\n${secret.length}\n`,
  );
  assert.equal((await child.status).code, 0);
});

sshTest(
  "multiplexing: one master connection serves 20 more calls",
  async ({ dir, sshd, t }) => {
    assert.equal(await t.masterPid(), null);
    assert.equal((await run(t, ["true"])).code, 0);
    const sockets = [...Deno.readDirSync(`${dir}/cm`)];
    assert.equal(sockets.length, 1);
    assert.ok(
      Deno.statSync(`${dir}/cm/${sockets[0].name}`).isSocket,
      "control socket",
    );
    assert.equal(Deno.statSync(`${dir}/cm`).mode! & 0o777, 0o700);
    const pid = await t.masterPid();
    assert.ok(pid !== null, "ssh -O check succeeds");
    for (let i = 0; i < 20; i++) {
      const res = await run(t, ["echo", String(i)]);
      assert.equal(res.stdout, `${i}\n`);
    }
    assert.equal(sshd.acceptedLogins(), 1, sshd.log());
    assert.equal(await t.masterPid(), pid);

    // A second transport to the same destination shares the master.
    const t2 = transportFor(dir, `${dir}/id_ed25519`, sshd.port);
    assert.equal((await run(t2, ["true"])).code, 0);
    assert.equal(sshd.acceptedLogins(), 1);

    await t.close();
    assert.equal(await t.masterPid(), null);
    assert.deepEqual([...Deno.readDirSync(`${dir}/cm`)], []);
    // After close the next call opens a new master.
    assert.equal((await run(t, ["true"])).code, 0);
    assert.equal(sshd.acceptedLogins(), 2);
  },
);

sshTest(
  "more concurrent commands than sshd's MaxSessions (10) still all succeed",
  async ({ sshd, t }) => {
    assert.equal((await run(t, ["true"])).code, 0);
    const results = await Promise.all(
      Array.from(
        { length: 14 },
        (_, i) => run(t, ["sh", "-c", 'sleep 1; echo "$1"', "sh", String(i)]),
      ),
    );
    results.forEach((r, i) => {
      assert.equal(r.code, 0, r.stderr);
      assert.equal(r.stdout, `${i}\n`);
    });
    // The sessions over the limit were refused by the master's peer and ssh
    // fell back to connections of their own (saying so on stderr).
    assert.ok(sshd.acceptedLogins() > 1);
  },
);

sshTest("control dir: a loose mode is fixed to 0700", async ({ dir, t }) => {
  await Deno.mkdir(`${dir}/cm`, { mode: 0o777 });
  await Deno.chmod(`${dir}/cm`, 0o777);
  assert.equal((await run(t, ["true"])).code, 0);
  assert.equal(Deno.statSync(`${dir}/cm`).mode! & 0o777, 0o700);
});

sshTest(
  "control dir owned by someone else is refused",
  async ({ dir, transport }) => {
    await Deno.mkdir(`${dir}/other`, { mode: 0o700 });
    await Deno.chown(`${dir}/other`, 65534, 65534);
    const t = transport({ controlDir: `${dir}/other` });
    assert.throws(() => t.spawn(["true"]), /owned by uid 65534/);
  },
);

sshTest(
  "an ssh config file can map *.exe.xyz names to loopback",
  async ({ dir, key, sshd }) => {
    const config = `${dir}/ssh_config`;
    await Deno.writeTextFile(
      config,
      [
        "Host *.exe.xyz",
        "  HostName 127.0.0.1",
        `  Port ${sshd.port}`,
        "  User root",
        "",
      ].join("\n"),
    );
    const t = new SshTransport({
      dest: "vm1.exe.xyz",
      identityFile: key.privatePath,
      knownHostsFile: `${dir}/kh2`,
      controlDir: `${dir}/cm2`,
      configFile: config,
    });
    try {
      const res = await run(t, ["sh", "-c", 'echo "$USER"']);
      assert.equal(res.code, 0, res.stderr);
      assert.equal(res.stdout, "root\n");
      // accept-new recorded the host key under the mapped address.
      const kh = await Deno.readTextFile(`${dir}/kh2`);
      assert.ok(kh.includes(sshd.hostKeyPub.split(" ")[1]), kh);
    } finally {
      await t.close();
    }
  },
);

sshTest(
  "a changed host key is refused as an ssh failure",
  async ({ dir, t }) => {
    await Deno.mkdir(`${dir}/client`, { recursive: true });
    const other = await makeClientKey(dir, "fake_host_key");
    await Deno.writeTextFile(
      `${dir}/client/known_hosts`,
      `[127.0.0.1]:${t.port} ${other.publicKey}\n`,
    );
    const res = await run(t, ["true"]);
    assert.equal(res.code, 255);
    assert.ok(isSshFailure(res.code, res.stderr), res.stderr);
    assert.match(res.stderr, /Host key verification failed/);
  },
);

sshTest("an unauthorized key is an ssh failure", async ({ dir, transport }) => {
  const stranger = await makeClientKey(dir, "stranger");
  const t = transport({ identityFile: stranger.privatePath });
  const res = await run(t, ["true"]);
  assert.equal(res.code, 255);
  assert.ok(isSshFailure(res.code, res.stderr), res.stderr);
  assert.match(
    sshFailureMessage(t.dest, res.stderr),
    /^connection to root@127\.0\.0\.1 failed: root@127\.0\.0\.1: Permission denied \(publickey\)\.$/,
  );
});

sshTest(
  "killing sshd mid-command is a recognised ssh failure",
  async ({ sshd, t }) => {
    assert.equal((await run(t, ["true"])).code, 0);
    const child = t.spawn(["sh", "-c", "echo started; exec sleep 30"], {
      stdout: "piped",
      stderr: "piped",
    });
    const stderr = new Response(child.stderr).text();
    const started = await readUntil(child.stdout, "started\n");
    await sshd.kill();
    await started.reader.cancel();
    const res = { code: (await child.status).code, stderr: await stderr };
    assert.equal(res.code, 255);
    assert.ok(isSshFailure(res.code, res.stderr), res.stderr);
    assert.ok(res.stderr.endsWith(LOST_MASTER_MESSAGE));
    assert.match(
      sshFailureMessage(t.dest, res.stderr),
      /^connection to root@127\.0\.0\.1 lost: /,
    );
    // Afterwards the next call fails to connect, also recognisably.
    const next = await run(t, ["true"]);
    assert.ok(isSshFailure(next.code, next.stderr), next.stderr);
    assert.match(next.stderr, /Connection refused/);
  },
);

sshTest(
  "killing the master mid-command is a recognised ssh failure, then it recovers",
  async ({ sshd, t }) => {
    assert.equal((await run(t, ["true"])).code, 0);
    const master = await t.masterPid();
    assert.ok(master !== null);
    const child = t.spawn(["sh", "-c", "echo started; exec sleep 30"], {
      stdout: "piped",
    });
    const stderr = new Response(child.stderr).text();
    const started = await readUntil(child.stdout, "started\n");
    Deno.kill(master, "SIGKILL");
    const status = await child.status;
    assert.equal(status.code, 255);
    assert.equal(status.sshFailure, true);
    assert.ok(isSshFailure(status.code, await stderr));
    await started.reader.cancel();
    // The stale socket is replaced by a new master on the next call, which
    // later calls share again. (How many logins the replacement takes
    // depends on timing: under a loaded CI run it once took two.)
    const res = await run(t, ["echo", "back"]);
    assert.equal(res.stdout, "back\n", res.stderr);
    const logins = sshd.acceptedLogins();
    assert.ok(logins >= 2);
    assert.equal((await run(t, ["echo", "again"])).stdout, "again\n");
    assert.equal(sshd.acceptedLogins(), logins);
  },
);

sshTest(
  "an aborted command returns without waiting for the remote end",
  async ({ t }) => {
    assert.equal((await run(t, ["true"])).code, 0);
    const started = Date.now();
    // The master keeps the remote `sleep` and our pipes alive; the transport
    // must not wait for them once it has killed its ssh.
    const res = await run(t, ["sleep", "60"], {
      signal: AbortSignal.timeout(500),
    });
    assert.ok(Date.now() - started < 30_000, "returned long before sleep ends");
    assert.notEqual(res.code, 0);
    assert.equal(isSshFailure(res.code, res.stderr), false);
    assert.equal((await run(t, ["echo", "ok"])).stdout, "ok\n");
  },
);

sshTest(
  "interactive without a tty returns the remote exit code",
  async ({ t }) => {
    assert.equal(await t.interactive(["sh", "-c", "exit 3"], { tty: true }), 3);
    assert.equal(await t.interactive(["true"]), 0);
  },
);

sshTest(
  "connect opens the master without running anything",
  async ({ dir, key }) => {
    // A server whose every session runs a forced command that leaves a mark.
    const forced = await startSshd({
      dir: `${dir}/forced`,
      authorizedKeys: [key.publicKey],
      forceCommand: `touch ${dir}/ran`,
    });
    const t = transportFor(dir, key.privatePath, forced.port, {
      controlDir: `${dir}/cm3`,
    });
    try {
      await t.connect();
      assert.ok((await t.masterPid()) !== null);
      await t.connect(); // already up: no second connection, no session
      assert.equal(forced.acceptedLogins(), 1);
      await assert.rejects(Deno.stat(`${dir}/ran`), Deno.errors.NotFound);
    } finally {
      await t.close();
      await forced.stop();
    }
    const down = transportFor(dir, key.privatePath, freePort(), {
      controlDir: `${dir}/cm4`,
    });
    await assert.rejects(
      down.connect(),
      (e: Error) =>
        e instanceof SshConnectionError &&
        /^connection to root@127\.0\.0\.1 failed: .*Connection refused/.test(
          e.message,
        ),
    );
  },
);

Deno.test({
  name: "a closed port fails at once with a clear ssh failure",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "ohc-ssh-" });
    try {
      const key = await makeClientKey(dir);
      const t = transportFor(dir, key.privatePath, freePort());
      const res = await run(t, ["true"]);
      assert.equal(res.code, 255);
      assert.ok(isSshFailure(res.code, res.stderr), res.stderr);
      const msg = sshFailureMessage(t.dest, res.stderr);
      assert.match(
        msg,
        /^connection to root@127\.0\.0\.1 failed: ssh: connect to host 127\.0\.0\.1 port \d+: Connection refused$/,
      );
      assert.equal(new SshConnectionError(t.dest, res.stderr).message, msg);
      assert.equal(await t.interactive(["true"]), 255);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "a server that never answers fails after ConnectTimeout",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "ohc-ssh-" });
    // The kernel completes the TCP handshake; nobody ever sends a banner.
    const silent = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    try {
      const key = await makeClientKey(dir);
      const t = transportFor(
        dir,
        key.privatePath,
        (silent.addr as Deno.NetAddr).port,
        { connectTimeoutS: 1 },
      );
      const started = Date.now();
      const res = await run(t, ["true"]);
      const took = Date.now() - started;
      assert.equal(res.code, 255);
      assert.ok(isSshFailure(res.code, res.stderr), res.stderr);
      assert.match(res.stderr, /timed out/i);
      // Loose bound: well under the 300 s a hung connection would take.
      assert.ok(took < 20_000, `took ${took} ms`);
    } finally {
      silent.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "waitForSsh succeeds once sshd starts later",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "ohc-ssh-" });
    let sshd: Sshd | undefined;
    const key = await makeClientKey(dir);
    const port = freePort();
    const t = transportFor(dir, key.privatePath, port);
    try {
      const attempts: (string | null)[] = [];
      const waiting = waitForSsh(t, {
        timeoutMs: 30_000,
        onAttempt: (_n, last) => attempts.push(last),
      });
      // sshd starts once a connection was refused.
      await until("a refused attempt", () => attempts.length >= 2);
      sshd = await startSshd({
        dir: `${dir}/sshd`,
        port,
        authorizedKeys: [key.publicKey],
      });
      await waiting;
      assert.ok(attempts.length >= 2, `attempts: ${attempts.length}`);
      assert.equal(attempts[0], null);
      assert.match(attempts[1]!, /Connection refused/);
      assert.equal((await run(t, ["echo", "up"])).stdout, "up\n");
    } finally {
      await t.close();
      await sshd?.stop();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test({
  name: "waitForSsh gives up with a clear error",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "ohc-ssh-" });
    try {
      const key = await makeClientKey(dir);
      const t = transportFor(dir, key.privatePath, freePort());
      let n = 0;
      await assert.rejects(
        waitForSsh(t, { timeoutMs: 1200, onAttempt: () => n++ }),
        /^Error: ssh to root@127\.0\.0\.1 not reachable after 1\.2s \(\d+ attempts\): connection to root@127\.0\.0\.1 failed: .*Connection refused/,
      );
      assert.ok(n >= 2);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("SshTransport rejects bad destinations and settings", () => {
  const base = {
    knownHostsFile: "/tmp/kh",
    controlDir: "/tmp/cm",
  };
  for (const dest of ["", "-oProxyCommand=x", "a b", "host\n", "h\x01"]) {
    assert.throws(() => new SshTransport({ ...base, dest }), /destination/);
  }
  assert.throws(
    () => new SshTransport({ ...base, dest: "h", port: 70000 }),
    /port/,
  );
  assert.throws(
    () =>
      new SshTransport({
        ...base,
        dest: "h",
        controlDir: "/tmp/" + "d".repeat(60),
      }),
    /too long/,
  );
  const t = new SshTransport({ ...base, dest: "u@h", port: 2222 });
  const args = t.commandArgs(["echo", "a b"]);
  assert.deepEqual(args.slice(-3), ["u@h", "--", "'echo' 'a b'"]);
  assert.equal(args[0], "-T");
  for (
    const o of [
      "BatchMode=yes",
      "ConnectTimeout=10",
      "ServerAliveInterval=15",
      "ServerAliveCountMax=3",
      "StrictHostKeyChecking=accept-new",
      "UserKnownHostsFile=/tmp/kh",
      "ControlMaster=auto",
      "ControlPath=/tmp/cm/%C",
      "ControlPersist=300",
    ]
  ) {
    assert.ok(args.includes(o), o);
  }
  assert.ok(!args.includes("IdentitiesOnly=yes"));
  assert.equal(t.commandArgs(["sh"], true)[0], "-t");
});
