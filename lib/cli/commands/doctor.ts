/**
 * `doctor`: checks what the fleet depends on, one line each, and says what
 * to do about each failure. Exit 1 when a check fails.
 */
import type { Command } from "@commander-js/extra-typings";
import { readConfig } from "../../state/config.ts";
import { VERSION } from "../../version.ts";
import type { CliContext } from "../context.ts";
import { out, printJson } from "../io.ts";

interface Check {
  name: string;
  ok: boolean;
  detail: string;
  /** A warning does not fail the run. */
  warn?: boolean;
}

/** What doctor looks at on this machine (fakes in unit tests). */
export interface DoctorProbes {
  /** The first line a tool prints about itself, or null when it is missing. */
  tool(cmd: string, args: string[]): Promise<string | null>;
  /** null when DuckDB loads, else why not. */
  duckdb(): Promise<string | null>;
}

export const machineProbes: DoctorProbes = {
  tool,
  async duckdb() {
    try {
      const { DuckDBInstance } = await import("@duckdb/node-api");
      const db = await DuckDBInstance.create(":memory:");
      db.closeSync();
      return null;
    } catch (e) {
      return (e as Error).message;
    }
  },
};

async function tool(cmd: string, args: string[]): Promise<string | null> {
  try {
    const r = await new Deno.Command(cmd, {
      args,
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text =
      new TextDecoder().decode(r.success ? r.stdout : r.stderr).trim() ||
      new TextDecoder().decode(r.stderr).trim();
    return r.success || text ? text.split("\n")[0] : null;
  } catch {
    return null;
  }
}

export function registerDoctor(
  program: Command,
  ctx: CliContext,
  probes: DoctorProbes = machineProbes,
): void {
  program.command("doctor")
    .description(
      "check ssh, the provider and its account, tokens, tmux, git, DuckDB,\n" +
        "and the ohcommodore version on every VM",
    )
    .option("--json", "machine-readable output")
    .action(async (o) => {
      const checks: Check[] = [];
      const add = (c: Check) => checks.push(c);
      const ssh = await probes.tool("ssh", ["-V"]);
      add({
        name: "ssh",
        ok: ssh !== null,
        detail: ssh ?? "not found: install openssh-client",
      });
      const git = await probes.tool("git", ["--version"]);
      add({
        name: "git",
        ok: git !== null,
        detail: git ?? "not found: install git",
      });
      const tmux = await probes.tool("tmux", ["-V"]);
      add({
        name: "tmux",
        ok: tmux !== null,
        detail: tmux ?? "not found: ships run agents without a tmux window",
        warn: true,
      });
      const duckdb = await probes.duckdb();
      add({
        name: "duckdb",
        ok: duckdb === null,
        detail: duckdb === null ? "loads" : `does not load: ${duckdb}`,
      });
      const gh = !!ctx.env("GH_TOKEN");
      add({
        name: "GH_TOKEN",
        ok: gh,
        warn: true,
        detail: gh ? "set" : "not set (needed for owner/repo ships)",
      });
      // The credential sail asks for with --agent claude (agent_env.ts).
      const { agentEnvFrom, requireAgentCredential } = await import(
        "../../voyage/ship/agent_env.ts"
      );
      const claudeEnv = agentEnvFrom("claude", (k) => ctx.env(k));
      let claudeOk = true;
      try {
        requireAgentCredential("claude", claudeEnv);
      } catch {
        claudeOk = false;
      }
      add({
        name: "claude credential",
        ok: claudeOk,
        warn: true,
        detail: claudeOk
          ? `set (agent environment: ${Object.keys(claudeEnv).join(", ")})`
          : "not set (CLAUDE_CODE_OAUTH_TOKEN or ANTHROPIC_API_KEY, needed for --agent claude)",
      });

      const m = await ctx.machine();
      const id = m.identity;
      const config = id ? null : await readConfig(m.home).catch(() => null);
      const provider = id?.provider ?? config?.flagship.provider;
      if (!provider) {
        add({
          name: "fleet",
          ok: true,
          warn: true,
          detail: "no flagship yet: ohcommodore init",
        });
      } else {
        add({ name: "provider", ok: true, detail: provider.kind });
        if (provider.kind === "exedev" && config) {
          try {
            const who = await (await ctx.laptop()).exeDevAccount(config);
            add({
              name: "exe.dev account",
              ok: true,
              detail: `${who.email}${
                config.fleet_id
                  ? ` (this fleet's VMs: ${config.fleet_id}-*)`
                  : ""
              }`,
            });
          } catch (e) {
            add({
              name: "exe.dev account",
              ok: false,
              detail: (e as Error).message,
            });
          }
        }
        if (provider.kind === "sprites" && !id) {
          // The laptop's token (the flagship has its own 0600 copy), and
          // what the plan allows.
          const { findSpriteToken, NO_TOKEN_HINT } = await import(
            "../../providers/sprites_token.ts"
          );
          const found = await findSpriteToken({
            org: provider.org,
            env: ctx.environ(),
          });
          add({
            name: "sprites token",
            ok: found !== null,
            detail: found ? `from ${found.source}` : `none: ${NO_TOKEN_HINT}`,
          });
          if (found) {
            try {
              const { SpritesProvider } = await import(
                "../../providers/sprites.ts"
              );
              const l = await new SpritesProvider(provider, {
                token: found.token,
                retryForMs: 10_000,
              }).limits();
              add({
                name: "sprites plan",
                ok: true,
                detail: `runs ${l.running ?? "?"} sprites at once, keeps ${
                  l.warm ?? "?"
                } warm`,
              });
            } catch (e) {
              add({
                name: "sprites plan",
                ok: false,
                detail: (e as Error).message,
              });
            }
          }
        }
        try {
          const call = await ctx.flagship("doctor");
          const v = await call("fleet.versions", {});
          add({
            name: "flagship",
            ok: v.flagship === VERSION,
            detail: `ohcommodore ${v.flagship}${
              v.flagship === VERSION ? "" : ` (this is ${VERSION})`
            }`,
          });
          for (const s of v.ships) {
            add({
              name: `ship ${s.name}`,
              ok: s.version === VERSION,
              detail: s.version
                ? `ohcommodore ${s.version}`
                : `unreachable: ${s.error}`,
            });
          }
        } catch (e) {
          add({ name: "flagship", ok: false, detail: (e as Error).message });
        }
      }
      const failed = checks.filter((c) => !c.ok && !c.warn);
      if (o.json) printJson(ctx.io, { ok: failed.length === 0, checks });
      else {
        for (const c of checks) {
          out(
            ctx.io,
            `${c.ok ? "ok  " : c.warn ? "warn" : "FAIL"}  ${
              c.name.padEnd(24)
            } ${c.detail}`,
          );
        }
      }
      if (failed.length) ctx.exit.code = 1;
    });
}
