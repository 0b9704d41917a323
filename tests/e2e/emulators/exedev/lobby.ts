/**
 * The exe.dev lobby's command interpreter: what `ssh exe.dev <command>`
 * answers (reference §1.2–1.6). Output goes to one stream (the SSH channel's
 * stdout), without ANSI codes and with `\n` line ends, as the real server
 * writes for a session without a PTY.
 *
 * It works on three small interfaces so the same code runs behind the real
 * sshd (file state, real VM processes) and in unit tests (in memory).
 */

import {
  type FlagSpecs,
  globToRegExp,
  goQuote,
  hasGlobMeta,
  HelpRequested,
  type ParsedFlags,
  parseGoFlags,
  randomVmName,
  reorderArgs,
  shlexSplit,
  vmNameError,
} from "./parse.ts";
import { fingerprint, parseAuthorizedKey, sanitizeComment } from "./keys.ts";
import {
  BOX_HOST,
  heldByOthers,
  type KeyRecord,
  type Knobs,
  normalizeVmName,
  sshDestFor,
  type State,
  vmAddress,
  type VmRecord,
} from "./model.ts";

export interface Store {
  read(): Promise<State>;
  /** Locked read-modify-write: `fn` mutates the state, which is then saved. */
  transact<T>(fn: (s: State) => T | Promise<T>): Promise<T>;
  knobs(): Promise<Knobs>;
}

export interface StartedVm {
  port: number;
  pid?: number;
  pidNs?: string;
}

export interface Machines {
  /**
   * Starts the VM's sshd. Resolves once it listens, or, when
   * `knobs.pendingMs` > 0, once it is launched (it listens later).
   */
  start(vm: VmRecord, knobs: Knobs): Promise<StartedVm>;
  /** Kills every process of the VM and removes its home. */
  destroy(vm: VmRecord): Promise<void>;
  /** Kills every process of the VM, keeps its home. */
  halt(vm: VmRecord): Promise<void>;
  /** Whether the VM's sshd answers now. */
  isUp(vm: VmRecord): Promise<boolean>;
  /** Records an unexpected error (the client only sees a trace ID). */
  log(message: string): void;
}

export interface Session {
  /** Canonical key (`type base64`) the client authenticated with. */
  publicKey: string | null;
  /** Reads the session's stdin to EOF (at most `limit` bytes). */
  readStdin(limit: number): Promise<string>;
  write(text: string): void;
}

export interface LobbyContext {
  store: Store;
  machines: Machines;
  session: Session;
}

export const REGISTRATION_MESSAGE =
  "Please complete registration by running: ssh exe.dev\r\n";

/** A client error: printed (as JSON with --json), exit 1. */
class ClientError extends Error {}

interface Cc {
  ctx: LobbyContext;
  flags: ParsedFlags | null;
  args: string[];
  /** The words that named the command, as typed. */
  path: string[];
}

function wantJSON(cc: Cc): boolean {
  return cc.flags?.bools.json === true;
}

/** Go's json.Marshal output plus newline (HTML escaping off). */
function writeJSON(cc: Cc, value: unknown): void {
  cc.ctx.session.write(JSON.stringify(value) + "\n");
}

function writeText(cc: Cc, text: string): void {
  if (!wantJSON(cc)) cc.ctx.session.write(text);
}

function writeError(cc: Cc, message: string): void {
  if (wantJSON(cc)) writeJSON(cc, { error: message });
  else cc.ctx.session.write(message + "\n");
}

interface Command {
  name: string;
  description: string;
  usage?: string;
  hidden?: boolean;
  flags?: FlagSpecs;
  positional?: boolean;
  rawArgs?: boolean;
  examples?: string[];
  subcommands?: Command[];
  handler: (cc: Cc) => Promise<void>;
}

const JSON_FLAG: FlagSpecs = {
  json: { kind: "bool", usage: "output in JSON format" },
};

function traceId(): string {
  const b = crypto.getRandomValues(new Uint8Array(8));
  return [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
}

function nowRfc3339(): string {
  return new Date().toISOString().replace(/\.\d+Z$/, "Z");
}

function humanizeSince(iso: string): string {
  const s = Math.floor((Date.now() - Date.parse(iso)) / 1000);
  if (s < 1) return "now";
  if (s < 60) return `${s} seconds ago`;
  if (s < 120) return "1 minute ago";
  if (s < 3600) return `${Math.floor(s / 60)} minutes ago`;
  if (s < 7200) return "1 hour ago";
  if (s < 86400) return `${Math.floor(s / 3600)} hours ago`;
  if (s < 172800) return "1 day ago";
  return `${Math.floor(s / 86400)} days ago`;
}

function httpsUrl(name: string): string {
  return `https://${name}.${BOX_HOST}`;
}
function shelleyUrl(name: string): string {
  return `https://${name}.shelley.${BOX_HOST}`;
}

function isExeuntu(vm: VmRecord): boolean {
  return vm.image === "exeuntu" || vm.image.includes("exeuntu");
}

// ---------------------------------------------------------------- ls

async function refreshPending(cc: Cc, vms: VmRecord[]): Promise<void> {
  for (const vm of vms) {
    if (vm.status !== "pending" || vm.port === 0) continue;
    if (await cc.ctx.machines.isUp(vm)) {
      vm.status = "running";
      await cc.ctx.store.transact((s) => {
        const rec = s.vms.find((v) => v.name === vm.name);
        if (rec && rec.status === "pending") rec.status = "running";
      });
    }
  }
}

async function handleLs(cc: Cc): Promise<void> {
  const state = await cc.ctx.store.read();
  const knobs = await cc.ctx.store.knobs();
  let vms = [...state.vms].sort((a, b) => a.createdAt < b.createdAt ? -1 : 1);
  if (cc.args.length > 0) {
    const picked: VmRecord[] = [];
    for (const arg of cc.args) {
      if (hasGlobMeta(arg)) {
        const re = globToRegExp(arg);
        for (const v of vms) {
          if (re.test(v.name) || v.tags.some((t) => re.test(t))) picked.push(v);
        }
      } else {
        const name = normalizeVmName(arg);
        for (const v of vms) {
          if (v.name === name || v.tags.includes(arg)) picked.push(v);
        }
      }
    }
    picked.sort((a, b) => a.name < b.name ? -1 : a.name > b.name ? 1 : 0);
    vms = picked.filter((v, i) => i === 0 || picked[i - 1].name !== v.name);
  }
  await refreshPending(cc, vms);
  if (wantJSON(cc)) {
    const list = vms.map((vm) => {
      // Keys in sorted order, as Go writes a map.
      const o: Record<string, unknown> = {};
      if (vm.comment) o.comment = vm.comment;
      o.created_at = vm.createdAt;
      o.https_url = httpsUrl(vm.name);
      if (!isExeuntu(vm)) o.image = vm.image;
      o.region = state.account.region;
      o.region_display = state.account.regionDisplay;
      if (isExeuntu(vm)) o.shelley_url = shelleyUrl(vm.name);
      o.ssh_dest = sshDestFor(vm.name, knobs.vmPlusDest);
      o.status = vm.status;
      if (vm.tags.length > 0) o.tags = vm.tags;
      o.vm_name = vm.name;
      return o;
    });
    writeJSON(cc, { vms: list });
    return;
  }
  if (vms.length === 0) {
    writeText(cc, "No VMs found. Create one with 'new'.\n");
    return;
  }
  if (cc.flags?.bools.l) {
    for (const vm of vms) {
      const shelley = isExeuntu(vm) ? shelleyUrl(vm.name) : "-";
      const tags = vm.tags.map((t) => ` #${t}`).join("");
      writeText(
        cc,
        `${vm.name}.${BOX_HOST}  ${vm.status}  ${state.account.region}  ${shelley}  ${
          httpsUrl(vm.name)
        }  ${tags}\n`,
      );
    }
    return;
  }
  writeText(cc, "Your VMs:\n");
  for (const vm of vms) {
    let line = `  • ${vm.name}.${BOX_HOST} - ${vm.status}`;
    if (!isExeuntu(vm)) line += ` (${vm.image})`;
    for (const t of vm.tags) line += ` #${t}`;
    if (vm.comment) line += ` # ${vm.comment}`;
    writeText(cc, line + "\n");
  }
}

// ---------------------------------------------------------------- new

const NEW_FLAGS: FlagSpecs = {
  name: { kind: "string", usage: "VM name (auto-generated if not specified)" },
  image: { kind: "string", usage: "container image", default: "exeuntu" },
  command: {
    kind: "string",
    usage: "container command: auto, none, or a custom command",
    default: "auto",
  },
  prompt: {
    kind: "string",
    usage:
      "initial prompt to send to Shelley after VM creation (requires exeuntu image); use /dev/stdin to read from stdin",
  },
  json: { kind: "bool", usage: "output in JSON format" },
  "no-email": { kind: "bool", usage: "do not send email notification" },
  "setup-script": {
    kind: "string",
    usage: "script to run at VM setup (max 10 KiB); use /dev/stdin",
  },
  env: {
    kind: "repeated",
    usage:
      "environment variable in KEY=VALUE format (can be specified multiple times)",
  },
  tag: { kind: "repeated", usage: "tag for the VM (can be repeated, or a,b)" },
  integration: { kind: "repeated", usage: "integration to attach" },
  comment: { kind: "string", usage: "comment for the VM (max 200 bytes)" },
  disk: { kind: "string", usage: "disk size (e.g., 20, 20GB, 50G)" },
  memory: { kind: "string", usage: "[hidden] memory allocation" },
  cpu: { kind: "uint", usage: "[hidden] number of CPUs" },
  "registry-auth": { kind: "string", usage: "registry credentials USER:PASS" },
  "prompt-model": { kind: "string", usage: "[hidden] override the model" },
  "no-shard": { kind: "bool", usage: "[hidden] skip shard allocation" },
  exelet: { kind: "string", usage: "[hidden] create VM on specified exelet" },
};

const TAG_RE = /^[a-z][a-z0-9_-]*$/;

function failsCreate(knobs: Knobs, name: string): boolean {
  return knobs.failCreate === true ||
    (Array.isArray(knobs.failCreate) && knobs.failCreate.includes(name));
}

async function handleNew(cc: Cc): Promise<void> {
  const f = cc.flags!;
  const { session, store, machines } = cc.ctx;
  let prompt = f.strings.prompt;
  if (prompt === "/dev/stdin") {
    const data = await session.readStdin(16 * 1024 + 1);
    if (data.length > 16 * 1024) {
      throw new ClientError("--prompt=/dev/stdin: input exceeds 16 KiB limit");
    }
    prompt = data.trim();
    if (prompt === "") {
      throw new ClientError("--prompt=/dev/stdin: stdin was empty");
    }
  }
  let setupScript = f.strings["setup-script"];
  if (setupScript === "/dev/stdin") {
    setupScript = await session.readStdin(10 * 1024 + 1);
  }
  if (new TextEncoder().encode(setupScript).length > 10 * 1024) {
    throw new ClientError("setup script exceeds 10 KiB limit");
  }
  const env: string[] = [];
  for (const e of f.repeated.env) {
    if (!e.includes("=")) {
      throw new ClientError(
        `invalid environment variable format ${goQuote(e)}: must be KEY=VALUE`,
      );
    }
    if (e.split("=", 1)[0] === "") {
      throw new ClientError(
        `invalid environment variable format ${
          goQuote(e)
        }: key cannot be empty`,
      );
    }
    env.push(e);
  }
  for (const raw of f.repeated.integration) {
    for (const name of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
      throw new ClientError(`integration ${goQuote(name)} not found`);
    }
  }
  const image = f.strings.image.trim();
  if (image === "") {
    throw new ClientError("invalid image: image name cannot be empty");
  }
  if (prompt !== "" && image !== "exeuntu") {
    throw new ClientError("--prompt can only be used with the exeuntu image");
  }
  const comment = f.strings.comment;
  if (new TextEncoder().encode(comment).length > 200) {
    throw new ClientError("comment exceeds 200 bytes");
  }
  const tagSet = new Set<string>();
  for (const raw of f.repeated.tag) {
    for (const t of raw.split(",").map((s) => s.trim()).filter(Boolean)) {
      if (!TAG_RE.test(t)) {
        throw new ClientError(
          `invalid tag name ${goQuote(t)}: must match [a-z][a-z0-9_-]*`,
        );
      }
      tagSet.add(t);
    }
  }
  const tags = [...tagSet].sort();
  const knobs = await store.knobs();

  // Reserve the name: one locked step, so concurrent `new`s never collide.
  const reserved = await store.transact((s) => {
    let name = f.strings.name;
    const taken = (n: string) => s.vms.some((v) => v.name === n);
    if (name === "") {
      for (let i = 0; i < 10; i++) {
        const candidate = randomVmName();
        if (!taken(candidate)) {
          name = candidate;
          break;
        }
      }
    }
    const bad = vmNameError(name);
    if (bad !== null) return { error: bad };
    const heldNow = (s.heldNext ?? 0) > 0;
    if (heldNow) s.heldNext!--;
    if (taken(name) || heldByOthers(knobs, name) || heldNow) {
      return { error: `VM name ${goQuote(name)} is not available` };
    }
    if (s.vms.length >= knobs.maxVms) {
      return {
        error:
          "You have reached the maximum number of VMs allowed on your plan.",
      };
    }
    const index = s.nextVmIndex++;
    const vm: VmRecord = {
      name,
      index,
      address: vmAddress(index),
      port: 0,
      image,
      command: f.strings.command,
      tags,
      comment,
      env,
      status: "pending",
      createdAt: nowRfc3339(),
    };
    s.vms.push(vm);
    return { vm };
  });
  if ("error" in reserved) throw new ClientError(reserved.error as string);
  const vm = reserved.vm as VmRecord;
  const displayImage = image === "exeuntu" ? "boldsoftware/exeuntu" : image;
  writeText(cc, `Creating ${vm.name} using image ${displayImage}...\n`);

  const forget = () =>
    store.transact((s) => {
      s.vms = s.vms.filter((v) =>
        !(v.name === vm.name && v.index === vm.index)
      );
    });

  if (knobs.delayMs > 0) {
    await new Promise((r) => setTimeout(r, knobs.delayMs));
  }
  if (failsCreate(knobs, vm.name)) {
    await forget();
    throw new ClientError(knobs.failMessage);
  }
  if (knobs.failedVms.includes(vm.name)) {
    await store.transact((s) => {
      const rec = s.vms.find((v) => v.name === vm.name);
      if (rec) rec.status = "failed";
    });
  } else {
    let started: StartedVm;
    try {
      started = await machines.start(vm, knobs);
    } catch (e) {
      machines.log(`new ${vm.name}: ${(e as Error).stack ?? e}`);
      await forget();
      throw e;
    }
    const stillThere = await store.transact((s) => {
      const rec = s.vms.find((v) => v.name === vm.name && v.index === vm.index);
      if (!rec) return false;
      rec.port = started.port;
      rec.pid = started.pid;
      rec.pidNs = started.pidNs;
      rec.status = knobs.pendingMs > 0 ? "pending" : "running";
      return true;
    });
    if (!stillThere) {
      // Removed by a concurrent `rm` while it was being created.
      await machines.destroy({ ...vm, ...started });
    }
  }

  const dest = sshDestFor(vm.name, knobs.vmPlusDest);
  // Struct newBoxDetails: fields in declaration order.
  const details: Record<string, unknown> = {
    vm_name: vm.name,
    tags,
    ssh_command: `ssh ${dest}`,
    ssh_dest: dest,
    ssh_port: 22,
    https_url: httpsUrl(vm.name),
    proxy_port: 80,
  };
  if (image === "exeuntu" && f.strings.command === "auto") {
    details.shelley_url = shelleyUrl(vm.name);
  }
  details.vscode_url =
    `vscode://vscode-remote/ssh-remote+${dest}/home/exedev?windowId=_blank`;
  details.xterm_url = `https://${vm.name}.xterm.${BOX_HOST}`;
  if (wantJSON(cc)) {
    writeJSON(cc, details);
    return;
  }
  writeText(cc, "\n");
  if (details.shelley_url) {
    writeText(cc, `Coding agent\n${details.shelley_url}\n\n`);
  }
  writeText(cc, `App (HTTPS proxy → :80)\n${details.https_url}\n\n`);
  writeText(cc, `SSH\n${details.ssh_command}\n\n`);
}

// ---------------------------------------------------------------- rm

async function handleRm(cc: Cc): Promise<void> {
  if (cc.args.length < 1) {
    throw new ClientError("please specify at least one VM name to delete");
  }
  const deleted: string[] = [];
  const failed: string[] = [];
  const seen = new Set<string>();
  for (const arg of cc.args) {
    const name = normalizeVmName(arg);
    if (seen.has(name)) continue;
    seen.add(name);
    const vm = await cc.ctx.store.transact((s) => {
      const rec = s.vms.find((v) => v.name === name);
      if (rec) s.vms = s.vms.filter((v) => v !== rec);
      return rec;
    });
    if (!vm) {
      failed.push(name);
      writeError(cc, `VM ${goQuote(name)} not found`);
      continue;
    }
    writeText(cc, `Deleting ${name}...\n`);
    try {
      await cc.ctx.machines.destroy(vm);
      deleted.push(name);
    } catch (e) {
      failed.push(name);
      writeError(
        cc,
        `failed to delete ${goQuote(name)}: ${(e as Error).message}`,
      );
    }
  }
  if (wantJSON(cc)) {
    writeJSON(cc, { deleted, failed });
    return;
  }
  if (deleted.length > 0) {
    writeText(cc, `${deleted.length} VM(s) deleted successfully\n`);
  }
}

// ---------------------------------------------------------------- restart

async function handleRestart(cc: Cc): Promise<void> {
  if (cc.args.length !== 1) {
    throw new ClientError(
      `please specify exactly one VM name to restart, got ${cc.args.length}`,
    );
  }
  const name = normalizeVmName(cc.args[0]);
  const state = await cc.ctx.store.read();
  const vm = state.vms.find((v) => v.name === name);
  if (!vm) throw new ClientError(`VM ${goQuote(name)} not found`);
  writeText(cc, `Restarting ${name}...\n`);
  await cc.ctx.machines.halt(vm);
  const knobs = { ...(await cc.ctx.store.knobs()), pendingMs: 0 };
  const started = await cc.ctx.machines.start(vm, knobs);
  await cc.ctx.store.transact((s) => {
    const rec = s.vms.find((v) => v.name === name);
    if (rec) {
      rec.port = started.port;
      rec.pid = started.pid;
      rec.pidNs = started.pidNs;
      rec.status = "running";
    }
  });
  if (wantJSON(cc)) {
    writeJSON(cc, { status: "restarted", vm_name: name });
    return;
  }
  writeText(cc, `VM ${goQuote(name)} restarted successfully\n`);
}

// ---------------------------------------------------------------- whoami

function sortedKeys(keys: KeyRecord[], current: string | null): KeyRecord[] {
  return [...keys].sort((a, b) => {
    const ac = a.publicKey === current, bc = b.publicKey === current;
    if (ac !== bc) return ac ? -1 : 1;
    return a.id - b.id;
  });
}

async function handleWhoami(cc: Cc): Promise<void> {
  const state = await cc.ctx.store.read();
  const current = cc.ctx.session.publicKey;
  const keys = sortedKeys(state.keys, current);
  if (wantJSON(cc)) {
    writeJSON(cc, {
      email: state.account.email,
      region: state.account.region,
      region_display: state.account.regionDisplay,
      ssh_keys: keys.map((k) => {
        const row: Record<string, unknown> = {
          public_key: k.publicKey,
          fingerprint: k.fingerprint,
        };
        if (k.name) row.name = k.name;
        row.current = k.publicKey === current;
        return row;
      }),
    });
    return;
  }
  writeText(cc, `Email Address: ${state.account.email}\n`);
  writeText(cc, "SSH Keys:\n");
  for (const k of keys) {
    let line = `  Public Key: ${k.publicKey}`;
    if (k.name) line += ` (${k.name})`;
    if (k.publicKey === current) line += " ← current";
    writeText(cc, line + "\n");
  }
}

// ---------------------------------------------------------------- ssh-key

async function handleKeyList(cc: Cc): Promise<void> {
  const state = await cc.ctx.store.read();
  const current = cc.ctx.session.publicKey;
  const keys = [...state.keys].sort((a, b) => a.id - b.id);
  if (wantJSON(cc)) {
    writeJSON(cc, {
      ssh_keys: keys.map((k) => ({
        public_key: k.publicKey,
        fingerprint: k.fingerprint,
        name: k.name,
        added_at: k.addedAt,
        current: k.publicKey === current,
      })),
    });
    return;
  }
  if (keys.length === 0) {
    writeText(
      cc,
      [
        "No SSH keys found.",
        "",
        "To add a key, generate one locally:",
        '  ssh-keygen -t ed25519 -C "mnemonic-for-this-key" -f ~/.ssh/id_exe',
        "",
        "Then add the public key from your local shell:",
        "  cat ~/.ssh/id_exe.pub | ssh exe.dev ssh-key add",
        "",
      ].join("\n"),
    );
    return;
  }
  writeText(cc, "SSH Keys:\n");
  for (const k of keys) {
    let line = `  ${k.publicKey}`;
    if (k.name) line += ` (${k.name})`;
    if (k.publicKey === current) line += " ← current";
    writeText(cc, line + "\n");
    writeText(cc, `    added ${humanizeSince(k.addedAt)}\n`);
  }
}

const KEY_ADD_FLAGS: FlagSpecs = {
  json: { kind: "bool", usage: "output in JSON format" },
  cmds: { kind: "string", usage: "[hidden] restrict to commands" },
  vm: { kind: "string", usage: "[hidden] restrict to a VM" },
  tag: { kind: "string", usage: "[hidden] restrict to a tag" },
  exp: { kind: "string", usage: "[hidden] expiry" },
};

/** Adds a key to the account (the lobby's `ssh-key add` and the test API). */
export async function addKey(
  store: Store,
  text: string,
): Promise<{ added: KeyRecord } | { error: string }> {
  let parsed;
  try {
    parsed = parseAuthorizedKey(text);
  } catch (e) {
    return { error: `invalid SSH public key: ${(e as Error).message}` };
  }
  const fp = await fingerprint(parsed);
  return await store.transact((s) => {
    const number = s.nextKeyNumber++;
    if (s.keys.some((k) => k.publicKey === parsed.canonical)) {
      return { error: "this SSH key is already associated with your account" };
    }
    const rec: KeyRecord = {
      id: s.nextKeyId++,
      publicKey: parsed.canonical,
      fingerprint: fp,
      name: sanitizeComment(parsed.comment) || `key-${number}`,
      addedAt: new Date().toISOString(),
    };
    s.keys.push(rec);
    return { added: rec };
  });
}

async function handleKeyAdd(cc: Cc): Promise<void> {
  const f = cc.flags!;
  if (f.strings.cmds || f.strings.vm || f.strings.tag || f.strings.exp) {
    throw new ClientError(
      "--cmds, --vm, --tag, and --exp flags require root support privileges or scoped SSH key feature access",
    );
  }
  const arg = cc.args.join(" ").trim();
  // In exec mode the server always reads stdin to EOF, even with an argument.
  const stdin = (await cc.ctx.session.readStdin(16 * 1024)).trim();
  let publicKey: string;
  if (arg !== "" && stdin !== "") {
    throw new ClientError(
      "please provide the SSH public key either as an argument or via stdin, not both",
    );
  } else if (arg !== "") publicKey = arg;
  else if (stdin !== "") publicKey = stdin;
  else throw new ClientError("please provide the SSH public key to add");
  if (publicKey.includes("PRIVATE KEY")) {
    throw new ClientError(
      "this is a private key, please use the public key instead (typically found in a .pub file)",
    );
  }
  const res = await addKey(cc.ctx.store, publicKey);
  if ("error" in res) throw new ClientError(res.error);
  if (wantJSON(cc)) {
    const out: Record<string, unknown> = {};
    if (res.added.name) out.name = res.added.name;
    out.public_key = res.added.publicKey;
    out.status = "added";
    writeJSON(cc, out);
    return;
  }
  writeText(cc, "Added SSH key.\n");
}

async function resolveKey(
  state: State,
  identifier: string,
): Promise<KeyRecord[]> {
  const id = identifier.trim();
  if (id === "") return [];
  try {
    const parsed = parseAuthorizedKey(id);
    const fp = await fingerprint(parsed);
    return state.keys.filter((k) => k.fingerprint === fp);
  } catch { /* not a key */ }
  const fp = id.replace(/^SHA256:/, "").replace(/^sha256:/, "");
  if (fp.length === 43 && !fp.includes(" ")) {
    const m = state.keys.filter((k) => k.fingerprint === `SHA256:${fp}`);
    if (m.length > 0) return m;
  }
  return state.keys.filter((k) => k.name === id);
}

function ambiguous(keys: KeyRecord[]): string {
  const lines = ["multiple keys match, please specify by fingerprint:"];
  for (const k of keys) {
    lines.push(`  ${k.fingerprint}${k.name ? ` (${k.name})` : ""}`);
  }
  return lines.join("\n");
}

async function handleKeyRemove(cc: Cc): Promise<void> {
  const identifier = cc.args.join(" ").trim();
  if (identifier === "") {
    throw new ClientError(
      "please specify a key to remove (name, fingerprint, or full public key)",
    );
  }
  const matches = await resolveKey(await cc.ctx.store.read(), identifier);
  if (matches.length === 0) {
    throw new ClientError(
      `no matching SSH key found for ${goQuote(identifier)}`,
    );
  }
  if (matches.length > 1) throw new ClientError(ambiguous(matches));
  const key = matches[0];
  await cc.ctx.store.transact((s) => {
    s.keys = s.keys.filter((k) => k.id !== key.id);
  });
  if (wantJSON(cc)) {
    const out: Record<string, unknown> = { fingerprint: key.fingerprint };
    if (key.name) out.name = key.name;
    out.public_key = key.publicKey;
    out.status = "deleted";
    writeJSON(cc, out);
    return;
  }
  writeText(cc, "Deleted SSH key.\n");
}

async function handleKeyRename(cc: Cc): Promise<void> {
  if (cc.args.length !== 2) {
    throw new ClientError("usage: ssh-key rename <old-name> <new-name>");
  }
  const oldName = cc.args[0].trim();
  let newName = cc.args[1].trim();
  if (oldName === "") throw new ClientError("old name cannot be empty");
  if (newName === "") throw new ClientError("new name cannot be empty");
  const state = await cc.ctx.store.read();
  const matches = oldName.startsWith("SHA256:")
    ? state.keys.filter((k) => k.fingerprint === oldName)
    : state.keys.filter((k) => k.name === oldName);
  if (matches.length === 0) {
    throw new ClientError(`no matching SSH key found for ${goQuote(oldName)}`);
  }
  if (matches.length > 1) throw new ClientError(ambiguous(matches));
  const key = matches[0];
  newName = sanitizeComment(newName);
  if (newName === "") {
    throw new ClientError(
      "new name is empty (special characters like ; | $ are removed)",
    );
  }
  if (state.keys.some((k) => k.name === newName && k.id !== key.id)) {
    throw new ClientError(`a key named ${goQuote(newName)} already exists`);
  }
  await cc.ctx.store.transact((s) => {
    const rec = s.keys.find((k) => k.id === key.id);
    if (rec) rec.name = newName;
  });
  if (wantJSON(cc)) {
    writeJSON(cc, {
      fingerprint: key.fingerprint,
      new_name: newName,
      old_name: key.name,
      public_key: key.publicKey,
      status: "renamed",
    });
    return;
  }
  writeText(
    cc,
    `Renamed key from ${goQuote(key.name)} to ${goQuote(newName)}.\n`,
  );
}

// ---------------------------------------------------------------- help

function commandHelp(cc: Cc, cmd: Command): void {
  const w = (s: string) => cc.ctx.session.write(s);
  w(`\nCommand: ${cmd.name}\n`);
  w(`\n${cmd.description}\n`);
  if (cmd.usage) w(`\nUsage: ${cmd.usage}\n`);
  const flags = Object.entries(cmd.flags ?? {}).filter(([, s]) =>
    s.usage !== "" && !s.usage.startsWith("[hidden] ")
  ).sort(([a], [b]) => a < b ? -1 : 1);
  if (flags.length > 0) {
    w("\nOptions:\n");
    const width = Math.max(...flags.map(([n]) => n.length)) + 2;
    for (const [n, s] of flags) {
      w(`  ${`--${n}`.padEnd(width + 1)}${s.usage}\n`);
    }
  }
  if (cmd.examples?.length) {
    w("\nExamples:\n");
    for (const e of cmd.examples) w(`  ${e}\n`);
  }
  const subs = (cmd.subcommands ?? []).filter((s) => !s.hidden);
  if (subs.length > 0) {
    w("\nSubcommands:\n");
    for (const s of subs) w(`  ${s.name}  - ${s.description}\n`);
  }
}

function helpJSON(cmd: Command, prefix = ""): Record<string, unknown> {
  const o: Record<string, unknown> = {
    command: prefix + cmd.name,
    description: cmd.description,
  };
  if (cmd.usage) o.usage = cmd.usage;
  o.flags = Object.entries(cmd.flags ?? {}).filter(([, s]) =>
    !s.usage.startsWith("[hidden] ")
  ).map(([name, s]) => ({ name, description: s.usage }));
  if (cmd.examples?.length) o.examples = cmd.examples;
  const subs = (cmd.subcommands ?? []).filter((s) => !s.hidden);
  if (subs.length > 0) {
    o.subcommands = subs.map((s) => helpJSON(s, `${prefix}${cmd.name} `));
  }
  return o;
}

function handleHelp(cc: Cc): Promise<void> {
  helpText(cc);
  return Promise.resolve();
}

function helpText(cc: Cc): void {
  let json = false;
  const path: string[] = [];
  for (const a of cc.args) {
    if (a === "--json" || a === "-json") json = true;
    else if (!a.startsWith("-")) path.push(a);
  }
  if (path.length > 0) {
    const cmd = findCommand(path);
    if (cmd === null) {
      const msg = `no help available for unrecognized command: ${
        path.join(" ")
      }`;
      if (json) {
        writeJSON(cc, { error: msg });
        throw new SilentFailure();
      }
      cc.ctx.session.write(
        `No help available for unrecognized command: ${path.join(" ")}\n`,
      );
      return;
    }
    if (json) writeJSON(cc, helpJSON(cmd));
    else commandHelp(cc, cmd);
    return;
  }
  const visible = COMMANDS.filter((c) => !c.hidden);
  if (json) {
    writeJSON(cc, { commands: visible.map((c) => helpJSON(c)) });
    return;
  }
  const w = (s: string) => cc.ctx.session.write(s);
  w("\nEXE.DEV commands:\n\n");
  const width = Math.max(...visible.map((c) => c.name.length));
  for (const c of visible) {
    w(`  ${c.name.padEnd(width)}  - ${c.description}\n`);
    for (const s of (c.subcommands ?? []).filter((s) => !s.hidden)) {
      w(`    ${c.name} ${s.name}    ${s.description}\n`);
    }
  }
  w("\nRun help <command> for more details\n\n");
}

/** Already printed its error; exit 1. */
class SilentFailure extends Error {}

// ---------------------------------------------------------------- tree

const COMMANDS: Command[] = [
  {
    name: "help",
    description: "Show help information",
    rawArgs: true,
    flags: JSON_FLAG,
    handler: handleHelp,
  },
  {
    name: "ls",
    description: "List your VMs",
    usage: "ls [-l] [-a] [name|pattern|tag ...]",
    flags: {
      ...JSON_FLAG,
      l: { kind: "bool", usage: "show detailed information" },
      a: { kind: "bool", usage: "include team VMs" },
    },
    positional: true,
    handler: handleLs,
  },
  {
    name: "new",
    description: "Create a new VM",
    flags: NEW_FLAGS,
    examples: [
      "new                                     # just give me a computer",
      "new --name=b --image=ubuntu:22.04       # custom image and name",
      "new --env FOO=bar --env BAZ=qux         # with environment variables",
    ],
    handler: handleNew,
  },
  {
    name: "rm",
    description: "Delete a VM",
    usage: "rm <vmname>...",
    flags: JSON_FLAG,
    positional: true,
    handler: handleRm,
  },
  {
    name: "restart",
    description: "Restart a VM",
    usage: "restart <vmname>",
    flags: JSON_FLAG,
    positional: true,
    handler: handleRestart,
  },
  {
    name: "whoami",
    description: "Show your user information including email and all SSH keys.",
    usage: "whoami",
    flags: JSON_FLAG,
    handler: handleWhoami,
  },
  {
    name: "ssh-key",
    description: "Manage SSH keys for your account",
    usage: "ssh-key <subcommand> [args...]",
    flags: JSON_FLAG,
    handler: (cc) => {
      commandHelp(cc, COMMANDS.find((c) => c.name === "ssh-key")!);
      return Promise.resolve();
    },
    subcommands: [
      {
        name: "list",
        description: "List all SSH keys associated with your account",
        usage: "ssh-key list",
        flags: JSON_FLAG,
        handler: handleKeyList,
      },
      {
        name: "add",
        description: "Add a new SSH key to your account",
        usage: "ssh-key add <public-key>",
        flags: KEY_ADD_FLAGS,
        positional: true,
        examples: [
          "ssh-key add 'ssh-ed25519 AAAA... my-laptop'",
          "cat ~/.ssh/id_exe.pub | ssh exe.dev ssh-key add",
        ],
        handler: handleKeyAdd,
      },
      {
        name: "remove",
        description: "Remove an SSH key from your account",
        usage: "ssh-key remove <name|fingerprint|public-key>",
        flags: JSON_FLAG,
        positional: true,
        handler: handleKeyRemove,
      },
      {
        name: "rename",
        description: "Rename an SSH key",
        usage: "ssh-key rename <old-name> <new-name>",
        flags: JSON_FLAG,
        positional: true,
        handler: handleKeyRename,
      },
    ],
  },
  {
    name: "delete-ssh-key",
    hidden: true,
    description: "Delete an SSH key (deprecated: use 'ssh-key remove' instead)",
    usage: "delete-ssh-key <public-key>",
    flags: JSON_FLAG,
    positional: true,
    handler: handleKeyRemove,
  },
  {
    name: "true",
    hidden: true,
    description: "Do nothing, successfully",
    handler: () => Promise.resolve(),
  },
];

function findCommand(path: string[]): Command | null {
  let list = COMMANDS;
  let found: Command | null = null;
  for (const word of path) {
    const w = word.toLowerCase();
    const next = list.find((c) => c.name === w);
    if (!next) return null;
    found = next;
    list = next.subcommands ?? [];
  }
  return found;
}

/**
 * Runs one lobby command line (the SSH exec payload). Returns the exit code;
 * output went to `ctx.session.write`.
 */
export async function runLobby(
  raw: string,
  ctx: LobbyContext,
): Promise<number> {
  let parts: string[];
  try {
    parts = shlexSplit(raw);
  } catch (e) {
    ctx.session.write(`Error parsing command: ${(e as Error).message}\n`);
    return 1;
  }
  if (parts.length === 0) {
    ctx.session.write(
      "exe.dev emulator: the interactive shell is not emulated; pass a command (try: ssh exe.dev help)\n",
    );
    return 1;
  }
  const cc: Cc = { ctx, flags: null, args: [], path: [] };
  const name = parts.join(" ");
  try {
    let cmd: Command | null = null;
    let rest: string[] = [];
    if (parts[0].toLowerCase() === "help") {
      cmd = findCommand(["help"]);
      rest = parts.slice(1);
      cc.path = ["help"];
    } else {
      for (let i = parts.length; i > 0; i--) {
        const c = findCommand(parts.slice(0, i));
        if (c) {
          cmd = c;
          rest = parts.slice(i);
          cc.path = parts.slice(0, i).map((p) => p.toLowerCase());
          break;
        }
      }
    }
    if (cmd === null) {
      throw new ClientError(
        `exe.dev repl: command not found: ${goQuote(parts.join(" "))}`,
      );
    }
    if (cmd.rawArgs) {
      cc.args = rest;
      await cmd.handler(cc);
      return 0;
    }
    let flags: ParsedFlags;
    try {
      flags = parseGoFlags(cmd.flags ?? {}, reorderArgs(rest));
    } catch (e) {
      if (e instanceof HelpRequested) {
        commandHelp(cc, cmd);
        return 0;
      }
      throw new ClientError(`flag parsing error: ${(e as Error).message}`);
    }
    if (cmd.flags) cc.flags = flags;
    cc.args = flags.args;
    if (cc.args.length > 0 && !cmd.positional) {
      if (cmd.subcommands?.length) {
        const p0 = cc.path[0];
        throw new ClientError(
          `${goQuote(p0)} subcommand ${goQuote(cc.args[0])} not found, valid ${
            goQuote(p0)
          } subcommands are: ${
            cmd.subcommands.filter((s) => !s.hidden).map((s) => s.name).join(
              ", ",
            )
          }`,
        );
      }
      throw new ClientError(
        `${
          goQuote(cmd.name)
        } command has no subcommands and does not take positional arguments`,
      );
    }
    await cmd.handler(cc);
    return 0;
  } catch (e) {
    if (e instanceof SilentFailure) return 1;
    if (e instanceof ClientError) {
      writeError(cc, e.message);
      return 1;
    }
    ctx.machines.log(`${name}: ${(e as Error).stack ?? e}`);
    writeError(cc, `${goQuote(name)}: internal error, trace ID: ${traceId()}`);
    return 1;
  }
}
