/**
 * The fleet's operations: what the flagship's per-call process does with
 * the provider and the registry (roles/commodore.ts serves them), and what
 * every VM answers about itself (roles/vm.ts).
 */
import type { Bootstrap } from "../bootstrap.ts";
import { UsageError } from "../errors.ts";
import {
  data,
  none,
  op,
  opt,
  returns,
  shape,
  str,
  strList,
  strRecord,
} from "../rpc/op.ts";
import type { ShipRecord } from "../state/fleet.ts";
import type { Identity } from "../state/identity.ts";
import type { FleetConfig, FleetStatus, SinkResult } from "./api.ts";

/** What `vm.setup` takes: it makes a fresh VM a commodore or a captain. */
export interface SetupArgs {
  identity: Identity;
  /** Run cloudinit/init.sh with these settings (absent: skip it). */
  bootstrap?: Bootstrap | null;
  /** Clone this URL into ~/<dir> (captains with a repo). */
  clone?: { url: string; dir: string } | null;
  /** The VM's settings file (lib/settings.ts), checked again there. */
  settings?: Record<string, string>;
}

export interface ShipVersion {
  name: string;
  version: string | null;
  error?: string;
}

const positiveInt = (v: unknown, key: string): number => {
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1) {
    throw new UsageError(`fleet.capacity needs ${key}: a positive integer`);
  }
  return v;
};

export const FLEET_OPS = {
  "fleet.status": op("call", none, returns<FleetStatus>(), { on: "flagship" }),
  "fleet.versions": op(
    "call",
    none,
    returns<{ flagship: string; ships: ShipVersion[] }>(),
    { on: "flagship" },
  ),
  "fleet.capacity": op(
    "call",
    shape({ adding: positiveInt }),
    returns<null>(),
    { on: "flagship" },
  ),
  "fleet.sink": op("call", none, returns<SinkResult>(), {
    on: "flagship",
    long: true,
  }),
  "fleet.recover": op("call", none, returns<ShipRecord[]>(), {
    on: "flagship",
    long: true,
  }),
  "fleet.settings": op("call", none, returns<FleetConfig>(), {
    on: "flagship",
  }),
  "fleet.configure": op(
    "call",
    shape({ set: opt(strRecord), unset: opt(strList) }),
    returns<FleetConfig>(),
    { on: "flagship" },
  ),
  "ship.list": op("call", none, returns<ShipRecord[]>(), { on: "flagship" }),
  "ship.create": op(
    "call",
    shape({
      spec: str,
      name: opt(str),
      clone_url: opt(str),
      bootstrap: opt(data<Bootstrap>()),
      settings: opt(strRecord),
    }),
    returns<ShipRecord>(),
    { on: "flagship", long: true },
  ),
  "ship.destroy": op("call", shape({ name: str }), returns<ShipRecord>(), {
    on: "flagship",
    long: true,
  }),
  /** Input: the command's stdin; events: its output. */
  "ship.exec": op(
    "call",
    shape({ name: str, argv: strList }),
    returns<{ code: number }>(),
    { on: "flagship", long: true },
  ),

  "vm.identity": op(
    "call",
    none,
    returns<{ identity: Identity | null; version: string }>(),
  ),
  /** `fleet config set` on this VM: its daemon reloads them by itself. */
  "vm.settings": op(
    "call",
    shape({ settings: opt(data<Record<string, unknown>>()) }),
    returns<{ settings: Record<string, string> }>(),
  ),
  "vm.setup": op(
    "call",
    shape({
      identity: data<Identity>(),
      bootstrap: opt(data<Bootstrap>()),
      clone: opt(data<{ url: string; dir: string }>()),
      settings: opt(data<Record<string, unknown>>()),
    }),
    returns<{ identity: Identity; public_key: string | null }>(),
  ),
};
