/**
 * Where things live on a machine, relative to its home. One place, so the
 * laptop, the flagship and the ships agree. The home is always given: it is
 * the machine's (lib/machine.ts), read once where a process starts.
 */
export const paths = {
  dir: (h: string) => `${h}/.ohcommodore`,
  identity: (h: string) => `${h}/.ohcommodore/identity.json`,
  config: (h: string) => `${h}/.ohcommodore/config.json`,
  fleet: (h: string) => `${h}/.ohcommodore/fleet.json`,
  bootstrap: (h: string) => `${h}/.ohcommodore/bootstrap.json`,
  /** The VM's settings (lib/settings.ts), from the fleet's. */
  settings: (h: string) => `${h}/.ohcommodore/settings.json`,
  secrets: (h: string) => `${h}/.ohcommodore/secrets`,
  binDir: (h: string) => `${h}/.ohcommodore/bin`,
  bin: (h: string) => `${h}/.ohcommodore/bin/ohcommodore`,
  /** cloudinit/init.sh's copy and its inputs (lib/bootstrap.ts), and its log. */
  initDir: (h: string) => `${h}/.ohcommodore/init`,
  initLog: (h: string) => `${h}/.ohcommodore/init.log`,
  /** This machine's own key, known_hosts and master sockets (ssh_keys.ts). */
  sshDir: (h: string) => `${h}/.ohcommodore/ssh`,
  /** The binary gzip'd for deploys, by sha256 (lib/deploy.ts). */
  deployCache: (h: string) => `${h}/.ohcommodore/cache/deploy`,
  /** A voyage the flagship sails: its repository, plan, logs kept. */
  voyage: (h: string, id: string) => `${h}/.ohcommodore/voyages/${id}`,
  /** Held by the process sailing the voyage until its ships are made. */
  sailPid: (h: string, id: string) => `${paths.voyage(h, id)}/sail.pid`,
  localRoot: (h: string) => `${h}/.ohcommodore/local`,
  runDir: (h: string) => `${h}/.ohcommodore/run`,
  daemonPid: (h: string) => `${h}/.ohcommodore/run/daemon.pid`,
  daemonLock: (h: string) => `${h}/.ohcommodore/run/daemon.lock`,
  /** Present while the scheduler is held by `daemon pause` (kept over restarts). */
  daemonPaused: (h: string) => `${h}/.ohcommodore/run/paused`,
  daemonLog: (h: string) => `${h}/.ohcommodore/daemon.log`,
  daemonSocket: (h: string) => socketPath(h, "daemon.sock"),
  tmuxSocket: (h: string) => socketPath(h, "tmux.sock"),
  /** The tmux server of `voyage shell`'s fleet views (where you run it). */
  viewSocket: (h: string) => socketPath(h, "view.sock"),
  inboxDb: (h: string) => `${h}/.local/ship/data.duckdb`,
  /** Where a user manager (systemd --user) finds this user's units. */
  systemdUserDir: (h: string) => `${h}/.config/systemd/user`,
  /** The scheduler's start journal (daemon/start_journal.ts). */
  startJournal: (h: string) => `${h}/.local/ship/started.log`,
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
