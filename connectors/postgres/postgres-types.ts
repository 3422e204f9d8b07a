import type { FieldDescriptor, FieldType } from '../../src/records/fields.js';
import type { PlainRecord, RowLayout } from '../../src/records/layout.js';
import type { Accessor } from '../../src/rules/compile.js';
import { exactNumber, toEpochMillis } from '../../src/rules/coerce.js';
import { asciiDigits } from '../../src/util/ascii-digits.js';

/** Type OIDs of pg_type this connector treats specially. */
export const OID = {
  bool: 16,
  int8: 20,
  int2: 21,
  int4: 23,
  oid: 26,
  json: 114,
  float4: 700,
  float8: 701,
  date: 1082,
  timestamp: 1114,
  timestamptz: 1184,
  numeric: 1700,
  jsonb: 3802,
  numericArray: 1231,
  dateArray: 1182,
  timestampArray: 1115,
  timestamptzArray: 1185,
  bytea: 17,
  point: 600,
  circle: 718,
  interval: 1186,
  byteaArray: 1001,
  pointArray: 1017,
  circleArray: 719,
  intervalArray: 1187,
} as const;

type TextParser = (text: string) => unknown;
export interface TypeParsers {
  getTypeParser(oid: number, format?: string): TextParser;
}

/**
 * An instant from PostgreSQL's text: timestamptz carries its offset; a zone-less timestamp is
 * read as UTC (the server does not say which zone it meant, and UTC is what the rules assume for
 * any zone-less timestamp). `infinity` and years past JavaScript's range stay text.
 */
function parseInstant(text: string): Date | string {
  const ms = serverTimestampMillis(text) ?? toEpochMillis(text);
  return ms === undefined ? text : new Date(ms);
}

/** Days from 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's days_from_civil). */
function daysFromCivil(year: number, month: number, day: number): number {
  const y = month <= 2 ? year - 1 : year;
  const era = Math.floor(y / 400);
  const yoe = y - era * 400;
  const doy = Math.floor((153 * (month + (month > 2 ? -3 : 9)) + 2) / 5) + day - 1;
  const doe = yoe * 365 + Math.floor(yoe / 4) - Math.floor(yoe / 100) + doy;
  return era * 146_097 + doe - 719_468;
}

/**
 * The server's own timestamp text (DateStyle ISO), `2026-11-24 08:00:00.123456+01` or without
 * zone, read digit by digit: the general ISO reader's regular expression cost a fifth of the time
 * of reading a query with one timestamp column. Anything else (BC years, `infinity`, another
 * DateStyle) is left to the general reader.
 */
export function serverTimestampMillis(s: string): number | undefined {
  const n = s.length;
  if (n < 19 || s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || s.charCodeAt(10) !== 32 || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) return undefined;
  const year = asciiDigits(s, 0, 4);
  const month = asciiDigits(s, 5, 2);
  const day = asciiDigits(s, 8, 2);
  const hour = asciiDigits(s, 11, 2);
  const minute = asciiDigits(s, 14, 2);
  const second = asciiDigits(s, 17, 2);
  if ((year | month | day | hour | minute | second) < 0 || month < 1 || month > 12 || day < 1 || day > 31 || hour > 24 || minute > 59 || second > 60) return undefined;
  let i = 19;
  let millis = 0;
  if (i < n && s.charCodeAt(i) === 46) {
    let scale = 100;
    for (i++; i < n; i++) {
      const d = s.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      millis += d * scale;
      scale /= 10;
    }
    millis = Math.floor(millis);
  }
  let offset = 0;
  if (i < n) {
    const sign = s.charCodeAt(i);
    if (sign !== 43 && sign !== 45) return undefined;
    const zh = asciiDigits(s, i + 1, 2);
    let zm = 0;
    let zs = 0;
    let j = i + 3;
    if (j < n && s.charCodeAt(j) === 58) (zm = asciiDigits(s, j + 1, 2)), (j += 3);
    if (j < n && s.charCodeAt(j) === 58) (zs = asciiDigits(s, j + 1, 2)), (j += 3);
    if (zh < 0 || zm < 0 || zs < 0 || j !== n) return undefined;
    offset = (sign === 45 ? -1 : 1) * ((zh * 60 + zm) * 60 + zs) * 1000;
  }
  return daysFromCivil(year, month, day) * 86_400_000 + ((hour * 60 + minute) * 60 + second) * 1000 + millis - offset;
}

/**
 * pg's parsers, except where they would lose exactness or guess a zone: numeric (and numeric[])
 * stays text, so 12345678901234567890.123 is never rounded through a double (int8 is text in pg
 * already); timestamps become instants read as above; a date stays `YYYY-MM-DD` text rather than
 * local midnight.
 */
export function typeParsers(base: TypeParsers): TypeParsers {
  const identity: TextParser = (text) => text;
  const parseArray = base.getTypeParser(1009) as TextParser; // text[]: a PostgreSQL array literal into a list of strings
  const overrides = new Map<number, TextParser>([
    [OID.numeric, identity],
    [OID.date, identity],
    [OID.timestamp, parseInstant],
    [OID.timestamptz, parseInstant],
    [OID.numericArray, parseArray],
    [OID.dateArray, parseArray],
    [OID.timestampArray, (text) => (parseArray(text) as (string | null)[]).map((t) => (t === null ? null : parseInstant(t)))],
    [OID.timestamptzArray, (text) => (parseArray(text) as (string | null)[]).map((t) => (t === null ? null : parseInstant(t)))],
    // pg would make a Buffer of bytea and objects of interval, point and circle, which export as
    // JSON no column of that type takes back: the server's own text (`\xdeadbeef`, `1 day 02:03:04`) is kept.
    [OID.bytea, identity],
    [OID.interval, identity],
    [OID.point, identity],
    [OID.circle, identity],
    [OID.byteaArray, parseArray],
    [OID.intervalArray, parseArray],
    [OID.pointArray, parseArray],
    [OID.circleArray, parseArray],
  ]);
  return {
    getTypeParser(oid, format) {
      if (format === 'binary') return base.getTypeParser(oid, format);
      return overrides.get(oid) ?? base.getTypeParser(oid, format);
    },
  };
}

/** The field type a result column's PostgreSQL type comes through as. Arrays and json are `json`. */
export function fieldTypeOf(oid: number, arrayOids: ReadonlySet<number>): FieldType {
  switch (oid) {
    case OID.int2:
    case OID.int4:
    case OID.oid:
      return 'integer';
    case OID.int8:
    case OID.numeric:
      return 'decimal';
    case OID.float4:
    case OID.float8:
      return 'number';
    case OID.bool:
      return 'boolean';
    case OID.timestamp:
    case OID.timestamptz:
      return 'timestamp';
    case OID.json:
    case OID.jsonb:
      return 'json';
    default:
      return arrayOids.has(oid) ? 'json' : 'string';
  }
}

/** Array type OIDs of the built-in types (pg_type.typarray), so an array column is described as a list. */
export const BUILTIN_ARRAY_OIDS: ReadonlySet<number> = new Set([
  1000, 1001, 1002, 1003, 1005, 1006, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 1015, 1016, 1017, 1018, 1019, 1020, 1021, 1022,
  1027, 1028, 1034, 1040, 1041, 1115, 1182, 1183, 1185, 1187, 1231, 1263, 1270, 2201, 2949, 2951, 3221, 3643, 3644, 3645, 3807, 3905,
  3907, 3909, 3911, 3913, 3927, 4073, 4090, 199, 143, 271, 629, 651, 719, 775, 791, 1561, 1563,
]);

/**
 * Rows as pg returns them in array mode: one array per row, a column read by position, and an
 * object built only for a row that matched. A dotted field reaches into a json/jsonb column
 * (`payload.level`); a column whose own name holds the dot wins.
 */
export class PostgresRowLayout implements RowLayout {
  readonly key: string;
  readonly columns: readonly string[];
  readonly #index = new Map<string, number>();
  /** numeric and bigint columns: exported as JSON numbers when that rounds nothing, else as their text. */
  readonly #decimal: readonly boolean[];

  constructor(readonly fields: readonly FieldDescriptor[]) {
    this.columns = fields.map((f) => f.name);
    this.columns.forEach((name, i) => {
      if (!this.#index.has(name)) this.#index.set(name, i);
    });
    this.#decimal = fields.map((f) => f.type === 'decimal');
    this.key = `postgres:${JSON.stringify(fields)}`;
  }

  accessor(field: string): Accessor {
    const direct = this.#index.get(field);
    if (direct !== undefined) return (row: unknown[]) => row[direct];
    const dot = this.#longestColumnPrefix(field);
    if (dot === undefined) return () => undefined;
    const { index, path } = dot;
    return (row: unknown[]) => {
      let value: unknown = row[index];
      for (const part of path) {
        if (value === null || typeof value !== 'object' || !Object.hasOwn(value, part)) return undefined;
        value = (value as PlainRecord)[part];
      }
      return value;
    };
  }

  /** For `a.b.c`: the column `a.b` if there is one, else `a`, with the rest as the path into it. */
  #longestColumnPrefix(field: string): { index: number; path: string[] } | undefined {
    const parts = field.split('.');
    for (let cut = parts.length - 1; cut >= 1; cut--) {
      const index = this.#index.get(parts.slice(0, cut).join('.'));
      if (index !== undefined) return { index, path: parts.slice(cut) };
    }
    return undefined;
  }

  toRecord(row: unknown): PlainRecord {
    const values = row as readonly unknown[];
    const record: PlainRecord = {};
    for (let i = 0; i < this.columns.length; i++) {
      const name = this.columns[i]!;
      let value = values[i] ?? null;
      if (this.#decimal[i] && typeof value === 'string') value = exactNumber(value) ?? value;
      // A column named "__proto__" must become a field, not the record's prototype.
      if (name === '__proto__') Object.defineProperty(record, name, { value, writable: true, enumerable: true, configurable: true });
      else record[name] = value;
    }
    return record;
  }
}

export function descriptorsOf(columns: readonly string[], oids: readonly number[]): FieldDescriptor[] {
  return columns.map((name, i) => ({ name, type: fieldTypeOf(oids[i]!, BUILTIN_ARRAY_OIDS), nullable: true }));
}
