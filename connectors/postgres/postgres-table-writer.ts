import { Readable } from 'node:stream';
import { pipeline } from 'node:stream/promises';
import type { PoolClient } from 'pg';
import type { MatchBatch } from '../types.js';
import { ConnectorError } from '../../src/errors.js';
import { METADATA_FIELDS, exportFields, metadataOf } from '../../src/records/export-record.js';
import { typeOfValue, widenType, type FieldType } from '../../src/records/fields.js';
import { ColumnLayout, type PlainRecord } from '../../src/records/layout.js';
import { COLUMN_TYPES, copyField, jsonText, qualified, quoteIdent, valueText, type TableName } from './postgres-sql.js';

export interface TableColumns {
  readonly table: TableName;
  readonly columns: readonly string[] | Readonly<Record<string, string>> | undefined;
  readonly createTable: boolean;
  readonly mode: 'insert' | 'upsert';
  readonly conflictColumns: readonly string[];
  readonly includeMetadata: boolean;
  readonly targetName: string;
}

/** A column of the table as the catalog describes it. */
interface TableColumn {
  readonly type: string;
  readonly isArray: boolean;
}

/** One column of a write: where its value comes from and what type a new column would get. */
interface ColumnPlan {
  readonly column: string;
  readonly field: string;
  readonly type: FieldType;
  readonly value: (row: unknown, record: PlainRecord | undefined) => unknown;
}

/** COPY text is sent in pieces of about this size, below V8's large-string threshold. */
const PIECE = 64 * 1024;

/**
 * Writes batches into one table inside the cycle's transaction: it learns the table's columns
 * once, creates the table or adds a column when create_table allows, and sends rows with COPY
 * (through a staging table and INSERT ... ON CONFLICT for upserts). It lives as long as the
 * transaction, so what it learned is undone with it.
 */
export class TableWriter {
  #columns: Map<string, TableColumn> | undefined;
  #exists = false;
  readonly #staging = new Map<string, string>();

  constructor(
    private readonly spec: TableColumns,
    private readonly copyFrom: typeof import('pg-copy-streams').from,
  ) {}

  get #tableSql(): string {
    return qualified(this.spec.table);
  }

  async write(client: PoolClient, batch: MatchBatch, signal: AbortSignal): Promise<void> {
    if (batch.rows.length === 0) return;
    const plan = this.#plan(batch);
    const stagedBefore = new Set(this.#staging.keys());
    try {
      await this.#prepareTable(client, plan);
      if (this.spec.mode === 'upsert') await this.#upsert(client, batch, plan, signal);
      else await this.#copy(client, this.#tableSql, batch, plan, signal);
    } catch (err) {
      // The write's savepoint is rolled back with the error: a table, column or staging table made
      // in it is gone, while those of earlier writes stay. The columns are read again next time.
      this.#columns = undefined;
      for (const key of [...this.#staging.keys()]) if (!stagedBefore.has(key)) this.#staging.delete(key);
      throw err;
    }
  }

  /** The columns of this batch's write, in order, with the source of each value. */
  #plan(batch: MatchBatch): ColumnPlan[] {
    const fields = exportFields(batch, this.spec.includeMetadata);
    const byName = new Map(fields.map((f) => [f.name, f]));
    const pairs: [string, string][] = Array.isArray(this.spec.columns)
      ? this.spec.columns.map((c) => [c, c])
      : this.spec.columns
        ? Object.entries(this.spec.columns)
        : fields.map((f) => [f.name, f.name]);
    const meta = metadataOf(batch);
    const byRecord = batch.layout instanceof ColumnLayout;
    const plan = pairs.map(([column, field]): ColumnPlan => {
      quoteIdent(column);
      // A metadata name is the metadata, unless include_metadata is off and the source has a field of that name.
      const fromMeta = (METADATA_FIELDS as readonly string[]).includes(field) && (this.spec.includeMetadata || !byName.has(field));
      if (fromMeta) {
        const value = meta[field];
        return { column, field, type: field === '_matched_at' ? 'timestamp' : 'string', value: () => value };
      }
      const value = byRecord ? (_row: unknown, record: PlainRecord | undefined) => readPath(record!, field) : batch.layout.accessor(field);
      return { column, field, type: byName.get(field)?.type ?? inferType(batch, value, byRecord), value };
    });
    if (this.spec.mode === 'upsert') {
      const missing = this.spec.conflictColumns.filter((c) => !plan.some((p) => p.column === c));
      if (missing.length > 0) {
        throw new ConnectorError(`conflict column${missing.length > 1 ? 's' : ''} ${missing.map((c) => `"${c}"`).join(', ')} not among the columns written; list ${missing.length > 1 ? 'them' : 'it'} in columns or fix conflict_columns`, {
          code: 'INVALID_CONFIG',
        });
      }
    }
    return plan;
  }

  async #loadColumns(client: PoolClient): Promise<Map<string, TableColumn>> {
    const { rows } = await client.query<{ name: string; type: string; category: string }>(
      `SELECT a.attname AS name, format_type(a.atttypid, a.atttypmod) AS type, t.typcategory AS category
         FROM pg_attribute a JOIN pg_type t ON t.oid = a.atttypid
        WHERE a.attrelid = to_regclass($1) AND a.attnum > 0 AND NOT a.attisdropped
        ORDER BY a.attnum`,
      [this.#tableSql],
    );
    const exists = rows.length > 0 || (await client.query('SELECT to_regclass($1) IS NOT NULL AS ok', [this.#tableSql])).rows[0].ok;
    this.#exists = exists;
    return new Map(rows.map((r) => [r.name, { type: r.type, isArray: r.category === 'A' }]));
  }

  /** Makes sure the table has every column of the plan, creating the table or columns when create_table allows. */
  async #prepareTable(client: PoolClient, plan: readonly ColumnPlan[]): Promise<void> {
    this.#columns ??= await this.#loadColumns(client);
    if (this.#exists && this.#missingColumns(plan).length === 0) return;
    if (!this.#exists && !this.spec.createTable) {
      throw new ConnectorError(`table ${this.#tableSql} does not exist; create it, or set create_table: true to have it created from the records' fields`, {
        code: '42P01',
        details: { table: this.spec.table.table },
      });
    }
    if (!this.spec.createTable) {
      const missing = this.#missingColumns(plan);
      const list = missing.map((p) => (p.column === p.field ? `"${p.column}"` : `"${p.column}" (field "${p.field}")`)).join(', ');
      throw new ConnectorError(
        `table ${this.#tableSql} has no column ${list}; add ${missing.length > 1 ? 'them' : 'it'}, choose the columns to write with columns:, or set create_table: true`,
        { code: '42703', details: { table: this.spec.table.table, column: missing[0]!.column } },
      );
    }
    await this.#lockTableShape(client);
    // What was missing may have been made by the process that held the lock; its transaction has ended.
    this.#columns = await this.#loadColumns(client);
    if (!this.#exists) {
      const unique = this.spec.mode === 'upsert' ? `, UNIQUE (${this.spec.conflictColumns.map(quoteIdent).join(', ')})` : '';
      await client.query(`CREATE TABLE IF NOT EXISTS ${this.#tableSql} (${plan.map(columnDefinition).join(', ')}${unique})`);
      this.#columns = await this.#loadColumns(client);
    }
    const missing = this.#missingColumns(plan);
    if (missing.length === 0) return;
    for (const p of missing) await client.query(`ALTER TABLE ${this.#tableSql} ADD COLUMN IF NOT EXISTS ${columnDefinition(p)}`);
    this.#columns = await this.#loadColumns(client);
  }

  #missingColumns(plan: readonly ColumnPlan[]): ColumnPlan[] {
    return plan.filter((p) => !this.#columns!.has(p.column));
  }

  /**
   * Makes processes that create or alter this table take turns, until the end of the cycle's
   * transaction. Without it two of them creating the same table at once both run CREATE TABLE IF
   * NOT EXISTS, neither seeing the other's uncommitted table, and the second fails on the
   * catalog's unique index (23505) once the first commits. Adding a column takes the same turn,
   * so the columns read after it are the ones the other process left. The key is the table as the
   * server resolves it, so `alerts` and `public.alerts` take turns too.
   */
  async #lockTableShape(client: PoolClient): Promise<void> {
    await client.query(
      `SELECT pg_advisory_xact_lock(hashtext('threshold-processor table shape'), hashtext(format('%I.%I', coalesce($1, current_schema()), $2::text)))`,
      [this.spec.table.schema ?? null, this.spec.table.table],
    );
  }

  async #copy(client: PoolClient, into: string, batch: MatchBatch, plan: readonly ColumnPlan[], signal: AbortSignal): Promise<void> {
    const sql = `COPY ${into} (${plan.map((p) => quoteIdent(p.column)).join(', ')}) FROM STDIN`;
    const arrays = plan.map((p) => this.#columns!.get(p.column)?.isArray === true);
    // A value of a json field going into a json column is written as JSON, a string included:
    // the JSON string "just text" must arrive quoted, or the server reads `just text` as JSON.
    const asJson = plan.map((p) => p.type === 'json' && /^jsonb?$/.test(this.#columns!.get(p.column)?.type ?? ''));
    const byRecord = batch.layout instanceof ColumnLayout;
    const layout = batch.layout;
    function* pieces(): Generator<string> {
      let piece = '';
      for (const row of batch.rows) {
        const record = byRecord ? layout.toRecord(row) : undefined;
        let line = '';
        for (let c = 0; c < plan.length; c++) {
          if (c > 0) line += '\t';
          const value = plan[c]!.value(row, record);
          line += copyField(asJson[c] && value !== null && value !== undefined ? jsonText(value) : valueText(value, arrays[c]!));
        }
        piece += line + '\n';
        if (piece.length >= PIECE) {
          yield piece;
          piece = '';
        }
      }
      if (piece) yield piece;
    }
    await pipeline(Readable.from(pieces(), { objectMode: false }), client.query(this.copyFrom(sql)), { signal });
  }

  /** COPY into a staging table, then one INSERT ... ON CONFLICT DO UPDATE; within a batch the last record of a key wins. */
  async #upsert(client: PoolClient, batch: MatchBatch, plan: readonly ColumnPlan[], signal: AbortSignal): Promise<void> {
    const columns = plan.map((p) => quoteIdent(p.column));
    const key = columns.join(',');
    let staging = this.#staging.get(key);
    if (staging === undefined) {
      staging = quoteIdent(`tp_stage_${this.#staging.size + 1}`);
      await client.query(`CREATE TEMP TABLE ${staging} ON COMMIT DROP AS SELECT ${columns.join(', ')} FROM ${this.#tableSql} WITH NO DATA`);
      this.#staging.set(key, staging);
    } else {
      await client.query(`TRUNCATE ${staging}`);
    }
    await this.#copy(client, staging, batch, plan, signal);
    const keys = this.spec.conflictColumns.map(quoteIdent);
    const updates = columns.filter((c) => !keys.includes(c)).map((c) => `${c} = EXCLUDED.${c}`);
    const onConflict = updates.length > 0 ? `DO UPDATE SET ${updates.join(', ')}` : 'DO NOTHING';
    // Within the batch the last record of a key wins. A key with a null in it is no key: the
    // unique index lets every such row in, so DISTINCT ON (which would call them equal) must
    // not fold them into one.
    const keyed = keys.map((k) => `${k} IS NOT NULL`).join(' AND ');
    await client.query(
      `INSERT INTO ${this.#tableSql} (${columns.join(', ')}) ` +
        `SELECT ${columns.join(', ')} FROM (` +
        `SELECT DISTINCT ON (${keys.join(', ')}) ${columns.join(', ')} FROM ${staging} WHERE ${keyed} ORDER BY ${keys.join(', ')}, ctid DESC` +
        `) last_of_each_key UNION ALL SELECT ${columns.join(', ')} FROM ${staging} WHERE NOT (${keyed}) ` +
        `ON CONFLICT (${keys.join(', ')}) ${onConflict}`,
    );
  }

  /** Whether ON CONFLICT (columns) can find its arbiter: a unique, non-partial index on exactly those columns, in any order. */
  async #hasUniqueIndexOn(client: PoolClient, columns: readonly string[]): Promise<boolean> {
    const { rows } = await client.query<{ columns: string[] }>(
      `SELECT array(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey))::text[] AS columns
         FROM pg_index i WHERE i.indrelid = to_regclass($1) AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL`,
      [this.#tableSql],
    );
    return rows.some((r) => sameNames(r.columns, columns));
  }

  /** For --check: the table is there (or will be created) with the configured columns, and the role may write to it. */
  async check(client: PoolClient): Promise<string> {
    const version = (await client.query<{ v: string }>("SELECT current_setting('server_version') AS v")).rows[0]!.v;
    const columns = await this.#loadColumns(client);
    if (!this.#exists) {
      if (!this.spec.createTable) {
        throw new ConnectorError(`table ${this.#tableSql} does not exist; create it, or set create_table: true`, { code: '42P01', details: { table: this.spec.table.table } });
      }
      const schema = this.spec.table.schema;
      const { rows } = await client.query<{ ok: boolean }>(`SELECT has_schema_privilege(coalesce($1, current_schema()), 'CREATE') AS ok`, [schema ?? null]);
      if (!rows[0]?.ok) throw new ConnectorError(`table ${this.#tableSql} does not exist and the role may not create tables in its schema`, { code: '42501' });
      return `PostgreSQL ${version}; table ${this.#tableSql} does not exist yet and will be created on the first write`;
    }
    const wanted = Array.isArray(this.spec.columns) ? this.spec.columns : this.spec.columns ? Object.keys(this.spec.columns) : [];
    const missing = wanted.filter((c) => !columns.has(c));
    if (missing.length > 0 && !this.spec.createTable) {
      throw new ConnectorError(`table ${this.#tableSql} has no column ${missing.map((c) => `"${c}"`).join(', ')}; add it or fix columns`, {
        code: '42703',
        details: { table: this.spec.table.table, column: missing[0] },
      });
    }
    if (this.spec.mode === 'upsert' && !(await this.#hasUniqueIndexOn(client, this.spec.conflictColumns))) {
      throw new ConnectorError(
        `table ${this.#tableSql} has no unique index or primary key on exactly (${this.spec.conflictColumns.join(', ')}), which upsert needs; ` +
          `add one (CREATE UNIQUE INDEX ON ${this.#tableSql} (${this.spec.conflictColumns.map(quoteIdent).join(', ')})) or fix conflict_columns`,
        { code: '42P10', details: { table: this.spec.table.table } },
      );
    }
    // An upsert goes through a temporary staging table built from the target's columns (SELECT, TEMP)
    // and INSERT ... ON CONFLICT DO UPDATE: every one is needed. has_table_privilege with a list
    // is true when any one is held, so each is asked on its own.
    const privileges = this.spec.mode === 'upsert' ? ['INSERT', 'UPDATE', 'SELECT'] : ['INSERT'];
    const { rows } = await client.query<{ missing: string[]; temp: boolean }>(
      `SELECT array(SELECT p FROM unnest($2::text[]) p WHERE NOT has_table_privilege(to_regclass($1), p)) AS missing,
              has_database_privilege(current_database(), 'TEMP') AS temp`,
      [this.#tableSql, privileges],
    );
    const lacking = rows[0]?.missing ?? privileges;
    if (lacking.length > 0) {
      throw new ConnectorError(`the role may not ${lacking.join(', ').toLowerCase()} on table ${this.#tableSql}; grant ${lacking.join(', ')} on it`, { code: '42501' });
    }
    if (this.spec.mode === 'upsert' && !rows[0]!.temp) {
      throw new ConnectorError('the role may not create temporary tables in this database, which an upsert stages its rows in; grant TEMP on the database', { code: '42501' });
    }
    return `PostgreSQL ${version}; table ${this.#tableSql} has ${columns.size} columns and takes ${privileges.join(', ')}`;
  }
}

function sameNames(a: readonly string[], b: readonly string[]): boolean {
  return a.length === b.length && [...a].sort().join('\u0000') === [...b].sort().join('\u0000');
}

function columnDefinition(p: ColumnPlan): string {
  return `${quoteIdent(p.column)} ${COLUMN_TYPES[p.type]}`;
}

/** A record's field, or a dotted path into it (a key that itself holds the dot wins). */
function readPath(record: PlainRecord, field: string): unknown {
  if (Object.hasOwn(record, field)) return record[field];
  let value: unknown = record;
  for (const part of field.split('.')) {
    if (value === null || typeof value !== 'object' || !Object.hasOwn(value, part)) return undefined;
    value = (value as PlainRecord)[part];
  }
  return value;
}

/** The type of a mapped field the source did not describe (a dotted path into json), from the batch's values. */
function inferType(batch: MatchBatch, value: ColumnPlan['value'], byRecord: boolean): FieldType {
  let type: FieldType | undefined;
  for (const row of batch.rows) type = widenType(type, typeOfValue(value(row, byRecord ? batch.layout.toRecord(row) : undefined)));
  return type ?? 'string';
}
