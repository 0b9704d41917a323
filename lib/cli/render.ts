import type { FleetStatus, ShipView } from "../fleet/api.ts";
import type { ShipRecord } from "../state/fleet.ts";
import { escapeControls } from "../terminal_text.ts";

export function age(iso: string, now = Date.now()): string {
  const s = Math.max(0, Math.floor((now - Date.parse(iso)) / 1000));
  if (!Number.isFinite(s)) return "?";
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m`;
  if (s < 86400) return `${Math.floor(s / 3600)}h`;
  return `${Math.floor(s / 86400)}d`;
}

/**
 * Plain aligned columns, indented like the seeds' tables. Cells are shown
 * with control characters escaped (they often hold users' text).
 */
export function table(headers: string[], cells: string[][]): string {
  const rows = cells.map((r) => r.map((c) => escapeControls(c ?? "")));
  const widths = headers.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => (r[i] ?? "").length))
  );
  const line = (cells: string[]) =>
    "  " + cells.map((c, i) => c.padEnd(widths[i])).join("  ").trimEnd();
  return [line(headers), ...rows.map(line)].join("\n");
}

export function shipRows(ships: ShipRecord[]): string[][] {
  return ships.map((s) => [
    s.name,
    s.repo ?? "-",
    s.status,
    age(s.created_at),
  ]);
}

export function renderStatus(s: FleetStatus): string {
  const lines = [
    `FLAGSHIP: ${s.flagship.ssh_dest} (${s.flagship.status}${
      s.flagship.daemon === "down" ? ", daemon down" : ""
    })`,
    "",
  ];
  if (s.ships.length === 0) lines.push("SHIPS: (none)");
  else {
    lines.push(`SHIPS (${s.ships.length}):`);
    lines.push(
      table(
        ["NAME", "REPO", "STATUS", "AGE", "LINK"],
        shipRows(s.ships).map((row, i) => [...row, linkCell(s.ships[i])]),
      ),
    );
  }
  return lines.join("\n");
}

function linkCell(s: ShipView): string {
  const hb = s.link.last_heartbeat
    ? ` (heartbeat ${age(s.link.last_heartbeat)} ago)`
    : "";
  return `${s.link.state}${hb}`;
}
