/**
 * A bare root for tests: a directory that, seen from inside a mount
 * namespace, holds only the OS, as a fresh cloud VM does: the host's /usr
 * (read-only), a copy of /etc, /dev, /proc, /sys, and its own /tmp,
 * /var, /run, /root and /home. The host's development tools are not there:
 * /usr/local (this machine's deno), node and the npm global tree are
 * covered, and the checkout, DENO_DIR, the npm cache and the host's /tmp,
 * /root and /home are simply outside it. A program that runs there needs
 * nothing but what it carries: the standalone artifact does, the dev
 * artifact (a script calling this machine's deno on this checkout) does
 * not.
 *
 * `bareRootScript` gives sh lines that build one; run them as root inside
 * a private mount namespace (`unshare --mount --propagation private`), then
 * chroot into it (`chroot`, `unshare --root`, or sshd's ChrootDirectory).
 * The directory itself stays on disk between runs (its /etc, /var, /tmp
 * and /root persist, as a VM's disk does); the mounts vanish with the
 * namespace.
 */
import { namespaceProblem, skipCheck } from "./prereq.ts";

/** Host paths under /usr that hold development tools, not the OS. */
export const HIDDEN_UNDER_USR = [
  "/usr/local",
  "/usr/lib/node_modules",
  "/usr/include/node",
  "/usr/share/nodejs",
  "/usr/bin/node",
  "/usr/bin/nodejs",
  "/usr/bin/npm",
  "/usr/bin/npx",
  "/usr/bin/deno",
];

export interface BareRootOptions {
  /** Directories bind-mounted into the root: [host path, path inside]. */
  binds?: [string, string][];
  /** Lines appended to the root's /etc/passwd when it is first made. */
  passwdExtra?: string;
}

const shq = (s: string) => `'${s.replaceAll("'", `'\\''`)}'`;

/** sh lines that make `root` a bare OS root (see the module comment). */
export function bareRootScript(
  root: string,
  opts: BareRootOptions = {},
): string {
  const R = shq(root);
  const lines = [
    `R=${R}`,
    'mkdir -p "$R"',
    'chmod 755 "$R"',
    'for d in usr dev proc sys run tmp var/tmp var/lib root home; do mkdir -p "$R/$d"; done',
    'chmod 1777 "$R/tmp" "$R/var/tmp"',
    'chmod 700 "$R/root"',
    // /etc is the VM's own (useradd, hostname files); made once.
    'if [ ! -d "$R/etc" ]; then cp -a /etc "$R/etc.tmp" && mv "$R/etc.tmp" "$R/etc"' +
    (opts.passwdExtra
      ? `; printf '%s\\n' ${shq(opts.passwdExtra)} >> "$R/etc/passwd"`
      : "") +
    "; fi",
    // Merged /usr: /bin, /lib, ... are links into it; else bind them.
    'for l in bin sbin lib lib32 lib64 libx32; do if [ -L "/$l" ]; then ln -sfn "$(readlink "/$l")" "$R/$l"; elif [ -d "/$l" ]; then mkdir -p "$R/$l" && mount --bind "/$l" "$R/$l" && mount -o remount,bind,ro "$R/$l"; fi; done',
    'mount --bind /usr "$R/usr"',
    'mount -o remount,bind,ro "$R/usr"',
    // Each one covered where it really is (a link's target), once.
    `for p in ${
      HIDDEN_UNDER_USR.map(shq).join(" ")
    }; do t=$(readlink -f "$p") || continue; case "$t" in /usr/*) ;; *) continue ;; esac; [ -e "$R$t" ] || continue; if [ -d "$t" ]; then mount -t tmpfs -o ro,mode=755,size=4k ohc-hidden "$R$t"; else mount --bind /dev/null "$R$t"; fi; done`,
    'mount --rbind /dev "$R/dev"',
    'mount -t proc proc "$R/proc"',
    'mount --rbind /sys "$R/sys"',
    'mount -t tmpfs -o mode=755 ohc-run "$R/run"',
  ];
  for (const [src, dst] of opts.binds ?? []) {
    lines.push(
      `mkdir -p "$R"${shq(dst)}`,
      `mount --bind ${shq(src)} "$R"${shq(dst)}`,
    );
  }
  return lines.join("\n") + "\n";
}

/** Why a bare root cannot be made here, or null. Ignores CI. */
function missingPrerequisite(): string | null {
  if (Deno.build.os !== "linux") return `needs Linux, this is ${Deno.build.os}`;
  if (Deno.uid() !== 0) return "a bare root needs root (mount, chroot)";
  return namespaceProblem(["--mount", "--pid"]);
}

/**
 * null when tests can make bare roots (root, namespaces), else why not;
 * under CI=true always null (mandatory there). One NOTICE line when not.
 */
export const bareRootSkipReason: () => string | null = skipCheck(
  "bare-root tests",
  "_OHC_TEST_BARE_ROOT_NOTICE_SHOWN",
  missingPrerequisite,
);

/**
 * Runs `script` (sh) as root chrooted in a bare root at `root`, in its own
 * mount and pid namespaces: whatever it starts dies with it. `env` is all
 * the environment it gets.
 */
export async function runInBareRoot(
  root: string,
  script: string,
  env: Record<string, string>,
  opts: BareRootOptions = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const setup = "set -e\n" + bareRootScript(root, opts) +
    'exec /usr/sbin/chroot "$R" /bin/sh -c "$1"\n';
  const out = await new Deno.Command("/usr/bin/unshare", {
    args: [
      "--mount",
      "--pid",
      "--fork",
      "--kill-child",
      "--propagation",
      "private",
      "/bin/sh",
      "-c",
      setup,
      "bare-root",
      script,
    ],
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}
