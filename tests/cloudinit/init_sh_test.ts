/**
 * Runs the real cloudinit/init.sh with bash in a scratch HOME. PATH holds only
 * a curated set of system tools plus stubs (a fake `gh` that records its argv,
 * stdin and environment; failing `curl`/`apt-get` where a test wants a network
 * failure), so the host's own gh, zellij, rustup, zsh or sudo never matter and
 * nothing outside the sandbox is touched.
 */
import assert from "node:assert/strict";

const SCRIPT = new URL("../../cloudinit/init.sh", import.meta.url).pathname;
const TOKEN = "ghp_TESTtoken0123456789abcdefABCDEF0123";
const OTHER_TOKEN = "ghp_OTHERtoken9876543210zyxwvuZYXWVU987";

/** System tools the script (and the stubs) may use; nothing else is on PATH. */
const TOOLS = [
  "awk",
  "basename",
  "bash",
  "cat",
  "chmod",
  "cp",
  "cut",
  "date",
  "dirname",
  "env",
  "find",
  "flock",
  "getent",
  "git",
  "grep",
  "gzip",
  "head",
  "id",
  "install",
  "ln",
  "ls",
  "mkdir",
  "mktemp",
  "mv",
  "readlink",
  "rm",
  "sed",
  "sh",
  "sha256sum",
  "sleep",
  "sort",
  "stat",
  "tail",
  "tar",
  "touch",
  "tr",
  "uname",
  "wc",
  "xargs",
];

/** A fake gh: records argv, stdin of `auth login`, whether GH_TOKEN was in its
 * environment, and any process whose argv holds the token at that moment. */
const FAKE_GH = `#!/bin/bash
rec="\${FAKE_GH_RECORD:?}"
{ printf 'ARGV'; printf ' %q' "$@"; printf '\\n'; } >>"$rec"
if [[ -n "\${GH_TOKEN+x}" ]]; then echo "ENV GH_TOKEN is set" >>"$rec"; fi
case "$1 $2" in
  "auth login")
    tok=$(cat)
    printf 'STDIN %s\\n' "$tok" >>"$rec"
    for f in /proc/[0-9]*/cmdline; do
      c=$(tr '\\0' ' ' <"$f" 2>/dev/null) || continue
      if [[ -n "$tok" && "$c" == *"$tok"* ]]; then echo "LEAK $f: $c" >>"$rec"; fi
    done
    mkdir -p "$HOME/.config/gh"
    (umask 077; printf 'github.com:\\n    oauth_token: %s\\n' "$tok" >"$HOME/.config/gh/hosts.yml")
    echo "Logged in"
    ;;
  "auth status")
    [[ -f "$HOME/.config/gh/hosts.yml" ]]
    exit
    ;;
  "auth setup-git")
    git config --global credential.https://github.com.helper '!gh auth git-credential'
    ;;
esac
exit 0
`;

const FAILING_CURL = `#!/bin/bash
echo "curl: (6) Could not resolve host: github.com" >&2
exit 6
`;
const FAILING_APT = `#!/bin/bash
echo "Reading package lists..."
echo "E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Temporary failure resolving 'deb.debian.org'" >&2
exit 100
`;
const NOTHING_INSTALLED = `#!/bin/bash
exit 1
`;
const PASSWORDLESS_SUDO = `#!/bin/bash
[[ "$1" == -n ]] && shift
exec "$@"
`;

interface Sandbox {
  root: string;
  home: string;
  stub: string;
  tools: string;
  record: string;
}

const roots: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const r of roots) {
    try {
      Deno.removeSync(r, { recursive: true });
    } catch { /* already gone */ }
  }
});

async function which(cmd: string): Promise<string | null> {
  const r = await new Deno.Command("bash", {
    args: ["-c", 'command -v "$1"', "_", cmd],
    stdout: "piped",
  }).output();
  const p = new TextDecoder().decode(r.stdout).trim();
  return r.success && p.startsWith("/") ? p : null;
}

async function sandbox(
  opts: { gh?: boolean; stubs?: Record<string, string> } = {},
): Promise<Sandbox> {
  const root = await Deno.makeTempDir({ prefix: "ohc-init-" });
  roots.push(root);
  const sb: Sandbox = {
    root,
    home: `${root}/home`,
    stub: `${root}/stub`,
    tools: `${root}/tools`,
    record: `${root}/gh.record`,
  };
  for (const d of [sb.home, sb.stub, sb.tools]) await Deno.mkdir(d);
  for (const t of TOOLS) {
    const p = await which(t);
    if (p) await Deno.symlink(p, `${sb.tools}/${t}`);
  }
  const stubs: Record<string, string> = { ...(opts.stubs ?? {}) };
  if (opts.gh !== false) stubs.gh = FAKE_GH;
  for (const [name, text] of Object.entries(stubs)) {
    await Deno.writeTextFile(`${sb.stub}/${name}`, text, { mode: 0o755 });
    await Deno.chmod(`${sb.stub}/${name}`, 0o755);
  }
  await Deno.writeTextFile(sb.record, "");
  return sb;
}

interface Run {
  code: number;
  stdout: string;
  stderr: string;
  lines: string[];
}

async function runInit(
  sb: Sandbox,
  env: Record<string, string> = {},
  wrap: string[] = [],
): Promise<Run> {
  const argv = [...wrap, "bash", SCRIPT];
  const out = await new Deno.Command(argv[0], {
    args: argv.slice(1),
    cwd: sb.home,
    clearEnv: true,
    env: {
      HOME: sb.home,
      PATH: `${sb.stub}:${sb.tools}`,
      FAKE_GH_RECORD: sb.record,
      LANG: "C.UTF-8",
      OHC_SYSTEM: "0",
      ...env,
    },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(out.stdout);
  return {
    code: out.code,
    stdout,
    stderr: new TextDecoder().decode(out.stderr),
    lines: stdout.split("\n").filter((l) => l !== ""),
  };
}

/** The one `==> step NAME...` line of a step (asserting there is exactly one). */
function stepLine(r: Run, name: string): string {
  const found = r.lines.filter((l) =>
    l.startsWith(`==> step ${name}:`) || l.startsWith(`==> step ${name} `)
  );
  assert.equal(found.length, 1, `one line for step ${name}:\n${r.stdout}`);
  return found[0];
}

const STEPS = [
  "packages",
  "gh",
  "ghauth",
  "zellij",
  "rust",
  "ohmyzsh",
  "chezmoi",
  "dotfiles",
  "shellrc",
  "shell",
  "hook",
];

async function readText(path: string): Promise<string> {
  return await Deno.readTextFile(path);
}

async function sha256(data: Uint8Array): Promise<string> {
  const d = await crypto.subtle.digest("SHA-256", data as BufferSource);
  return Array.from(new Uint8Array(d), (b) => b.toString(16).padStart(2, "0"))
    .join("");
}

/** Every entry under dir: type, mode, mtime and content hash or link target. */
async function snapshot(
  dir: string,
  skip: (rel: string) => boolean,
): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  async function walk(rel: string) {
    for await (const e of Deno.readDir(`${dir}/${rel}`)) {
      const r = rel ? `${rel}/${e.name}` : e.name;
      if (skip(r)) continue;
      const p = `${dir}/${r}`;
      const st = await Deno.lstat(p);
      const mode = ((st.mode ?? 0) & 0o7777).toString(8);
      if (st.isSymlink) {
        out[r] = `link ${await Deno.readLink(p)}`;
      } else if (st.isDirectory) {
        out[r] = `dir ${mode}`;
        await walk(r);
      } else {
        out[r] = `file ${mode} ${st.mtime?.getTime()} ${await sha256(
          await Deno.readFile(p),
        )}`;
      }
    }
  }
  await walk("");
  return out;
}

async function writeExecutable(path: string, text: string) {
  await Deno.writeTextFile(path, text);
  await Deno.chmod(path, 0o755);
}

// ---------------------------------------------------------------- tests

Deno.test("init.sh passes shellcheck", {
  ignore: (await which("shellcheck")) === null,
}, async () => {
  const r = await new Deno.Command("shellcheck", { args: [SCRIPT] }).output();
  assert.equal(
    r.code,
    0,
    new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr),
  );
});

Deno.test("offline run: every step reports exactly one line, exit 0", async () => {
  const sb = await sandbox();
  const r = await runInit(sb, { OHC_OFFLINE: "1" });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.stderr, "");
  for (const s of STEPS) stepLine(r, s);
  // (packages: the sandbox has no apt-get, which the step checks first.)
  assert.match(stepLine(r, "packages"), /: skipped \(/);
  for (const s of ["zellij", "rust", "ohmyzsh"]) {
    assert.match(stepLine(r, s), /skipped \(offline: OHC_OFFLINE=1\)$/);
  }
  assert.match(stepLine(r, "gh"), /already done/); // the fake gh is on PATH
  assert.match(
    stepLine(r, "ghauth"),
    /skipped \(no GH_TOKEN_FILE or GH_TOKEN\)/,
  );
  assert.match(r.lines.at(-1)!, /^==> init\.sh finished: /);
  // Private state: ~/.ohcommodore 0700, init.log 0600.
  assert.equal(
    (await Deno.stat(`${sb.home}/.ohcommodore`)).mode! & 0o777,
    0o700,
  );
  assert.equal(
    (await Deno.stat(`${sb.home}/.ohcommodore/init.log`)).mode! & 0o777,
    0o600,
  );
});

Deno.test("GH_TOKEN reaches gh on stdin only: not argv, not env, not logs", async () => {
  const sb = await sandbox();
  const r = await runInit(sb, { GH_TOKEN: TOKEN, OHC_OFFLINE: "1" });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(stepLine(r, "ghauth"), /: done \(gh logged in to github\.com/);

  const rec = (await readText(sb.record)).split("\n");
  assert.ok(rec.includes(`STDIN ${TOKEN}`), rec.join("\n"));
  const argvLines = rec.filter((l) => l.startsWith("ARGV"));
  assert.ok(
    argvLines.includes(
      "ARGV auth login --hostname github.com --git-protocol https --with-token",
    ),
    argvLines.join("\n"),
  );
  assert.ok(argvLines.includes("ARGV auth setup-git --hostname github.com"));
  for (const l of argvLines) assert.ok(!l.includes(TOKEN), l);
  assert.ok(!rec.some((l) => l.startsWith("LEAK")), rec.join("\n"));
  assert.ok(!rec.includes("ENV GH_TOKEN is set"), "gh must not see GH_TOKEN");

  // git uses gh for credentials.
  assert.match(
    await readText(`${sb.home}/.gitconfig`),
    /helper = !gh auth git-credential/,
  );
  // Never in the output or the log.
  assert.ok(!r.stdout.includes(TOKEN) && !r.stderr.includes(TOKEN));
  const log = await readText(`${sb.home}/.ohcommodore/init.log`);
  assert.ok(!log.includes(TOKEN));
  assert.match(log, /step ghauth: done/);
  // The marker holds a hash of the token, never the token, and is private.
  const marker = `${sb.home}/.ohcommodore/init.d/ghauth.done`;
  assert.ok(!(await readText(marker)).includes(TOKEN));
  assert.equal((await Deno.stat(marker)).mode! & 0o777, 0o600);
});

Deno.test("GH_TOKEN_FILE is honoured and preferred over GH_TOKEN", async () => {
  const sb = await sandbox();
  const file = `${sb.root}/token`;
  await Deno.writeTextFile(file, `${TOKEN}\n`, { mode: 0o600 });
  const r = await runInit(sb, {
    GH_TOKEN_FILE: file,
    GH_TOKEN: OTHER_TOKEN,
    OHC_OFFLINE: "1",
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.ok(!r.stdout.includes("warning"), r.stdout);
  const rec = await readText(sb.record);
  assert.ok(rec.includes(`STDIN ${TOKEN}\n`), rec);
  assert.ok(!rec.includes(OTHER_TOKEN));
  assert.ok(!rec.includes("LEAK"), rec);
  const log = await readText(`${sb.home}/.ohcommodore/init.log`);
  assert.ok(!log.includes(TOKEN) && !log.includes(OTHER_TOKEN));
  assert.ok(!r.stdout.includes(TOKEN) && !r.stdout.includes(OTHER_TOKEN));
});

Deno.test("GH_TOKEN_FILE: a readable-by-others file warns, a missing one stops", async () => {
  const sb = await sandbox();
  const file = `${sb.root}/token`;
  await Deno.writeTextFile(file, TOKEN);
  await Deno.chmod(file, 0o644);
  let r = await runInit(sb, { GH_TOKEN_FILE: file, OHC_OFFLINE: "1" });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.ok(
    r.lines.includes(
      `==> warning: GH_TOKEN_FILE ${file} has mode 644; it should be 0600`,
    ),
    r.stdout,
  );
  assert.ok((await readText(sb.record)).includes(`STDIN ${TOKEN}`));

  r = await runInit(sb, { GH_TOKEN_FILE: `${sb.root}/nope` });
  assert.equal(r.code, 1);
  assert.deepEqual(r.lines, [
    `==> GH_TOKEN_FILE ${sb.root}/nope is not a readable file`,
  ]);
});

Deno.test("second run is idempotent: steps already done, file tree unchanged", async () => {
  const sb = await sandbox();
  const tokenFile = `${sb.root}/token`;
  await Deno.writeTextFile(tokenFile, TOKEN, { mode: 0o600 });
  const dot = `${sb.root}/dotfiles`;
  await Deno.mkdir(dot);
  await writeExecutable(
    `${dot}/install.sh`,
    'echo "installing dotfiles"\necho run >>"$HOME/.dotfiles-installs"\nprintf "alias ll=ls\\n" >"$HOME/.aliases"\n',
  );
  const hook = `${sb.root}/my-init.sh`;
  await writeExecutable(hook, 'echo run >>"$HOME/.hook-runs"\n');
  await Deno.writeTextFile(`${sb.home}/.bashrc`, "# distro bashrc\n");
  const env = {
    GH_TOKEN_FILE: tokenFile,
    DOTFILES_PATH: dot,
    INIT_PATH: hook,
    ROLE: "commodore",
    TARGET_REPO: "owner/repo",
    OHC_OFFLINE: "1",
  };

  const first = await runInit(sb, env);
  assert.equal(first.code, 0, first.stdout + first.stderr);
  assert.match(first.lines[0], /^==> init\.sh: role=commodore /);
  assert.ok(
    first.lines.includes(
      "==> TARGET_REPO=owner/repo (cloned by ohcommodore, not by init.sh)",
    ),
  );
  for (const s of ["ghauth", "dotfiles", "shellrc", "hook"]) {
    assert.match(stepLine(first, s), /: done( |$)/, s);
  }
  assert.equal(await readText(`${sb.home}/.dotfiles-installs`), "run\n");
  assert.equal(await readText(`${sb.home}/.hook-runs`), "run\n");
  const profile = await readText(`${sb.home}/.profile`);
  assert.match(profile, /# >>> ohcommodore >>>/);
  assert.match(profile, /\$HOME\/\.ohcommodore\/bin:\$HOME\/\.local\/bin/);
  assert.match(await readText(`${sb.home}/.bashrc`), /^# distro bashrc\n/);

  const isLog = (rel: string) => rel === ".ohcommodore/init.log";
  const before = await snapshot(sb.home, isLog);
  const logBefore = await readText(`${sb.home}/.ohcommodore/init.log`);
  await Deno.writeTextFile(sb.record, "");

  const second = await runInit(sb, env);
  assert.equal(second.code, 0, second.stdout + second.stderr);
  for (const s of ["gh", "ghauth", "dotfiles", "shellrc", "hook"]) {
    assert.match(stepLine(second, s), /: already done/, s);
  }
  assert.ok(
    !second.lines.some((l) => /: done( |$)/.test(l)),
    `nothing is done twice:\n${second.stdout}`,
  );
  assert.match(
    second.lines.at(-1)!,
    /^==> init\.sh finished: 0 done, 5 already done, \d+ skipped, 0 failed softly$/,
  );
  assert.deepEqual(await snapshot(sb.home, isLog), before);
  // The log only grows.
  const logAfter = await readText(`${sb.home}/.ohcommodore/init.log`);
  assert.ok(
    logAfter.startsWith(logBefore) && logAfter.length > logBefore.length,
  );
  assert.ok(!logAfter.includes(TOKEN));
  // gh was only asked whether it is logged in.
  const rec = await readText(sb.record);
  assert.ok(!rec.includes("auth login"), rec);
  assert.match(rec, /ARGV auth status/);
});

Deno.test("a failing network step prints one line and the script exits 0", async () => {
  const sb = await sandbox({ stubs: { curl: FAILING_CURL } });
  const r = await runInit(sb, { OHC_SKIP: "packages,rust,ohmyzsh,chezmoi" });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.stderr, "");
  const zellijLines = r.lines.filter((l) => l.includes("zellij"));
  assert.deepEqual(zellijLines, [
    "==> step zellij failed: curl: (6) Could not resolve host: github.com (continuing)",
  ]);
  for (const s of ["packages", "rust", "ohmyzsh", "chezmoi"]) {
    assert.equal(stepLine(r, s), `==> step ${s}: skipped (OHC_SKIP)`);
  }
  assert.match(r.lines.at(-1)!, /, 1 failed softly$/);
  // The details went to the log.
  const log = await readText(`${sb.home}/.ohcommodore/init.log`);
  assert.match(log, /\[zellij\] curl: \(6\) Could not resolve host/);
});

Deno.test("every network step fails softly when the network is down", async () => {
  const sb = await sandbox({
    gh: false,
    stubs: {
      curl: FAILING_CURL,
      "apt-get": FAILING_APT,
      "dpkg-query": NOTHING_INSTALLED,
      sudo: PASSWORDLESS_SUDO,
    },
  });
  // OHC_SYSTEM=1 lets the packages step try apt-get: the stub, never the
  // real one. The login-shell step is skipped so no real account is touched.
  const dot = `${sb.root}/dotfiles`;
  await Deno.mkdir(`${dot}`);
  await Deno.writeTextFile(`${dot}/dot_bashrc`, "# chezmoi source\n");
  const r = await runInit(sb, {
    OHC_SYSTEM: "1",
    OHC_SKIP: "shell",
    DOTFILES_PATH: dot,
    INIT_URL: "https://example.invalid/init.sh",
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(r.stderr, "");
  assert.equal(
    stepLine(r, "packages"),
    "==> step packages failed: E: Failed to fetch http://deb.debian.org/debian/dists/bookworm/InRelease  Temporary failure resolving 'deb.debian.org' (continuing)",
  );
  for (const s of ["gh", "zellij", "rust", "chezmoi"]) {
    assert.equal(
      stepLine(r, s),
      `==> step ${s} failed: curl: (6) Could not resolve host: github.com (continuing)`,
    );
  }
  assert.match(stepLine(r, "ohmyzsh"), /skipped|failed: .* \(continuing\)$/);
  assert.equal(
    stepLine(r, "dotfiles"),
    `==> step dotfiles failed: DOTFILES_PATH ${dot} is a chezmoi source, and chezmoi is not installed (continuing)`,
  );
  assert.equal(
    stepLine(r, "hook"),
    "==> step hook failed: download of INIT_URL: curl: (6) Could not resolve host: github.com (continuing)",
  );
  // Nothing half-done was recorded: a later run tries again.
  const state = [];
  for await (const e of Deno.readDir(`${sb.home}/.ohcommodore/init.d`)) {
    state.push(e.name);
  }
  assert.deepEqual(state, []);
});

Deno.test("DOTFILES_PATH without install.sh: entries are linked, clashes backed up", async () => {
  const sb = await sandbox();
  const dot = `${sb.home}/.dotfiles`;
  await Deno.mkdir(`${dot}/.git`, { recursive: true });
  await Deno.mkdir(`${dot}/.config/app`, { recursive: true });
  await Deno.writeTextFile(`${dot}/.vimrc`, "set nu\n");
  await Deno.writeTextFile(`${dot}/.bashrc`, "# mine\n");
  await Deno.writeTextFile(`${dot}/.config/app/x.conf`, "x\n");
  await Deno.writeTextFile(`${dot}/README.md`, "readme\n");
  await Deno.writeTextFile(`${sb.home}/.bashrc`, "# old\n");
  const env = { DOTFILES_PATH: "~/.dotfiles", OHC_OFFLINE: "1" };

  const r = await runInit(sb, env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(
    stepLine(r, "dotfiles"),
    "==> step dotfiles: done (linked 3 entries into ~ from DOTFILES_PATH ~/.dotfiles)",
  );
  assert.equal(await Deno.readLink(`${sb.home}/.vimrc`), `${dot}/.vimrc`);
  assert.equal(await Deno.readLink(`${sb.home}/.bashrc`), `${dot}/.bashrc`);
  assert.equal(await Deno.readLink(`${sb.home}/.config`), `${dot}/.config`);
  assert.equal(await readText(`${sb.home}/.bashrc.ohc-backup`), "# old\n");
  await assert.rejects(
    Deno.lstat(`${sb.home}/README.md`),
    Deno.errors.NotFound,
  );
  // The PATH block is not written into the user's dotfiles through a link.
  assert.match(stepLine(r, "shellrc"), /left symlinked \.bashrc alone/);
  assert.equal(await readText(`${dot}/.bashrc`), "# mine\n");

  const again = await runInit(sb, env);
  assert.match(stepLine(again, "dotfiles"), /already done/);
  assert.match(stepLine(again, "shellrc"), /already done/);

  // Changed dotfiles are installed again.
  await Deno.writeTextFile(`${dot}/.inputrc`, "set bell-style none\n");
  const third = await runInit(sb, env);
  assert.match(stepLine(third, "dotfiles"), /: done \(linked 1 entries/);
  assert.equal(await Deno.readLink(`${sb.home}/.inputrc`), `${dot}/.inputrc`);
});

Deno.test("DOTFILES_PATH: a failing install.sh or a missing directory stops with exit 1", async () => {
  const sb = await sandbox();
  const dot = `${sb.root}/dotfiles`;
  await Deno.mkdir(dot);
  await writeExecutable(
    `${dot}/install.sh`,
    'echo "step one"\necho "cannot find stow" >&2\nexit 3\n',
  );
  const hook = `${sb.root}/hook.sh`;
  await writeExecutable(hook, 'touch "$HOME/hook-ran"\n');
  let r = await runInit(sb, {
    DOTFILES_PATH: dot,
    INIT_PATH: hook,
    OHC_OFFLINE: "1",
  });
  assert.equal(r.code, 1);
  assert.equal(
    r.lines.at(-1),
    `==> step dotfiles failed: install.sh from DOTFILES_PATH ${dot}: cannot find stow (stopping; see ~/.ohcommodore/init.log)`,
  );
  assert.equal(r.lines.filter((l) => l.includes("dotfiles")).length, 1);
  await assert.rejects(Deno.stat(`${sb.home}/hook-ran`), Deno.errors.NotFound);

  r = await runInit(sb, {
    DOTFILES_PATH: `${sb.root}/missing`,
    OHC_OFFLINE: "1",
  });
  assert.equal(r.code, 1);
  assert.match(
    r.lines.at(-1)!,
    /^==> step dotfiles failed: DOTFILES_PATH .*\/missing is not a directory \(stopping/,
  );
});

Deno.test("DOTFILES_URL: cloned once (a dotfiles/ subdirectory is used), offline skips", async () => {
  const sb = await sandbox();
  const repo = `${sb.root}/dotrepo`;
  await Deno.mkdir(`${repo}/dotfiles`, { recursive: true });
  await Deno.writeTextFile(`${repo}/dotfiles/.tmux.conf`, "set -g mouse on\n");
  await Deno.writeTextFile(`${repo}/README.md`, "repo readme\n");
  const git = async (...args: string[]) => {
    const r = await new Deno.Command("git", {
      args,
      cwd: repo,
      env: {
        GIT_AUTHOR_NAME: "t",
        GIT_AUTHOR_EMAIL: "t@example.com",
        GIT_COMMITTER_NAME: "t",
        GIT_COMMITTER_EMAIL: "t@example.com",
        GIT_CONFIG_GLOBAL: "/dev/null",
      },
    }).output();
    assert.ok(r.success, new TextDecoder().decode(r.stderr));
  };
  await git("init", "-q");
  await git("add", ".");
  await git("commit", "-q", "-m", "dotfiles");

  const offline = await runInit(sb, { DOTFILES_URL: repo, OHC_OFFLINE: "1" });
  assert.equal(
    stepLine(offline, "dotfiles"),
    "==> step dotfiles: skipped (offline: OHC_OFFLINE=1)",
  );

  const env = {
    DOTFILES_URL: repo,
    OHC_SKIP: "packages,gh,zellij,rust,ohmyzsh,chezmoi",
  };
  const r = await runInit(sb, env);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(
    stepLine(r, "dotfiles"),
    `==> step dotfiles: done (linked 1 entries into ~ from DOTFILES_URL ${repo})`,
  );
  assert.equal(
    await Deno.readLink(`${sb.home}/.tmux.conf`),
    `${sb.home}/.ohcommodore/dotfiles/dotfiles/.tmux.conf`,
  );
  // Second run: no clone, nothing changes, even with the network off.
  await Deno.remove(repo, { recursive: true });
  const again = await runInit(sb, { ...env, OHC_OFFLINE: "1" });
  assert.match(stepLine(again, "dotfiles"), /already done \(DOTFILES_URL /);
});

Deno.test("INIT_PATH hook: runs once with the contract's environment; its output is scrubbed", async () => {
  const sb = await sandbox();
  const hook = `${sb.root}/hook.sh`;
  await writeExecutable(
    hook,
    [
      'echo "ROLE=$ROLE TARGET_REPO=$TARGET_REPO OHC_INIT_HOOK=$OHC_INIT_HOOK PWD=$PWD" >"$HOME/hook.env"',
      '[[ "$GH_TOKEN" == "$EXPECTED" ]] && echo "token ok" >>"$HOME/hook.env"',
      'echo "oops, printing $GH_TOKEN"',
    ].join("\n") + "\n",
  );
  const r = await runInit(sb, {
    INIT_PATH: hook,
    GH_TOKEN: TOKEN,
    EXPECTED: TOKEN,
    TARGET_REPO: "o/r",
    OHC_OFFLINE: "1",
  });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(
    stepLine(r, "hook"),
    `==> step hook: done (ran INIT_PATH ${hook})`,
  );
  assert.equal(
    await readText(`${sb.home}/hook.env`),
    `ROLE=captain TARGET_REPO=o/r OHC_INIT_HOOK=1 PWD=${sb.home}\ntoken ok\n`,
  );
  const log = await readText(`${sb.home}/.ohcommodore/init.log`);
  assert.ok(!log.includes(TOKEN));
  assert.match(log, /\[hook\] oops, printing \[redacted\]/);
  assert.ok(!r.stdout.includes(TOKEN));

  // Changing the hook runs it again; a failing hook stops the script.
  await writeExecutable(hook, 'echo "bad config" >&2\nexit 4\n');
  const bad = await runInit(sb, { INIT_PATH: hook, OHC_OFFLINE: "1" });
  assert.equal(bad.code, 1);
  assert.equal(
    bad.lines.at(-1),
    `==> step hook failed: INIT_PATH ${hook} exited 4: bad config (stopping; see ~/.ohcommodore/init.log)`,
  );
});

Deno.test("INIT_PATH naming init.sh itself is not run again", async () => {
  const sb = await sandbox();
  const copy = `${sb.home}/init.sh`;
  await Deno.copyFile(SCRIPT, copy);
  const r = await runInit(sb, { INIT_PATH: "init.sh", OHC_OFFLINE: "1" });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.equal(
    stepLine(r, "hook"),
    "==> step hook: skipped (INIT_PATH is this script)",
  );
});

Deno.test("bad ROLE: exit 2, one line, nothing written", async () => {
  const sb = await sandbox();
  const r = await runInit(sb, { ROLE: "admiral" });
  assert.equal(r.code, 2);
  assert.deepEqual(r.lines, [
    "==> ROLE must be commodore or captain (got 'admiral')",
  ]);
  await assert.rejects(
    Deno.stat(`${sb.home}/.ohcommodore`),
    Deno.errors.NotFound,
  );
});

Deno.test("OHC_SKIP: named steps are skipped, unknown names warned about", async () => {
  const sb = await sandbox();
  const r = await runInit(sb, {
    OHC_SKIP: "Oh-My-Zsh, rust bogus",
    OHC_OFFLINE: "1",
  });
  assert.equal(r.code, 0);
  assert.equal(stepLine(r, "ohmyzsh"), "==> step ohmyzsh: skipped (OHC_SKIP)");
  assert.equal(stepLine(r, "rust"), "==> step rust: skipped (OHC_SKIP)");
  assert.ok(
    r.lines.some((l) =>
      l.startsWith("==> warning: OHC_SKIP names an unknown step 'bogus'")
    ),
    r.stdout,
  );
});

Deno.test("not root and no sudo: root-only steps say so and are skipped", {
  ignore: Deno.uid() !== 0 || (await which("setpriv")) === null,
}, async () => {
  const sb = await sandbox({ stubs: { "dpkg-query": NOTHING_INSTALLED } });
  // A stub apt-get that would fail loudly if it were ever run.
  await writeExecutable(
    `${sb.stub}/apt-get`,
    "#!/bin/bash\necho RAN >&2\nexit 1\n",
  );
  await Deno.chmod(sb.root, 0o755);
  await Deno.chown(sb.home, 65534, 65534);
  await Deno.chmod(sb.record, 0o666);
  const r = await runInit(sb, { OHC_SYSTEM: "1", OHC_SKIP: "shell" }, [
    (await which("setpriv"))!,
    "--reuid=65534",
    "--regid=65534",
    "--clear-groups",
  ]);
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.lines[0], /root=no system=yes/);
  assert.equal(
    stepLine(r, "packages"),
    "==> step packages: skipped (needs root: not root and no passwordless sudo)",
  );
});

Deno.test("a sandboxed HOME leaves the system alone by default", async () => {
  const sb = await sandbox({
    stubs: { "dpkg-query": NOTHING_INSTALLED, "apt-get": FAILING_APT },
  });
  const r = await runInit(sb, { OHC_SYSTEM: "" });
  assert.equal(r.code, 0, r.stdout + r.stderr);
  assert.match(r.lines[0], /system=no/);
  assert.match(
    stepLine(r, "packages"),
    /^==> step packages: skipped \(HOME is not the login home of .*OHC_SYSTEM=1 allows it\)$/,
  );
});
