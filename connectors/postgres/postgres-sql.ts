import { ConnectorError } from '../../src/errors.js';
import type { FieldType } from '../../src/records/fields.js';

/** PostgreSQL keeps the first 63 bytes of a name and drops the rest without an error; two long names would then be one. */
const MAX_IDENTIFIER_BYTES = 63;

/**
 * A name as a quoted identifier: any text at all (quotes, semicolons, spaces, unicode) stays one
 * name and never becomes SQL. `value"; DROP TABLE x; --` is the column `"value""; DROP TABLE x; --"`.
 */
export function quoteIdent(name: string): string {
  if (name.length === 0) throw new ConnectorError('an empty name cannot be a PostgreSQL identifier; give the field or column a name', { code: 'INVALID_NAME' });
  if (name.includes('\u0000')) throw new ConnectorError(`the name ${JSON.stringify(name)} holds a NUL character, which PostgreSQL names cannot`, { code: 'INVALID_NAME' });
  if (Buffer.byteLength(name) > MAX_IDENTIFIER_BYTES) {
    throw new ConnectorError(
      `the name ${JSON.stringify(name)} is longer than PostgreSQL's ${MAX_IDENTIFIER_BYTES} bytes, which would cut it short silently; map it to a shorter column with columns: {short_name: field}`,
      { code: 'INVALID_NAME' },
    );
  }
  return `"${name.replaceAll('"', '""')}"`;
}

export interface TableName {
  readonly schema: string | undefined;
  readonly table: string;
}

/**
 * `alerts`, `ops.alerts`, or with double quotes for names holding dots or capitals:
 * `"Ops"."my.alerts"`. Unquoted parts are folded to lower case, as PostgreSQL does.
 */
export function parseTableName(text: string): TableName {
  const parts: string[] = [];
  let i = 0;
  const fail = () =>
    new ConnectorError(`table ${JSON.stringify(text)} is not a table name; write table or schema.table, with "double quotes" around a part that holds dots`, {
      code: 'INVALID_CONFIG',
    });
  while (i <= text.length) {
    let part = '';
    if (text[i] === '"') {
      i++;
      for (;;) {
        if (i >= text.length) throw fail();
        if (text[i] === '"') {
          if (text[i + 1] === '"') {
            part += '"';
            i += 2;
            continue;
          }
          i++;
          break;
        }
        part += text[i++];
      }
    } else {
      const end = text.indexOf('.', i);
      // PostgreSQL folds only A-Z of an unquoted name: ÄrgerTable is the table Ärgertable.
      part = text.slice(i, end < 0 ? text.length : end).trim().replace(/[A-Z]+/g, (c) => c.toLowerCase());
      if (part.includes('"')) throw fail();
      i = end < 0 ? text.length : end;
    }
    if (part === '') throw fail();
    parts.push(part);
    if (i >= text.length) break;
    if (text[i] !== '.') throw fail();
    i++;
  }
  if (parts.length > 2) throw fail();
  const name = parts.length === 1 ? { schema: undefined, table: parts[0]! } : { schema: parts[0]!, table: parts[1]! };
  refuseLongName(text, 'schema', name.schema);
  refuseLongName(text, 'table', name.table);
  return name;
}

/** Caught here, not at the first write: the server would keep the first 63 bytes and write to (or create) another table. */
function refuseLongName(text: string, what: 'schema' | 'table', name: string | undefined): void {
  if (name === undefined || Buffer.byteLength(name) <= MAX_IDENTIFIER_BYTES) return;
  throw new ConnectorError(
    `table ${JSON.stringify(text)}: the ${what} name is ${Buffer.byteLength(name)} bytes long, more than PostgreSQL's ${MAX_IDENTIFIER_BYTES}; choose a shorter ${what} name`,
    { code: 'INVALID_CONFIG' },
  );
}

export function qualified(name: TableName): string {
  return name.schema === undefined ? quoteIdent(name.table) : `${quoteIdent(name.schema)}.${quoteIdent(name.table)}`;
}

/** The column type create_table gives each field type. */
export const COLUMN_TYPES: Record<FieldType, string> = {
  string: 'text',
  integer: 'bigint',
  number: 'double precision',
  decimal: 'numeric',
  boolean: 'boolean',
  timestamp: 'timestamptz',
  json: 'jsonb',
};

function bigintSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

export function jsonText(value: unknown): string {
  return JSON.stringify(value, bigintSafe) ?? 'null';
}

/** An element of a PostgreSQL array literal: always double-quoted, so commas, braces and spaces stay data. */
function arrayElement(value: unknown): string {
  if (value === null || value === undefined || (value instanceof Date && Number.isNaN(value.getTime()))) return 'NULL';
  if (Array.isArray(value)) return arrayLiteral(value);
  const text =
    typeof value === 'string' ? value : value instanceof Date ? value.toISOString() : typeof value === 'object' ? jsonText(value) : String(value);
  return `"${text.replace(/[\\"]/g, '\\$&')}"`;
}

export function arrayLiteral(values: readonly unknown[]): string {
  return `{${values.map(arrayElement).join(',')}}`;
}

/** How a value is written to a column: as text PostgreSQL parses into the column's type, or null. */
export function valueText(value: unknown, arrayColumn: boolean): string | null {
  switch (typeof value) {
    case 'string':
      return value;
    case 'number':
      return Number.isFinite(value) ? String(value) : Number.isNaN(value) ? 'NaN' : value > 0 ? 'Infinity' : '-Infinity';
    case 'bigint':
      return value.toString();
    case 'boolean':
      return value ? 't' : 'f';
    case 'object':
      if (value === null) return null;
      if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
      if (Array.isArray(value) && arrayColumn) return arrayLiteral(value);
      return jsonText(value);
    default:
      return null;
  }
}

const COPY_SPECIAL = /[\\\n\r\t]/;

/** A value in COPY's text format: backslash, tab and line breaks escaped, null as \N. */
export function copyField(text: string | null): string {
  if (text === null) return '\\N';
  if (!COPY_SPECIAL.test(text)) return text;
  return text.replace(/[\\\n\r\t]/g, (c) => (c === '\\' ? '\\\\' : c === '\n' ? '\\n' : c === '\r' ? '\\r' : '\\t'));
}
