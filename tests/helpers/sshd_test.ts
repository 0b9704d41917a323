import assert from "node:assert/strict";
import {
  makeClientKey,
  sshdSkipReason,
  startSshd,
  writeKnownHosts,
} from "./sshd.ts";

const ignore = sshdSkipReason() !== null;

async function ssh(
  args: string[],
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command("ssh", {
    args,
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

Deno.test({
  name: "sshd harness: a real sshd accepts our key, runs a command, stops",
  ignore,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "ohc-sshd-" });
    try {
      const key = await makeClientKey(dir);
      const sshd = await startSshd({ dir, authorizedKeys: [key.publicKey] });
      const knownHosts = `${dir}/known_hosts`;
      await writeKnownHosts(knownHosts, [sshd]);
      const base = [
        "-F",
        "none",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
        `UserKnownHostsFile=${knownHosts}`,
        "-o",
        "IdentitiesOnly=yes",
        "-i",
        key.privatePath,
        "-p",
        String(sshd.port),
      ];
      try {
        assert.match(sshd.hostKeyPub, /^ssh-ed25519 /);
        const res = await ssh([...base, `root@${sshd.host}`, "echo hi"]);
        assert.equal(res.code, 0, res.stderr);
        assert.equal(res.stdout, "hi\n");
        assert.equal(sshd.acceptedLogins(), 1);

        // A key that is not authorized is refused.
        const other = await makeClientKey(dir, "other");
        const denied = await ssh([
          ...base.slice(0, -4),
          "-i",
          other.privatePath,
          "-p",
          String(sshd.port),
          `root@${sshd.host}`,
          "true",
        ]);
        assert.equal(denied.code, 255);
        assert.match(denied.stderr, /Permission denied/);
      } finally {
        await sshd.stop();
      }
      // Stopped means the port is closed.
      await assert.rejects(
        Deno.connect({ hostname: sshd.host, port: sshd.port }),
      );

      // Restarting in the same dir keeps the host key.
      const again = await startSshd({
        dir,
        authorizedKeys: [key.publicKey],
        forceCommand: 'echo "forced:$SSH_ORIGINAL_COMMAND"',
      });
      try {
        assert.equal(again.hostKeyPub, sshd.hostKeyPub);
        await writeKnownHosts(knownHosts, [again]);
        const res = await ssh([
          ...base.slice(0, -1),
          String(again.port),
          `root@${again.host}`,
          "ls -l",
        ]);
        assert.equal(res.code, 0, res.stderr);
        assert.equal(res.stdout, "forced:ls -l\n");
      } finally {
        await again.kill();
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
