/**
 * `ohcommodore completion bash|zsh|fish`: a completion script made from the
 * command tree itself, so every command, alias and flag is covered and none
 * goes stale. Ship names and voyage ids come from the names the last
 * `fleet status`, `ship list` or `voyage list` saw (completion_cache.ts): a
 * file read, never a call to the flagship on every TAB.
 */
import type { Command } from "@commander-js/extra-typings";
import { type CachedKind, cacheFile } from "./completion_cache.ts";

export const SHELLS = ["bash", "zsh", "fish"] as const;
export type Shell = typeof SHELLS[number];

/** One node of the tree, as the scripts need it. */
interface Node {
  /** Command words from the root, e.g. ["voyage", "logs"]. */
  path: string[];
  /** Subcommand names and aliases. */
  subcommands: string[];
  flags: string[];
  /** What the positional arguments complete to, when anything. */
  dynamic: CachedKind | null;
}

/** A voyage id or ship name argument, known by its name and help. */
function argKind(path: string[], cmd: Command): CachedKind | null {
  // deno-lint-ignore no-explicit-any
  for (const a of (cmd as any).registeredArguments ?? []) {
    const name: string = a.name();
    const help: string = a.description ?? "";
    if (/voyage id/i.test(help)) return "voyages";
    if (name === "ship" || (name === "name" && path[0] === "ship")) {
      return "ships";
    }
  }
  return null;
}

function walk(cmd: Command, path: string[], out: Node[]): void {
  // deno-lint-ignore no-explicit-any
  const visible = (cmd.commands as any[]).filter((c) => !c._hidden);
  const flags: string[] = [];
  for (const o of cmd.options) {
    // deno-lint-ignore no-explicit-any
    if ((o as any).hidden) continue;
    if (o.long) flags.push(o.long);
    if (o.short) flags.push(o.short);
  }
  flags.push("--help");
  out.push({
    path,
    subcommands: visible.flatMap((c) => [c.name(), ...c.aliases()]),
    flags,
    dynamic: argKind(path, cmd),
  });
  for (const c of visible) {
    for (const n of [c.name(), ...c.aliases()]) walk(c, [...path, n], out);
  }
}

export function completionScript(program: Command, shell: Shell): string {
  const nodes: Node[] = [];
  walk(program, [], nodes);
  const name = program.name();
  return shell === "fish" ? fish(name, nodes) : bashLike(name, nodes, shell);
}

const key = (path: string[]) => path.join(" ");
const files = (kind: CachedKind) => `"$HOME/${cacheFile(kind)}"`;

function bashLike(name: string, nodes: Node[], shell: Shell): string {
  const fn = `_${name}_complete`;
  const known = nodes.filter((n) => n.path.length > 0).map((n) =>
    `"${key(n.path)}"`
  );
  const cases = nodes.map((n) => {
    const words = [...n.subcommands, ...n.flags].join(" ");
    const dyn = n.dynamic ? `; dyn=${files(n.dynamic)}` : "";
    return `    "${key(n.path)}") words="${words}"${dyn} ;;`;
  });
  const lines = [
    `# ${name} completion for ${shell}: eval "$(${name} completion ${shell})"`,
    ...(shell === "zsh"
      ? [
        "(( $+functions[compdef] )) || { autoload -U +X compinit && compinit -u; }",
        "autoload -U +X bashcompinit && bashcompinit",
      ]
      : []),
    `${fn}() {`,
    `  local cur="\${COMP_WORDS[COMP_CWORD]}" at="" try w i words dyn=""`,
    `  for ((i = 1; i < COMP_CWORD; i++)); do`,
    `    w="\${COMP_WORDS[i]}"`,
    `    [[ "$w" == -* ]] && continue`,
    `    try="\${at:+$at }$w"`,
    `    case "$try" in`,
    `      ${known.join("|")}) at="$try" ;;`,
    `    esac`,
    `  done`,
    `  case "$at" in`,
    ...cases,
    `  esac`,
    `  if [[ "$cur" != -* && -n "$dyn" && -r "$dyn" ]]; then`,
    `    words="$words $(cat "$dyn")"`,
    `  fi`,
    `  COMPREPLY=($(compgen -W "$words" -- "$cur"))`,
    `}`,
    `complete -F ${fn} ${name}`,
  ];
  return lines.join("\n") + "\n";
}

function fish(name: string, nodes: Node[]): string {
  const pathFn = `__${name}_path`;
  const atFn = `__${name}_at`;
  const known = nodes.filter((n) => n.path.length > 0).map((n) =>
    `'${key(n.path)}'`
  );
  const lines = [
    `# ${name} completion for fish: ${name} completion fish | source`,
    `function ${pathFn}`,
    `    set -l path`,
    `    for w in (commandline -opc)[2..-1]`,
    `        string match -q -- '-*' $w; and continue`,
    `        set -l try (string join ' ' $path $w)`,
    `        contains -- $try ${known.join(" ")}; and set path $path $w`,
    `    end`,
    `    string join ' ' $path`,
    `end`,
    `function ${atFn}`,
    `    set -l p (${pathFn})`,
    `    test "$p" = "$argv[1]"`,
    `end`,
    `complete -c ${name} -f`,
  ];
  for (const n of nodes) {
    const cond = `'${atFn} "${key(n.path)}"'`;
    const words = n.subcommands.join(" ");
    if (words) lines.push(`complete -c ${name} -n ${cond} -a '${words}'`);
    for (const f of n.flags) {
      const opt = f.startsWith("--") ? `-l ${f.slice(2)}` : `-s ${f.slice(1)}`;
      lines.push(`complete -c ${name} -n ${cond} ${opt}`);
    }
    if (n.dynamic) {
      lines.push(
        `complete -c ${name} -n ${cond} -a '(cat ${
          files(n.dynamic)
        } 2>/dev/null)'`,
      );
    }
  }
  return lines.join("\n") + "\n";
}
