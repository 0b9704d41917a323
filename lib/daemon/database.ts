/**
 * The machine's database (~/.ohcommodore/inbox/data.duckdb), owned by its
 * daemon: the one process that opens it (lib/db/database.ts says why).
 * It holds the inbox's tables on every machine, and the voyage queue's,
 * used on the flagship.
 */
import { type Database, openDatabase } from "../db/database.ts";
import { mergeMigrations } from "../db/migrate.ts";
import { INBOX_MIGRATIONS } from "../inbox/schema.ts";
import { VOYAGE_MIGRATIONS } from "../voyage/flagship/queue_schema.ts";

/** Every feature's migrations, in version order. */
export const MACHINE_MIGRATIONS = mergeMigrations(
  INBOX_MIGRATIONS,
  VOYAGE_MIGRATIONS,
);

/** Opens the machine's database at `path`, its schema brought up to date. */
export function openMachineDatabase(
  path: string,
  opts: { now?: () => Date } = {},
): Promise<Database> {
  return openDatabase(path, { migrations: MACHINE_MIGRATIONS, now: opts.now });
}
