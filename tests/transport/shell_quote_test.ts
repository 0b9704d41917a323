import assert from "node:assert/strict";
import { quoteArg, quoteArgv } from "../../lib/transport/shell_quote.ts";

/** Words that a naive quoter gets wrong. */
const NASTY: string[] = [
  "",
  " ",
  "  two  spaces  ",
  "\t",
  "a b",
  "'",
  "''",
  "'\\''",
  "it's",
  '"',
  '""',
  'say "hi"',
  "\\",
  "\\\\",
  "back\\slash",
  "trailing\\",
  "\\n",
  "$HOME",
  "${HOME}",
  "${x:-default}",
  "$(echo pwned)",
  "$((1+2))",
  "`id`",
  "a\nb",
  "\n",
  "line1\nline2\n",
  "\r\n",
  "héllo wörld",
  "日本語",
  "✓ 🚢 emoji",
  "\u00a0nbsp",
  "-n",
  "-e",
  "--",
  "-",
  "--help",
  "-rf /",
  "~",
  "~root",
  "~/x",
  "a~b",
  "*",
  "?",
  "[a-z]*",
  "{a,b}",
  "{1..3}",
  ";",
  "a;b",
  "&&",
  "||",
  "|",
  "&",
  ">",
  ">/tmp/x",
  "<",
  "2>&1",
  "#comment",
  "!",
  "!!",
  "!$",
  "^",
  "%",
  "FOO=bar",
  "=",
  "(",
  ")",
  "()",
  "{",
  "}",
  "if",
  "then",
  "\x01\x02\x1b[31mred\x1b[0m",
  "\x7f",
  "x".repeat(10_000),
];

/** Runs `<shell> -c <quoteArgv(printf '%s\0' words)>` and splits the output. */
async function roundTrip(shell: string, words: string[]) {
  const script = quoteArgv(["printf", "%s\\0", "<start>", ...words]);
  const out = await new Deno.Command(shell, {
    args: ["-c", script],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { PATH: "/usr/bin:/bin", HOME: "/nonexistent", FOO: "leak" },
    clearEnv: true,
  }).output();
  assert.equal(out.code, 0, new TextDecoder().decode(out.stderr));
  const parts = new TextDecoder().decode(out.stdout).split("\0");
  assert.equal(parts.pop(), "", "output ends with a NUL");
  assert.equal(parts.shift(), "<start>");
  return parts;
}

Deno.test("quoteArg: single-quotes every word", () => {
  assert.equal(quoteArg("abc"), "'abc'");
  assert.equal(quoteArg(""), "''");
  assert.equal(quoteArg("it's"), "'it'\\''s'");
  assert.equal(quoteArg("'"), "''\\'''");
  assert.equal(quoteArg("$x `y` \\z"), "'$x `y` \\z'");
  assert.equal(quoteArg("a\nb"), "'a\nb'");
});

Deno.test("quoteArgv: joins quoted words with spaces", () => {
  assert.equal(quoteArgv(["echo", "a b", ""]), "'echo' 'a b' ''");
});

Deno.test("quoteArgv: rejects NUL and an empty argv", () => {
  assert.throws(() => quoteArg("a\0b"), /NUL/);
  assert.throws(() => quoteArgv(["echo", "\0"]), /NUL/);
  assert.throws(() => quoteArgv([]), /at least one/);
});

for (const shell of ["/bin/sh", "/bin/bash"]) {
  Deno.test(`quoteArgv round-trips nasty words through ${shell} -c`, async () => {
    assert.deepEqual(await roundTrip(shell, NASTY), NASTY);
  });

  Deno.test(`quoteArgv round-trips each nasty word alone through ${shell} -c`, async () => {
    // One at a time too, so a failure names the word.
    await Promise.all(
      NASTY.map(async (w) => {
        assert.deepEqual(await roundTrip(shell, [w]), [w], JSON.stringify(w));
      }),
    );
  });

  Deno.test(`quoteArgv round-trips random words through ${shell} -c`, async () => {
    const alphabet = [
      ..."ab -~*?[]{}()<>|&;$`'\"\\\n\t#!=%^,.:/@+",
      "é",
      "日",
      "🚢",
      "\x01",
    ];
    // A fixed-seed generator keeps failures reproducible.
    let seed = 42;
    const rand = (n: number) => {
      seed = (seed * 1103515245 + 12345) & 0x7fffffff;
      return seed % n;
    };
    const words: string[] = [];
    for (let i = 0; i < 300; i++) {
      let w = "";
      const len = rand(12);
      for (let j = 0; j < len; j++) w += alphabet[rand(alphabet.length)];
      words.push(w);
    }
    assert.deepEqual(await roundTrip(shell, words), words);
  });

  Deno.test(`quoteArgv: ${shell} executes nothing from inside a word`, async () => {
    const dir = await Deno.makeTempDir({ prefix: "ohc-quote-" });
    try {
      const marker = `${dir}/pwned`;
      const words = [
        `$(touch ${marker})`,
        `\`touch ${marker}\``,
        `; touch ${marker}`,
        `' ; touch ${marker} ; '`,
        `"; touch ${marker}; "`,
        `\n touch ${marker}\n`,
        `| touch ${marker}`,
        `&& touch ${marker}`,
      ];
      assert.deepEqual(await roundTrip(shell, words), words);
      await assert.rejects(Deno.stat(marker), Deno.errors.NotFound);
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  });

  Deno.test(`quoteArgv: the first word is a command name in ${shell}, never a keyword or assignment`, async () => {
    for (const first of ["if", "FOO=bar", "!", "{", "(", "~", "*"]) {
      const out = await new Deno.Command(shell, {
        args: ["-c", quoteArgv([first, "x"])],
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
        env: { PATH: "/nonexistent" },
        clearEnv: true,
      }).output();
      // 127: "command not found", not a syntax error (2) or success (0).
      assert.equal(out.code, 127, `${first}: exit ${out.code}`);
    }
  });
}
