/**
 * Values to and from DuckDB: what a statement binds and what a row holds,
 * with the conversions every table's row mapping shares.
 */
import type { DuckDBValue } from "@duckdb/node-api";

/** A row as DuckDB returns it, by column name. */
export type Row = Record<string, DuckDBValue>;

/** A statement parameter; a string array binds as a VARCHAR list. */
export type Param =
  | string
  | number
  | boolean
  | null
  | Uint8Array
  | (string | null)[];

/** An integer column: DuckDB returns BIGINT as bigint. */
export function num(v: DuckDBValue): number {
  return typeof v === "bigint" ? Number(v) : v as number;
}

export function numOrNull(v: DuckDBValue): number | null {
  return v === null ? null : num(v);
}

export function str(v: DuckDBValue): string {
  return v as string;
}

export function strOrNull(v: DuckDBValue): string | null {
  return v === null ? null : v as string;
}

/** A BLOB column, as a plain Uint8Array (or null). */
export function bytesOrNull(v: DuckDBValue): Uint8Array | null {
  if (v === null) return null;
  // DuckDBBlobValue; its bytes are a Node Buffer: copy to a plain Uint8Array.
  return new Uint8Array((v as unknown as { bytes: Uint8Array }).bytes);
}
