/**
 * One DuckDB connection, its statements prepared once and reused
 * (preparing costs more than running one here), every value a bound
 * parameter.
 *
 * DuckDB plans a prepared statement with the table statistics of the
 * moment it was prepared: a sorted listing prepared on an empty table
 * returns garbage strings once rows exist (reproduced in
 * tests/inbox/store_test.ts), an UPDATE with a subquery never matches. The
 * database (database.ts) therefore turns statistics propagation off before
 * any statement is prepared; on tables this small it buys nothing.
 */
import type {
  DuckDBConnection,
  DuckDBPreparedStatement,
  DuckDBType,
} from "@duckdb/node-api";
import type { Param, Row } from "./values.ts";

/** Runs a statement; its rows. */
export type Query = (sql: string, params?: Param[]) => Promise<Row[]>;
/** Runs a statement for its effect; how many rows it changed. */
export type Exec = (sql: string, params?: Param[]) => Promise<number>;

/** Statements on the database, run as they come (no queue, no transaction). */
export interface Sql {
  query: Query;
  exec: Exec;
}

export class Connection implements Sql {
  #conn: DuckDBConnection;
  #listType: DuckDBType;
  #statements = new Map<string, DuckDBPreparedStatement>();

  /** listType: LIST(VARCHAR), which string arrays bind as. */
  constructor(conn: DuckDBConnection, listType: DuckDBType) {
    this.#conn = conn;
    this.#listType = listType;
  }

  query = async (sql: string, params: Param[] = []): Promise<Row[]> => {
    const reader = await (await this.#prepared(sql, params)).runAndReadAll();
    return reader.getRowObjects();
  };

  exec = async (sql: string, params: Param[] = []): Promise<number> => {
    return (await (await this.#prepared(sql, params)).run()).rowsChanged;
  };

  /** A statement without the cache, whose failure is not thrown. */
  async runQuietly(sql: string): Promise<void> {
    await this.#conn.run(sql).catch(() => {});
  }

  close(): void {
    for (const ps of this.#statements.values()) ps.destroySync();
    this.#statements.clear();
    this.#conn.closeSync();
  }

  /** A cached prepared statement (see the header on why caching is safe). */
  async #prepared(
    sql: string,
    params: Param[],
  ): Promise<DuckDBPreparedStatement> {
    let ps = this.#statements.get(sql);
    if (!ps) {
      ps = await this.#conn.prepare(sql);
      this.#statements.set(sql, ps);
    }
    ps.clearBindings();
    params.forEach((v, i) => this.#bind(ps, i + 1, v));
    return ps;
  }

  #bind(ps: DuckDBPreparedStatement, i: number, v: Param): void {
    if (v === null) ps.bindNull(i);
    else if (typeof v === "string") ps.bindVarchar(i, v);
    else if (typeof v === "boolean") ps.bindBoolean(i, v);
    else if (typeof v === "number") {
      if (Number.isSafeInteger(v)) ps.bindBigInt(i, BigInt(v));
      else ps.bindDouble(i, v);
    } else if (Array.isArray(v)) {
      ps.bindList(i, v, this.#listType as Parameters<typeof ps.bindList>[2]);
    } else ps.bindBlob(i, v);
  }
}
