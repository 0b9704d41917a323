/**
 * Where things live on a machine, relative to its home. One place, so the
 * laptop, the flagship and the ships agree.
 */
function home(): string {
  const h = Deno.env.get("HOME");
  if (!h) throw new Error("HOME is not set");
  return h;
}

export const paths = {
  home,
  dir: (h = home()) => `${h}/.ohcommodore`,
  identity: (h = home()) => `${h}/.ohcommodore/identity.json`,
  config: (h = home()) => `${h}/.ohcommodore/config.json`,
  fleet: (h = home()) => `${h}/.ohcommodore/fleet.json`,
  bootstrap: (h = home()) => `${h}/.ohcommodore/bootstrap.json`,
  /** The VM's settings (lib/settings.ts), from the fleet's. */
  settings: (h = home()) => `${h}/.ohcommodore/settings.json`,
  secrets: (h = home()) => `${h}/.ohcommodore/secrets`,
  binDir: (h = home()) => `${h}/.ohcommodore/bin`,
  bin: (h = home()) => `${h}/.ohcommodore/bin/ohcommodore`,
  /** cloudinit/init.sh's copy and its inputs (lib/bootstrap.ts), and its log. */
  initDir: (h = home()) => `${h}/.ohcommodore/init`,
  initLog: (h = home()) => `${h}/.ohcommodore/init.log`,
  /** This machine's own key, known_hosts and master sockets (ssh_keys.ts). */
  sshDir: (h = home()) => `${h}/.ohcommodore/ssh`,
  /** The binary gzip'd for deploys, by sha256 (lib/deploy.ts). */
  deployCache: (h = home()) => `${h}/.ohcommodore/cache/deploy`,
  localRoot: (h = home()) => `${h}/.ohcommodore/local`,
  runDir: (h = home()) => `${h}/.ohcommodore/run`,
  daemonPid: (h = home()) => `${h}/.ohcommodore/run/daemon.pid`,
  daemonLock: (h = home()) => `${h}/.ohcommodore/run/daemon.lock`,
  /** Present while the scheduler is held by `daemon pause` (kept over restarts). */
  daemonPaused: (h = home()) => `${h}/.ohcommodore/run/paused`,
  daemonLog: (h = home()) => `${h}/.ohcommodore/daemon.log`,
  daemonSocket: (h = home()) => socketPath(h, "daemon.sock"),
  tmuxSocket: (h = home()) => socketPath(h, "tmux.sock"),
  /** The tmux server of `voyage shell`'s fleet views (where you run it). */
  viewSocket: (h = home()) => socketPath(h, "view.sock"),
  inboxDb: (h = home()) => `${h}/.local/ship/data.duckdb`,
  /** Where a user manager (systemd --user) finds this user's units. */
  systemdUserDir: (h = home()) => `${h}/.config/systemd/user`,
  /** The scheduler's start journal (daemon/start_journal.ts). */
  startJournal: (h = home()) => `${h}/.local/ship/started.log`,
};

/**
 * Unix socket paths are limited to 107 bytes; a home that deep gets its
 * sockets in /tmp, named after it, instead.
 */
function socketPath(h: string, name: string): string {
  const p = `${h}/.ohcommodore/${name}`;
  if (p.length < 100) return p;
  let x = 0;
  for (const c of h) x = (Math.imul(x, 31) + c.charCodeAt(0)) >>> 0;
  return `/tmp/ohcommodore-${x.toString(16)}-${name}`;
}

/** The same paths as seen from the far side of a transport (home-relative). */
export const remotePaths = {
  identity: ".ohcommodore/identity.json",
  bin: ".ohcommodore/bin/ohcommodore",
  binDir: ".ohcommodore/bin",
  /** The GitHub token git's credential helper reads (git/credential.ts). */
  ghTokenFile: ".ohcommodore/secrets/gh_token",
  /** A ship's voyage files, one folder per voyage. */
  voyages: ".ohcommodore/voyages",
  /** The names shell completion offers (cli/completion_cache.ts). */
  completionCache: (kind: string) => `.ohcommodore/cache/${kind}`,
  deployCache: ".ohcommodore/cache/deploy",
  secrets: ".ohcommodore/secrets",
};
