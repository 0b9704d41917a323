import assert from "node:assert/strict";
import {
  applyLoadedEnv,
  EnvFileError,
  envFilePaths,
  loadEnv,
  loadEnvSync,
  parseEnvEntries,
  parseEnvFile,
} from "../lib/env_file.ts";
import { OhcError, UsageError } from "../lib/errors.ts";

Deno.test("parseEnvFile: plain, export, comments and blank lines", () => {
  const text = [
    "# a comment",
    "",
    "   ",
    "A=1",
    "export B=two words  ",
    "  export   C = spaced ",
    "D=",
    "E=a#not-a-comment",
    "F=value # a comment",
    "G= # only a comment",
    "  # indented comment",
    "export=still-a-key",
    "_under_9=x",
  ].join("\n");
  assert.deepEqual(parseEnvFile(text), {
    A: "1",
    B: "two words",
    C: "spaced",
    D: "",
    E: "a#not-a-comment",
    F: "value",
    G: "",
    export: "still-a-key",
    _under_9: "x",
  });
});

Deno.test("parseEnvFile: single quotes are literal", () => {
  assert.deepEqual(
    parseEnvFile(`A='a b # c $HOME \\n "x"'\nB=''\nC='x' # trailing comment`),
    { A: 'a b # c $HOME \\n "x"', B: "", C: "x" },
  );
});

Deno.test("parseEnvFile: double quotes take escapes", () => {
  const parsed = parseEnvFile(
    [
      String.raw`A="line1\nline2\ttab\r"`,
      String.raw`B="say \"hi\" \\ \$HOME \`x\`"`,
      String.raw`C="keep \q unknown"`,
      `D="has # hash" # comment`,
      `E=""`,
    ].join("\n"),
  );
  assert.deepEqual(parsed, {
    A: "line1\nline2\ttab\r",
    B: 'say "hi" \\ $HOME `x`',
    C: "keep \\q unknown",
    D: "has # hash",
    E: "",
  });
});

Deno.test("parseEnvFile: quoted values may span lines", () => {
  const text = [
    'KEY="-----BEGIN',
    "middle",
    '-----END"',
    "S='one",
    "two'",
    "AFTER=1",
  ].join("\n");
  const entries = parseEnvEntries(text);
  assert.deepEqual(entries, [
    { key: "KEY", value: "-----BEGIN\nmiddle\n-----END", line: 1 },
    { key: "S", value: "one\ntwo", line: 4 },
    { key: "AFTER", value: "1", line: 6 },
  ]);
});

Deno.test("parseEnvFile: CRLF, BOM, no final newline, later key wins", () => {
  assert.deepEqual(
    parseEnvFile('\uFEFFA=1\r\nB="x"\r\nA=2'),
    { A: "2", B: "x" },
  );
});

Deno.test("parseEnvFile: $VAR is not expanded", () => {
  assert.deepEqual(parseEnvFile("A=$HOME\nB=${HOME}/x"), {
    A: "$HOME",
    B: "${HOME}/x",
  });
});

Deno.test("parseEnvFile: malformed lines are rejected with file and line", () => {
  const cases: [string, number, RegExp][] = [
    ["A=1\nnot an assignment", 2, /expected KEY=VALUE/],
    ["A=1\n\nJUSTKEY", 3, /JUSTKEY has no '='/],
    ["export", 1, /export/],
    ["1ABC=x", 1, /invalid variable name/],
    ["A-B=x", 1, /invalid variable name/],
    ["=x", 1, /missing variable name/],
    ['A="open\nB=2', 1, /no closing "/],
    ["A='open", 1, /no closing '/],
    ['A="x" trailing', 1, /unexpected text after the closing "/],
    ["A='x'y", 1, /unexpected text after the closing '/],
  ];
  for (const [text, line, re] of cases) {
    assert.throws(
      () => parseEnvFile(text, "/p/.env"),
      (err: unknown) => {
        assert.ok(err instanceof EnvFileError, text);
        assert.ok(err instanceof UsageError);
        assert.equal(err.exitCode, 2);
        assert.equal(err.line, line, text);
        assert.equal(err.path, "/p/.env");
        assert.match(err.message, new RegExp(`^/p/\\.env:${line}: `));
        assert.match(err.message, re, text);
        return true;
      },
    );
  }
});

Deno.test("parseEnvFile: errors never repeat the value", () => {
  for (
    const text of [
      "TOKEN ghp_secretvalue",
      'TOKEN="ghp_secretvalue',
      'TOKEN="ghp_secretvalue" junk',
      "bad key=ghp_secretvalue",
    ]
  ) {
    assert.throws(
      () => parseEnvFile(text),
      (err: unknown) => {
        assert.ok(err instanceof EnvFileError);
        assert.doesNotMatch(err.message, /secretvalue/, text);
        return true;
      },
    );
  }
});

// ------------------------------------------------------------------ loader

const roots: string[] = [];
globalThis.addEventListener("unload", () => {
  for (const r of roots) Deno.removeSync(r, { recursive: true });
});

async function sandbox(): Promise<{ home: string; cwd: string }> {
  const root = await Deno.makeTempDir({ prefix: "ohc-env-" });
  roots.push(root);
  const home = `${root}/home`;
  const cwd = `${root}/project`;
  await Deno.mkdir(`${home}/.ohcommodore`, { recursive: true });
  await Deno.mkdir(cwd);
  return { home, cwd };
}

Deno.test("loadEnv: real env > ./.env > ~/.ohcommodore/.env", async () => {
  const { home, cwd } = await sandbox();
  await Deno.writeTextFile(
    `${home}/.ohcommodore/.env`,
    "ONLY_HOME=h\nBOTH_FILES=from-home\nALL=from-home\n",
  );
  await Deno.writeTextFile(
    `${cwd}/.env`,
    "# project\nONLY_CWD=c\nBOTH_FILES=from-cwd\nALL=from-cwd\nEMPTY_IN_ENV=file\n",
  );
  const env = { ALL: "from-env", EMPTY_IN_ENV: "", PATH: "/bin" };
  {
    const loaded = await loadEnv({ cwd, home, env });
    assert.equal(loaded.values.ONLY_HOME, "h");
    assert.equal(loaded.values.ONLY_CWD, "c");
    assert.equal(loaded.values.BOTH_FILES, "from-cwd");
    assert.equal(loaded.values.ALL, "from-env");
    assert.equal(
      loaded.values.EMPTY_IN_ENV,
      "",
      "a set-but-empty env var wins",
    );
    assert.equal(loaded.values.PATH, "/bin");

    assert.deepEqual(loaded.origins.ONLY_HOME, {
      source: "home-file",
      path: `${home}/.ohcommodore/.env`,
      line: 1,
    });
    assert.deepEqual(loaded.origins.BOTH_FILES, {
      source: "cwd-file",
      path: `${cwd}/.env`,
      line: 3,
    });
    assert.deepEqual(loaded.origins.ALL, { source: "environment" });
    assert.deepEqual(loaded.origins.PATH, { source: "environment" });
    assert.deepEqual(
      Object.keys(loaded.origins).sort(),
      Object.keys(loaded.values).sort(),
    );

    assert.deepEqual(loaded.files.map((f) => [f.source, f.found, f.keys]), [
      ["home-file", true, ["ONLY_HOME", "BOTH_FILES", "ALL"]],
      ["cwd-file", true, ["ONLY_CWD", "BOTH_FILES", "ALL", "EMPTY_IN_ENV"]],
    ]);
  }
  // The sync loader agrees.
  assert.deepEqual(
    loadEnvSync({ cwd, home, env }),
    await loadEnv({ cwd, home, env }),
  );
});

Deno.test("loadEnv: missing files are fine; mode is reported", async () => {
  const { home, cwd } = await sandbox();
  let loaded = await loadEnv({ cwd, home, env: { A: "1" } });
  assert.deepEqual(loaded.values, { A: "1" });
  assert.deepEqual(loaded.files.map((f) => [f.found, f.mode]), [
    [false, null],
    [false, null],
  ]);

  await Deno.writeTextFile(`${home}/.ohcommodore/.env`, "GH_TOKEN=x\n", {
    mode: 0o644,
  });
  await Deno.chmod(`${home}/.ohcommodore/.env`, 0o644);
  loaded = await loadEnv({ cwd, home, env: {} });
  if (Deno.build.os !== "windows") assert.equal(loaded.files[0].mode, 0o644);
});

Deno.test("loadEnv: without a home only ./.env is read", async () => {
  const { cwd } = await sandbox();
  await Deno.writeTextFile(`${cwd}/.env`, "X=1");
  const loaded = await loadEnv({ cwd, env: {} });
  assert.deepEqual(loaded.values, { X: "1" });
  assert.deepEqual(loaded.files.map((f) => f.source), ["cwd-file"]);
});

Deno.test("loadEnv: home defaults to env.HOME", async () => {
  const { home, cwd } = await sandbox();
  await Deno.writeTextFile(`${home}/.ohcommodore/.env`, "FROM_HOME=1");
  const loaded = await loadEnv({ cwd, env: { HOME: home } });
  assert.equal(loaded.values.FROM_HOME, "1");
});

Deno.test("loadEnv: cwd = ~/.ohcommodore reads the one file once", async () => {
  const { home } = await sandbox();
  await Deno.writeTextFile(`${home}/.ohcommodore/.env`, "K=v");
  const loaded = await loadEnv({ cwd: `${home}/.ohcommodore`, home, env: {} });
  assert.equal(loaded.files.length, 1);
  assert.equal(loaded.origins.K.source, "home-file");
  assert.deepEqual(
    envFilePaths({ cwd: `${home}/.ohcommodore/`, home }).length,
    1,
  );
});

Deno.test("loadEnv: a malformed file names itself and the line", async () => {
  const { home, cwd } = await sandbox();
  await Deno.writeTextFile(`${cwd}/.env`, "OK=1\nbroken line here\n");
  await assert.rejects(
    loadEnv({ cwd, home, env: {} }),
    (err: unknown) => {
      assert.ok(err instanceof EnvFileError);
      assert.equal(err.message.startsWith(`${cwd}/.env:2: `), true);
      return true;
    },
  );
  assert.throws(() => loadEnvSync({ cwd, home, env: {} }), EnvFileError);
});

Deno.test("loadEnv: a .env that is not a file is an error", async () => {
  const { home, cwd } = await sandbox();
  await Deno.mkdir(`${cwd}/.env`);
  await assert.rejects(loadEnv({ cwd, home, env: {} }), OhcError);
  assert.throws(() => loadEnvSync({ cwd, home, env: {} }), OhcError);
});

Deno.test("applyLoadedEnv sets only what came from files", async () => {
  const { home, cwd } = await sandbox();
  await Deno.writeTextFile(`${cwd}/.env`, "FROM_FILE=f\nREAL=file");
  const loaded = await loadEnv({ cwd, home, env: { REAL: "env" } });
  const set = new Map<string, string>();
  const keys = applyLoadedEnv(loaded, { set: (k, v) => set.set(k, v) });
  assert.deepEqual(keys, ["FROM_FILE"]);
  assert.deepEqual([...set], [["FROM_FILE", "f"]]);
});
