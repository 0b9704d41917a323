/**
 * `ohcommodore completion`: each shell's script, loaded in that shell and
 * asked what it completes, as a person's TAB would. Ship names come from
 * the last `fleet status`. bash is always here; zsh and fish are checked
 * where installed (CI installs them).
 */
import assert from "node:assert/strict";
import { localFleet, ohc, ohcOk } from "../helpers/cli.ts";
import { skipCheck } from "../helpers/prereq.ts";

const has = (shell: string) => {
  try {
    return new Deno.Command(shell, { args: ["-c", "true"] }).outputSync()
      .success;
  } catch {
    return false;
  }
};
const zshFishSkip = skipCheck(
  "zsh and fish completion tests",
  "OHC_NOTICE_SHELLS",
  () => has("zsh") && has("fish") ? null : "zsh or fish is not installed",
);

async function shell(
  sh: string,
  home: string,
  script: string,
): Promise<string> {
  const r = await new Deno.Command(sh, {
    args: ["-c", script],
    env: { HOME: home, PATH: Deno.env.get("PATH") ?? "/usr/bin:/bin" },
    clearEnv: true,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(r.stdout);
  assert.ok(r.success, new TextDecoder().decode(r.stderr));
  return text;
}

/** What bash completes for the words of `line` (the last one being typed). */
const bashComplete = (home: string, file: string, line: string[]) =>
  shell(
    "bash",
    home,
    `source ${file}; COMP_WORDS=(${
      line.map((w) => `'${w}'`).join(" ")
    }); COMP_CWORD=${line.length - 1}; _ohcommodore_complete; ` +
      `printf '%s\\n' "\${COMPREPLY[@]}"`,
  ).then((t) => t.trim().split("\n").filter(Boolean).sort());

Deno.test("completion bash: commands, flags, and the ship names the last fleet status saw", async () => {
  await using fleet = await localFleet("alpha", "bravo");
  const home = fleet.home;
  const file = `${home}/ohc.bash`;
  const script = await ohcOk(home, ["completion", "bash"]);
  await Deno.writeTextFile(file, script.stdout);
  // Before any status, no names are offered (and nothing fails).
  assert.deepEqual(
    await bashComplete(home, file, ["ohcommodore", "ship", "exec", ""]),
    ["--help"],
  );
  await ohcOk(home, ["fleet", "status"]);
  assert.deepEqual(
    await bashComplete(home, file, ["ohcommodore", "ship", "exec", ""]),
    ["--help", "alpha", "bravo"],
  );
  assert.deepEqual(
    await bashComplete(home, file, ["ohcommodore", "ship", "destroy", "b"]),
    ["bravo"],
  );
  assert.deepEqual(
    await bashComplete(home, file, ["ohcommodore", "voyage", "l"]),
    ["list", "logs"],
  );
  assert.deepEqual(
    await bashComplete(home, file, ["ohcommodore", "fleet", "sink", "--s"]),
    ["--scuttle"],
  );
  // Flags in between do not lose the command.
  assert.deepEqual(
    await bashComplete(home, file, ["ohcommodore", "inbox", "list", "--j"]),
    ["--json"],
  );
});

Deno.test("completion: an unknown shell is exit 2 with one line", async () => {
  const home = await Deno.makeTempDir();
  const r = await ohc(home, ["completion", "tcsh"]);
  assert.equal(r.code, 2);
  assert.equal(r.stdout, "");
  assert.equal(
    r.stderr,
    'error: unknown shell "tcsh": one of bash, zsh, fish\n',
  );
  const help = await ohcOk(home, ["completion", "--help"]);
  assert.match(help.stdout, /completion fish \| source/);
  await Deno.remove(home, { recursive: true });
});

Deno.test({
  name:
    "completion zsh and fish: the scripts load and complete in those shells",
  ignore: zshFishSkip() !== null,
  async fn() {
    const home = await Deno.makeTempDir();
    await Deno.mkdir(`${home}/.ohcommodore/cache`, { recursive: true });
    await Deno.writeTextFile(`${home}/.ohcommodore/cache/voyages`, "vab12c\n");
    for (const sh of ["zsh", "fish"]) {
      await Deno.writeTextFile(
        `${home}/ohc.${sh}`,
        (await ohcOk(home, ["completion", sh])).stdout,
      );
    }
    const fish = (line: string) =>
      shell(
        "fish",
        home,
        `source ${home}/ohc.fish; complete -C '${line}'`,
      ).then((t) => t.trim().split("\n").map((l) => l.split("\t")[0]).sort());
    assert.deepEqual(await fish("ohcommodore voyage logs "), ["vab12c"]);
    assert.deepEqual(await fish("ohcommodore daemon p"), ["pause"]);
    assert.deepEqual(await fish("ohcommodore fleet sink --sc"), ["--scuttle"]);
    // zsh runs the bash function through bashcompinit, which emulates sh
    // around it (arrays from 0; $path is zsh's PATH, so the script must not
    // use that name).
    const zsh = await shell(
      "zsh",
      home,
      `source ${home}/ohc.zsh; f() { emulate -L sh; ` +
        `COMP_WORDS=(ohcommodore voyage logs ''); COMP_CWORD=3; ` +
        `_ohcommodore_complete; printf '%s\\n' "\${COMPREPLY[@]}"; }; f`,
    );
    assert.ok(zsh.split("\n").includes("vab12c"), zsh);
    await Deno.remove(home, { recursive: true });
  },
});
