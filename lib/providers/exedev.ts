/**
 * The exe.dev provider (reference §1): VM lifecycle through the lobby,
 * `ssh exe.dev <command>`, and the VMs themselves over plain SSH.
 *
 * Every lobby call is one ssh session on a shared master connection to the
 * lobby host. On the laptop it is made the way the user's own `ssh exe.dev`
 * is (their config, agent and default keys), or with one given key only
 * (`init --identity`); on the flagship with its own key (ssh_keys.ts) and
 * only that one (the lobby decides "registered or not" from the first key
 * offered).
 * The lobby writes everything, errors included, to stdout; with `--json`
 * each document is one line, and `rm` writes two for a missing VM, so output
 * is read as JSON lines.
 *
 * Nothing secret goes on a lobby command line: `new --env` is for plain
 * settings only, and keys to register go on stdin.
 */

import { OhcError, UsageError } from "../errors.ts";
import { run, type RunResult } from "../transport/run.ts";
import {
  isSshFailure,
  SSH_FAILURE_CODE,
  sshFailureMessage,
  SshTransport,
  waitForSsh,
} from "../transport/ssh.ts";
import {
  envFlags,
  exeDevNameError,
  exeDevNewNameError,
  type ExeDevWhoami,
  firstError,
  lobbyText,
  newVmError,
  notRegistered,
  parseExeDevStatus,
  parseJsonLines,
  parseSshDest,
  parseWhoami,
  REGISTRATION_TEXT,
} from "./exedev_lobby.ts";
export type { ExeDevKey, ExeDevWhoami } from "./exedev_lobby.ts";
import { ensureKey, sshKeyPaths } from "./ssh_keys.ts";
import type { Provider, ProviderSettings, VmRecord } from "./types.ts";
import { sleep } from "../sleep.ts";

export type ExeDevSettings = Extract<ProviderSettings, { kind: "exedev" }>;

export interface ExeDevProviderOptions {
  /** Home whose fleet key (~/.ohcommodore/ssh) is used. */
  home: string;
  /**
   * Use this private key instead of the home's fleet key (it is then not
   * generated). E.g. a key already registered on the account.
   */
  identityFile?: string;
  /**
   * Offer no key of ours: the user's own OpenSSH setup (config, agent,
   * default keys) decides, as for their `ssh exe.dev`. The laptop's way.
   */
  userSsh?: boolean;
  /** Override known_hosts (default ~/.ohcommodore/ssh/known_hosts). */
  knownHostsFile?: string;
  /** Override the master-socket directory (keep it short). */
  controlDir?: string;
  /** How long `create` waits for the new VM's SSH. Default 180 s. */
  readyTimeoutMs?: number;
  /** Bound on one lobby command; `new` gets at least 330 s. Default 60 s. */
  lobbyTimeoutMs?: number;
  /** ssh ConnectTimeout in seconds. Default 10. */
  connectTimeoutS?: number;
}

export interface ExeDevCreateOptions {
  onProgress?: (msg: string) => void;
  /**
   * Environment for the VM (`new --env K=V`). Only plain settings: these
   * go on the lobby command line and are stored by exe.dev. Names that look
   * like secrets are refused.
   */
  env?: Record<string, string>;
  /** exe.dev tags (`new --tag`), e.g. the fleet's. */
  tags?: string[];
}

// ------------------------------------------------------------------ provider

export class ExeDevProvider implements Provider {
  readonly kind = "exedev" as const;
  readonly lobbyHost: string;
  readonly sshConfig?: string;
  readonly knownHostsFile: string;
  readonly controlDir: string;
  /** The private key every ssh call offers; none: the user's setup decides. */
  readonly identityFile: string | undefined;
  private readonly home: string;
  private readonly ownKey: boolean;
  private readonly opts: ExeDevProviderOptions;
  private keyReady?: Promise<void>;
  private lobbyT?: SshTransport;
  private lobbyUp?: Promise<void>;
  private readonly vmTransports = new Map<string, SshTransport>();
  /** Last known ssh_dest per VM name (from new/ls). */
  private readonly dests = new Map<string, string>();

  constructor(
    settings: ExeDevSettings = { kind: "exedev" },
    opts: ExeDevProviderOptions,
  ) {
    this.opts = { ...opts };
    this.home = opts.home;
    const p = sshKeyPaths(this.home);
    this.lobbyHost = settings.lobby ?? "exe.dev";
    parseSshDest(this.lobbyHost); // rejects option-like or spaced hosts
    this.sshConfig = settings.ssh_config;
    this.knownHostsFile = opts.knownHostsFile ?? p.knownHostsFile;
    this.controlDir = opts.controlDir ?? p.controlDir;
    this.ownKey = opts.identityFile === undefined && !opts.userSsh;
    this.identityFile = opts.userSsh
      ? undefined
      : opts.identityFile ?? p.privatePath;
  }

  /** Generates the home's fleet key on first use (never a given key). */
  private ensureKey(): Promise<void> {
    if (!this.ownKey) return Promise.resolve();
    this.keyReady ??= ensureKey(this.home).then(() => {});
    this.keyReady.catch(() => this.keyReady = undefined);
    return this.keyReady;
  }

  private sshTransport(dest: string): SshTransport {
    return new SshTransport({
      dest,
      identityFile: this.identityFile,
      knownHostsFile: this.knownHostsFile,
      controlDir: this.controlDir,
      configFile: this.sshConfig,
      connectTimeoutS: this.opts.connectTimeoutS,
    });
  }

  /** The lobby connection (shared master), for callers that need it. */
  lobbyTransport(): SshTransport {
    this.lobbyT ??= this.sshTransport(this.lobbyHost);
    return this.lobbyT;
  }

  /**
   * Runs one lobby command. Throws OhcError when ssh could not reach the
   * lobby or the key is not registered; other failures are returned.
   */
  private async lobby(
    args: string[],
    o: { stdin?: string; timeoutMs?: number } = {},
  ): Promise<RunResult> {
    await this.ensureKey();
    const t = this.lobbyTransport();
    // One master for all calls: parallel creates share one handshake.
    if (this.lobbyUp === undefined) {
      this.lobbyUp = t.connect();
      this.lobbyUp.catch(() => this.lobbyUp = undefined);
    }
    try {
      await this.lobbyUp;
    } catch { /* the command below reports the failure */ }
    const timeoutMs = o.timeoutMs ?? this.opts.lobbyTimeoutMs ?? 60_000;
    let res: RunResult;
    try {
      res = await run(t, args, {
        stdin: o.stdin,
        signal: AbortSignal.timeout(timeoutMs),
      });
    } catch (e) {
      throw new OhcError(
        "exedev_lobby_error",
        `ssh ${this.lobbyHost} ${args[0]}: ${(e as Error).message}`,
      );
    }
    if (res.stdout.includes(REGISTRATION_TEXT)) {
      throw notRegistered(this.lobbyHost, this.identityFile);
    }
    if (isSshFailure(res.code, res.stderr)) {
      if (/Permission denied \(/.test(res.stderr)) {
        throw notRegistered(
          this.lobbyHost,
          this.identityFile,
          "Permission denied",
        );
      }
      throw new OhcError(
        "exedev_unreachable",
        `cannot reach the exe.dev lobby: ${
          sshFailureMessage(this.lobbyHost, res.stderr)
        }`,
        `check that \`ssh ${this.lobbyHost} whoami\` works from here`,
      );
    }
    if (
      res.code === SSH_FAILURE_CODE && res.stdout === "" && res.stderr === ""
    ) {
      throw new OhcError(
        "exedev_unreachable",
        `ssh ${this.lobbyHost} ${
          args[0]
        }: no answer (exit 255, timed out after ${
          Math.round(timeoutMs / 1000)
        }s or connection lost)`,
      );
    }
    return res;
  }

  async create(
    name: string,
    opts: ExeDevCreateOptions = {},
  ): Promise<VmRecord> {
    const bad = exeDevNewNameError(name);
    if (bad !== null) throw new UsageError(`${bad}: ${name}`);
    const progress = opts.onProgress ?? (() => {});
    const args = [
      "new",
      "--json",
      `--name=${name}`,
      ...(opts.tags?.length ? [`--tag=${opts.tags.join(",")}`] : []),
      ...envFlags(opts.env),
    ];
    progress(`creating ${name} on ${this.lobbyHost}`);
    const res = await this.lobby(args, {
      timeoutMs: Math.max(this.opts.lobbyTimeoutMs ?? 0, 330_000),
    });
    const docs = parseJsonLines(res.stdout);
    const err = firstError(docs);
    if (res.code !== 0 || err !== null) {
      throw newVmError(name, err ?? lobbyText(res));
    }
    const d = docs.find((x) => typeof x.ssh_dest === "string");
    if (d === undefined || typeof d.vm_name !== "string") {
      throw new OhcError(
        "exedev_create_failed",
        `exe.dev new ${name}: unexpected answer: ${
          res.stdout.trim() || "(empty)"
        }`,
      );
    }
    const vmName = d.vm_name;
    const dest = d.ssh_dest as string;
    try {
      parseSshDest(dest);
    } catch (e) {
      await this.destroy(vmName).catch(() => {});
      throw new OhcError(
        "exedev_create_failed",
        `exe.dev new ${name}: ${(e as Error).message}`,
      );
    }
    this.dests.set(vmName, dest);
    progress(`${vmName} created (${dest}); waiting for ssh`);
    await this.waitReady(vmName, dest, progress);
    progress(`${vmName} is ready`);
    const { vm_name: _n, ssh_dest: _d, ...data } = d;
    return {
      name: vmName,
      ssh_dest: dest,
      status: "running",
      provider: "exedev",
      data,
    };
  }

  /**
   * Polls `ssh <dest> true` with backoff until it answers. Meanwhile asks
   * the lobby now and then whether the VM failed or vanished, to stop early.
   * On failure the VM is destroyed, so no orphan is left.
   */
  private async waitReady(
    name: string,
    dest: string,
    progress: (msg: string) => void,
  ): Promise<void> {
    const timeoutMs = this.opts.readyTimeoutMs ?? 180_000;
    const stop = new AbortController();
    let watching = true;
    const watch = (async () => {
      await sleep(5_000, stop.signal);
      while (watching && !stop.signal.aborted) {
        try {
          const vm = (await this.list([name])).find((v) => v.name === name);
          if (vm === undefined) {
            stop.abort(
              new OhcError(
                "exedev_vm_gone",
                `${name} disappeared from exe.dev while it was starting`,
              ),
            );
          } else if (vm.status === "failed") {
            stop.abort(
              new OhcError(
                "exedev_vm_failed",
                `exe.dev reports ${name} as failed`,
              ),
            );
          }
        } catch { /* the ssh wait decides */ }
        await sleep(5_000, stop.signal);
      }
    })();
    try {
      await waitForSsh(this.transport({ name, ssh_dest: dest }), {
        timeoutMs,
        signal: stop.signal,
        onAttempt: (n, last) => {
          if (n > 1) progress(`waiting for ssh to ${name} (try ${n}: ${last})`);
        },
      });
    } catch (e) {
      progress(`${name} did not come up; destroying it`);
      await this.destroy(name).catch(() => {});
      if (e instanceof OhcError) {
        throw new OhcError(e.code, `${e.message}; it was destroyed`, e.hint);
      }
      throw new OhcError(
        "exedev_vm_unreachable",
        `${name} was created but did not answer on ssh: ${
          (e as Error).message
        }; it was destroyed`,
      );
    } finally {
      watching = false;
      stop.abort();
      await watch;
    }
  }

  async destroy(name: string): Promise<void> {
    const bad = exeDevNameError(name);
    if (bad !== null) throw new UsageError(`${bad}: ${name}`);
    const res = await this.lobby(["rm", "--json", name]);
    const docs = parseJsonLines(res.stdout);
    const summary = docs.find((d) => Array.isArray(d.deleted));
    const errors = docs.map((d) => d.error).filter((e): e is string =>
      typeof e === "string"
    );
    const missing = errors.some((e) => /not found/i.test(e));
    const deleted = (summary?.deleted as unknown[] | undefined)?.includes(
      name,
    );
    if (res.code !== 0 || summary === undefined || (!deleted && !missing)) {
      throw new OhcError(
        "exedev_destroy_failed",
        `exe.dev rm ${name}: ${errors.at(-1) ?? lobbyText(res)}`,
      );
    }
    await this.forget(name);
  }

  /** Drops our master connection and host key of a VM that is gone. */
  private async forget(name: string): Promise<void> {
    const dest = this.dests.get(name);
    this.dests.delete(name);
    if (dest === undefined) return;
    const t = this.vmTransports.get(dest);
    this.vmTransports.delete(dest);
    await t?.close().catch(() => {});
    // A new VM of the same name gets a new host key: forget the old one.
    // Only for a host that is this VM's own (not a shared `vm.exe.xyz`).
    const { host } = parseSshDest(dest);
    if (host.startsWith(`${name}.`)) {
      await new Deno.Command("ssh-keygen", {
        args: ["-R", host, "-f", this.knownHostsFile],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).output().catch(() => {});
    }
  }

  /** `ls --json [names...]` as VM records. */
  async list(names: string[] = []): Promise<VmRecord[]> {
    for (const n of names) {
      const bad = exeDevNameError(n);
      if (bad !== null) throw new UsageError(`${bad}: ${n}`);
    }
    const res = await this.lobby(["ls", "--json", ...names]);
    const docs = parseJsonLines(res.stdout);
    const doc = docs.find((d) => Array.isArray(d.vms));
    if (res.code !== 0 || doc === undefined) {
      throw new OhcError(
        "exedev_list_failed",
        `exe.dev ls: ${lobbyText(res)}`,
      );
    }
    const out: VmRecord[] = [];
    for (const v of doc.vms as unknown[]) {
      if (v === null || typeof v !== "object") continue;
      const { vm_name, ssh_dest, status, ...data } = v as Record<
        string,
        unknown
      >;
      if (typeof vm_name !== "string" || typeof ssh_dest !== "string") {
        continue;
      }
      this.dests.set(vm_name, ssh_dest);
      out.push({
        name: vm_name,
        ssh_dest,
        status: parseExeDevStatus(status),
        provider: "exedev",
        data: { ...data, ...(typeof status === "string" ? { status } : {}) },
      });
    }
    return out.sort((a, b) => a.name.localeCompare(b.name));
  }

  /** SSH to the VM with the same key, known_hosts and config. */
  transport(vm: Pick<VmRecord, "name" | "ssh_dest">): SshTransport {
    this.dests.set(vm.name, vm.ssh_dest);
    let t = this.vmTransports.get(vm.ssh_dest);
    if (t === undefined) {
      t = this.sshTransport(vm.ssh_dest);
      this.vmTransports.set(vm.ssh_dest, t);
    }
    return t;
  }

  /**
   * Adds a public key to the account (`ssh-key add`, key on stdin). A key
   * that is already on this account is fine.
   */
  async registerKey(
    publicKey: string,
  ): Promise<{ status: "added" | "already" }> {
    const key = publicKey.trim();
    if (key === "" || key.includes("\n")) {
      throw new UsageError("registerKey needs one public key line");
    }
    if (key.includes("PRIVATE KEY")) {
      throw new UsageError("that is a private key; register the .pub file");
    }
    const res = await this.lobby(["ssh-key", "add", "--json"], {
      stdin: key + "\n",
    });
    const docs = parseJsonLines(res.stdout);
    const err = firstError(docs) ?? (res.code !== 0 ? lobbyText(res) : null);
    if (err === null && docs.some((d) => d.status === "added")) {
      return { status: "added" };
    }
    if (err !== null && /already associated with your account/.test(err)) {
      return { status: "already" };
    }
    throw new OhcError(
      "exedev_key_add_failed",
      `exe.dev ssh-key add: ${err ?? lobbyText(res)}`,
    );
  }

  /** `whoami --json`: the account and its keys (throws if not registered). */
  async whoami(): Promise<ExeDevWhoami> {
    const res = await this.lobby(["whoami", "--json"]);
    const doc = parseJsonLines(res.stdout).find((d) =>
      typeof d.email === "string"
    );
    if (res.code !== 0 || doc === undefined) {
      throw new OhcError(
        "exedev_whoami_failed",
        `exe.dev whoami: ${lobbyText(res)}`,
      );
    }
    return parseWhoami(doc);
  }

  /** Ends the master connections this provider opened. */
  async close(): Promise<void> {
    const all = [...this.vmTransports.values()];
    if (this.lobbyT) all.push(this.lobbyT);
    this.vmTransports.clear();
    this.lobbyUp = undefined;
    await Promise.all(all.map((t) => t.close().catch(() => {})));
  }
}
