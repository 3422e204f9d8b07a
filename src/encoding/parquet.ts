/**
 * Parquet for a stream of batches, written row group by row group so that a large export never
 * sits in memory whole. The schema comes from the batch's field descriptors (src/records/fields.ts):
 *
 * | field type  | Parquet column                                             |
 * | ----------- | ---------------------------------------------------------- |
 * | `integer`   | INT64                                                      |
 * | `number`    | DOUBLE                                                     |
 * | `decimal`   | UTF8 text: exact, never rounded through a double           |
 * | `string`    | UTF8                                                       |
 * | `boolean`   | BOOLEAN                                                    |
 * | `timestamp` | INT64 TIMESTAMP(MILLIS, adjusted to UTC)                   |
 * | `json`      | UTF8 text holding JSON (converted type JSON)               |
 *
 * Every column is OPTIONAL (nullable). A value that does not fit its field's type (text left in
 * a CSV `number` column because a double would round it, an unparseable timestamp) makes that
 * column text for the object, so nothing is lost; an integer column holding a fraction becomes
 * DOUBLE. Once an object's schema is fixed, a later batch is written into it only if each of its
 * values converts exactly (`prepareFor`); otherwise the caller starts a new object.
 *
 * A field of records that came without descriptors (a REST source's JSON) whose values are all
 * null in the object's first batch has no type yet: the first batch with a value decides it, as
 * long as no row group has been written (an all-null column holds nothing that depends on its
 * type). If a row group has to be written first, the column is text from then on.
 *
 * The writer is hyparquet-writer (chosen by measurement: docs/parquet-writers.md).
 */
import { getHeapSpaceStatistics, setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { gzipSync } from 'node:zlib';
import type { MatchBatch } from '../../connectors/types.js';
import { exportFields, metadataOf } from '../records/export-record.js';
import { widenType, type FieldType } from '../records/fields.js';
import { ColumnLayout } from '../records/layout.js';
import { toEpochMillis } from '../rules/coerce.js';
import { dateText, jsonValue } from './ndjson.js';

export type ParquetCompression = 'snappy' | 'gzip' | 'none';

/** The physical shape of a column: what its values are converted to. */
export type ParquetKind = 'INT64' | 'DOUBLE' | 'BOOLEAN' | 'STRING' | 'TIMESTAMP' | 'JSON';

export interface ParquetColumn {
  readonly name: string;
  kind: ParquetKind;
  /** No value seen yet in a field without a declared type: the first value may still decide the kind (until a row group is written). */
  open?: boolean;
}

/** A batch's values by column, as the source and the metadata give them, before conversion. */
export interface RawColumns {
  readonly rows: number;
  readonly names: readonly string[];
  readonly types: ReadonlyMap<string, FieldType>;
  readonly values: ReadonlyMap<string, readonly unknown[]>;
  /** Fields whose type was only inferred from the batch's values (records without descriptors). */
  readonly inferred: ReadonlySet<string>;
  /**
   * CSV `timestamp` columns whose every cell parsed: their epoch milliseconds (null for an empty
   * cell), read from the text once. Their `values` (the text the CSV path exports) are made only
   * if the column is not written as TIMESTAMP: parsing each cell for that text, then again for
   * the column, was a tenth of a Parquet export's time.
   */
  readonly millis: ReadonlyMap<string, readonly (number | null)[]>;
  readonly valuesLater: ReadonlyMap<string, () => readonly unknown[]>;
}

/** The values of a field as the batch exports them. */
function valuesOf(raw: RawColumns, name: string): readonly unknown[] | undefined {
  return raw.values.get(name) ?? raw.valuesLater.get(name)?.();
}

/** Converted values ready for a row group, one array per column of the object's schema. */
export interface PreparedColumns {
  readonly columns: readonly ParquetColumn[];
  readonly data: readonly unknown[][];
  readonly rows: number;
}

const PREFERRED_KIND: Record<FieldType, ParquetKind> = {
  integer: 'INT64',
  number: 'DOUBLE',
  decimal: 'STRING',
  string: 'STRING',
  boolean: 'BOOLEAN',
  timestamp: 'TIMESTAMP',
  json: 'JSON',
};

/** Values of each exported field of the batch (metadata included when asked), read once. */
export function rawColumns(batch: MatchBatch, includeMetadata: boolean): RawColumns {
  const fields = exportFields(batch, includeMetadata);
  const meta = includeMetadata ? metadataOf(batch) : {};
  const { layout, rows } = batch;
  const typesInferred = batch.fields === undefined && !(layout instanceof ColumnLayout);
  const values = new Map<string, unknown[]>();
  const millis = new Map<string, (number | null)[]>();
  const valuesLater = new Map<string, () => unknown[]>();
  const types = new Map<string, FieldType>();
  for (const field of fields) {
    types.set(field.name, field.type);
    if (Object.hasOwn(meta, field.name)) {
      values.set(field.name, new Array(rows.length).fill(meta[field.name]));
    } else if (layout instanceof ColumnLayout) {
      const index = layout.indexOf(field.name);
      const convert = layout.converters[index]!;
      const cells = rows as readonly (readonly string[])[];
      const converted = () => cells.map((row) => convert(row[index] ?? ''));
      const parsed = layout.types[index] === 'timestamp' ? millisOf(cells, index) : undefined;
      if (parsed) {
        millis.set(field.name, parsed);
        valuesLater.set(field.name, converted);
      } else {
        values.set(field.name, converted());
      }
    } else {
      values.set(
        field.name,
        rows.map((row) => {
          const record = layout.toRecord(row);
          return Object.hasOwn(record, field.name) ? record[field.name] : null;
        }),
      );
    }
  }
  const inferred = new Set(typesInferred ? fields.filter((f) => !Object.hasOwn(meta, f.name)).map((f) => f.name) : []);
  return { rows: rows.length, names: fields.map((f) => f.name), types, values, inferred, millis, valuesLater };
}

/** Epoch milliseconds of a CSV timestamp column's cells (null when empty), or undefined as soon as one does not parse. */
function millisOf(rows: readonly (readonly string[])[], index: number): (number | null)[] | undefined {
  const out = new Array<number | null>(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const text = rows[i]![index] ?? '';
    if (text === '') {
      out[i] = null;
      continue;
    }
    const ms = toEpochMillis(text);
    // Outside years 0000-9999 the text the CSV path exports is not a timestamp the column takes.
    if (ms === undefined || !(ms >= FIRST_MILLIS && ms <= LAST_MILLIS)) return undefined;
    // Whole milliseconds, as a Date keeps them: epoch text with a fraction (`1700000000.123456`).
    out[i] = Math.trunc(ms);
  }
  return out;
}

/**
 * The batches' raw columns as one: every field in order of first appearance (null where a batch
 * lacks it), each field's type widened over the batches that hold a value in it.
 */
export function mergeRaw(raws: readonly RawColumns[]): RawColumns {
  const names: string[] = [];
  const typed = new Map<string, FieldType | undefined>();
  const declaredSomewhere = new Set<string>();
  for (const raw of raws) {
    for (const name of raw.names) {
      if (!typed.has(name)) {
        names.push(name);
        typed.set(name, undefined);
      }
      if (!raw.inferred.has(name)) declaredSomewhere.add(name);
      // An inferred field with only nulls in a batch says nothing about its type.
      if (raw.inferred.has(name) && valuesOf(raw, name)!.every(isNull)) continue;
      typed.set(name, widenType(typed.get(name), raw.types.get(name)));
    }
  }
  const types = new Map(names.map((name) => [name, typed.get(name) ?? 'string'] as const));
  const valuesOfAll = (name: string) => raws.flatMap((raw) => (raw.types.has(name) ? [...valuesOf(raw, name)!] : new Array<unknown>(raw.rows).fill(null)));
  const values = new Map<string, unknown[]>();
  const millis = new Map<string, (number | null)[]>();
  const valuesLater = new Map<string, () => unknown[]>();
  for (const name of names) {
    if (raws.every((raw) => raw.millis.has(name))) {
      millis.set(name, raws.flatMap((raw) => raw.millis.get(name)!));
      valuesLater.set(name, () => valuesOfAll(name));
    } else {
      values.set(name, valuesOfAll(name));
    }
  }
  const inferred = new Set(names.filter((name) => !declaredSomewhere.has(name)));
  return { rows: raws.reduce((sum, raw) => sum + raw.rows, 0), names, types, values, inferred, millis, valuesLater };
}

/** 0000-01-01T00:00:00.000Z and 9999-12-31T23:59:59.999Z: the instants ISO text without a sign can hold. */
const FIRST_MILLIS = -62_167_219_200_000;
const LAST_MILLIS = 253_402_300_799_999;

/**
 * The schema a new object takes from its first batch: each field's preferred kind, or the
 * nearest kind that holds every value exactly (INT64 -> DOUBLE -> STRING). Given the `previous`
 * columns of an object that starts over (a batch widened them), each keeps its kind where it can.
 */
export function prepareNew(raw: RawColumns, previous: readonly ParquetColumn[] = []): PreparedColumns {
  const columns: ParquetColumn[] = [];
  const data: unknown[][] = [];
  const before = new Map(previous.map((c) => [c.name, c]));
  for (const name of raw.names) {
    if (raw.inferred.has(name) && valuesOf(raw, name)!.every(isNull)) {
      columns.push({ name, kind: 'STRING', open: true });
      data.push(new Array(raw.rows).fill(null));
      continue;
    }
    // A column that held every value so far keeps its kind if it holds these too.
    const kept = before.get(name);
    const converted = kept && !kept.open ? convertColumn(raw, name, kept.kind) : undefined;
    if (converted) {
      columns.push({ name, kind: kept!.kind });
      data.push(converted);
      continue;
    }
    const best = bestKind(raw, name);
    columns.push({ name, kind: best.kind });
    data.push(best.converted);
  }
  return { columns, data, rows: raw.rows };
}

/** The preferred kind, or the nearest that holds every value exactly (INT64 -> DOUBLE -> STRING), with the values converted. */
function bestKind(raw: RawColumns, name: string): { kind: ParquetKind; converted: unknown[] } {
  const preferred = PREFERRED_KIND[raw.types.get(name)!];
  const fallbacks: ParquetKind[] = preferred === 'INT64' ? ['INT64', 'DOUBLE', 'STRING'] : [preferred, 'STRING'];
  for (const kind of fallbacks) {
    const converted = convertColumn(raw, name, kind);
    if (converted) return { kind, converted };
  }
  // STRING holds every value.
  throw new Error('unreachable: no Parquet kind holds the values');
}

const isNull = (v: unknown) => v === null || v === undefined;

/** The field's values converted to the kind, or undefined when one cannot be held exactly. */
function convertColumn(raw: RawColumns, name: string, kind: ParquetKind): unknown[] | undefined {
  const millis = raw.millis.get(name);
  if (millis && kind === 'TIMESTAMP') return millis as unknown[];
  return convertAll(valuesOf(raw, name)!, kind);
}

/**
 * The batch converted to an existing schema, or undefined when it does not fit: a field the
 * schema lacks (with a value), or a value its column cannot hold exactly. Fields the batch lacks
 * are null. An open column (no value yet) takes its kind from this batch's values; the schema's
 * columns are changed only when the whole batch fits.
 */
export function prepareFor(columns: readonly ParquetColumn[], raw: RawColumns): PreparedColumns | undefined {
  const known = new Set(columns.map((c) => c.name));
  for (const name of raw.names) {
    if (!known.has(name) && valuesOf(raw, name)!.some((v) => v !== null && v !== undefined)) return undefined;
  }
  const data: unknown[][] = [];
  const decided: { column: ParquetColumn; kind: ParquetKind }[] = [];
  for (const column of columns) {
    if (!raw.types.has(column.name)) {
      data.push(new Array(raw.rows).fill(null));
      continue;
    }
    if (column.open && !valuesOf(raw, column.name)!.every(isNull)) {
      const { kind, converted } = bestKind(raw, column.name);
      decided.push({ column, kind });
      data.push(converted);
      continue;
    }
    const converted = convertColumn(raw, column.name, column.kind);
    if (!converted) return undefined;
    data.push(converted);
  }
  for (const { column, kind } of decided) {
    column.kind = kind;
    column.open = false;
  }
  return { columns, data, rows: raw.rows };
}

function convertAll(values: readonly unknown[], kind: ParquetKind): unknown[] | undefined {
  const convert = CONVERTERS[kind];
  const out = new Array<unknown>(values.length);
  // Runs of one value (the metadata columns hold one per batch, a status repeats) convert once.
  let last: unknown = undefined;
  let lastConverted: unknown = undefined;
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) {
      out[i] = null;
      continue;
    }
    // Object.is: 0 and -0 are different values (a DOUBLE keeps the sign), NaN is itself.
    if (!Object.is(v, last)) {
      lastConverted = convert(v);
      if (lastConverted === undefined) return undefined;
      last = v;
    }
    out[i] = lastConverted;
  }
  return out;
}

const INT64_MIN = -(2n ** 63n);
const INT64_MAX = 2n ** 63n - 1n;
const INTEGER_TEXT = /^[+-]?\d{1,19}$/;

/** Each converter returns the value as the column stores it, or undefined when it cannot hold it exactly. */
const CONVERTERS: Record<ParquetKind, (v: unknown) => unknown> = {
  INT64(v) {
    if (typeof v === 'number') return Number.isSafeInteger(v) ? BigInt(v) : undefined;
    if (typeof v === 'bigint') return v >= INT64_MIN && v <= INT64_MAX ? v : undefined;
    if (typeof v === 'string' && INTEGER_TEXT.test(v)) {
      const b = BigInt(v);
      return b >= INT64_MIN && b <= INT64_MAX ? b : undefined;
    }
    return undefined;
  },
  DOUBLE(v) {
    // -0 is written as 0, as JSON writes it: the writer's dictionary (a Map) cannot tell them
    // apart, and would otherwise turn every 0 after a -0 into -0.
    if (typeof v === 'number') return v === 0 ? 0 : v;
    if (typeof v === 'bigint') return v >= -(2n ** 53n) && v <= 2n ** 53n ? Number(v) : undefined;
    return undefined;
  },
  BOOLEAN(v) {
    return typeof v === 'boolean' ? v : undefined;
  },
  // Milliseconds as a number: the writer makes the INT64 when it encodes the row group, so the
  // buffered row group holds no BigInt per cell.
  TIMESTAMP(v) {
    // An invalid Date is null, as the text formats write it, not a reason to make the column text.
    if (v instanceof Date) return Number.isNaN(v.getTime()) ? null : v.getTime();
    if (typeof v === 'string') {
      const ms = toEpochMillis(v);
      // A bare number is read as epoch seconds or milliseconds by the rules, but as a column value it stays a number.
      return ms === undefined || (!looksLikeDate(v) && /^\s*[+-]?[\d.]+\s*$/.test(v)) ? undefined : ms;
    }
    return undefined;
  },
  // Any JSON value, scalars included: the writer writes each as JSON text, so the string
  // "{\"k\":1}" and the object {"k":1} stay different (a JSON string keeps its quotes). A Date or a
  // bigint past 2^53 would not come out exactly: those make the column text.
  JSON(v) {
    if (v instanceof Date) return undefined;
    if (typeof v === 'bigint') return v >= -(2n ** 53n) && v <= 2n ** 53n ? v : undefined;
    return v;
  },
  STRING(v) {
    if (typeof v === 'string') return v;
    if (v instanceof Date) return dateText(v);
    if (typeof v === 'object') return jsonValue(v);
    return String(v);
  },
};

/** `DDDD-...`: a calendar date, never a bare number (the common case, decided without a regular expression). */
function looksLikeDate(v: string): boolean {
  const c = v.charCodeAt(0);
  return v.length > 4 && c >= 48 && c <= 57 && v.charCodeAt(4) === 45;
}

const SCHEMA_ELEMENT: Record<ParquetKind, Record<string, unknown>> = {
  INT64: { type: 'INT64' },
  DOUBLE: { type: 'DOUBLE' },
  BOOLEAN: { type: 'BOOLEAN' },
  STRING: { type: 'BYTE_ARRAY', converted_type: 'UTF8', logical_type: { type: 'STRING' } },
  TIMESTAMP: { type: 'INT64', converted_type: 'TIMESTAMP_MILLIS', logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MILLIS' } },
  JSON: { type: 'BYTE_ARRAY', converted_type: 'JSON', logical_type: { type: 'JSON' } },
};

const CODECS: Record<ParquetCompression, string> = { snappy: 'SNAPPY', gzip: 'GZIP', none: 'UNCOMPRESSED' };

export interface ParquetEncoderOptions {
  readonly compression: ParquetCompression;
  /** Rows in each row group (the last may hold fewer); a group is encoded and handed on when full. */
  readonly rowGroupRows: number;
  /** Receives the file's bytes in order; the encoder waits for it (backpressure). The bytes are a view that is reused once it resolves: copy what must be kept. */
  readonly emit: (bytes: Uint8Array) => Promise<void>;
}

interface HyparquetWriter {
  write(options: { columnData: { name: string; data: unknown[] }[]; rowGroupSize: number }): void | Promise<void>;
  finish(): void | Promise<void>;
  kvMetadata: { key: string; value?: string }[] | undefined;
}

/** A larger row_group_size still grows its arrays as values come. */
const PREALLOCATED_ROWS_AT_MOST = 100_000;

/**
 * Most values (rows times columns) in one row group, whatever row_group_size says: a row group is
 * held whole while it is encoded, so its memory grows with its width as much as with its rows.
 * 20,000 records of 1,000 fields made a 1.4 GB process. At the default 20,000 rows this cuts
 * only records of more than 25 fields.
 */
export const ROW_GROUP_VALUES_AT_MOST = 1_000_000;

/** One Parquet file being written: rows are gathered into row groups, each encoded and emitted when full. */
export class ParquetEncoder {
  #columns: readonly ParquetColumn[];
  #library: typeof import('hyparquet-writer') | undefined;
  #writer: HyparquetWriter | undefined;
  #buffered: unknown[][];
  #bufferedRows = 0;
  /** Whether #buffered holds the arrays allocated once for every full row group. */
  #reusing = false;
  #rows = 0;

  private constructor(
    columns: readonly ParquetColumn[],
    private readonly options: ParquetEncoderOptions,
  ) {
    this.#columns = columns;
    // Small at first: most objects (a few alerts) never fill a row group.
    this.#buffered = columns.map(() => []);
  }

  get columns(): readonly ParquetColumn[] {
    return this.#columns;
  }

  /** Whether a row group has been written: from then on the schema is fixed. */
  get begun(): boolean {
    return this.#writer !== undefined;
  }

  /**
   * Starts the object over with another schema and every record so far (`prepared`), before
   * anything is written: a batch that did not fit the first schema widened it.
   */
  async restart(prepared: PreparedColumns): Promise<void> {
    if (this.begun) throw new Error('the Parquet schema cannot change once a row group is written');
    this.#columns = prepared.columns;
    this.#buffered = prepared.columns.map(() => []);
    this.#bufferedRows = 0;
    this.#rows = 0;
    await this.append(prepared);
  }

  /**
   * Column arrays for the row groups after the first full one, allocated once at their size and
   * reused: grown a value at a time, they were copied as they grew; and new ones for every group
   * (large objects, for V8, at 20,000 rows) stayed in the old generation as garbage until the
   * next full collection.
   */
  private reusableRowGroup(): unknown[][] {
    const size = Math.min(this.groupRows, PREALLOCATED_ROWS_AT_MOST);
    return this.columns.map(() => new Array<unknown>(size));
  }

  /** Loads the writer library on first use, so configs without Parquet never pay for it. */
  static async create(columns: readonly ParquetColumn[], options: ParquetEncoderOptions): Promise<ParquetEncoder> {
    const encoder = new ParquetEncoder(columns, options);
    encoder.#library = await import('hyparquet-writer');
    return encoder;
  }

  /**
   * The file is begun when its first row group is written, not before: until then a column with
   * no value yet may still take its kind from a later batch. From here on the schema is fixed.
   */
  private begin(): HyparquetWriter {
    for (const column of this.columns) column.open = false;
    const { ByteWriter, ParquetWriter } = this.#library!;
    const { options } = this;
    const byteWriter = new ByteWriter(64 * 1024) as InstanceType<typeof ByteWriter> & { flush(): Promise<void> };
    // Row groups leave the writer's buffer as they are written: memory holds one row group, not the file.
    // The bytes are handed over as a view of the writer's buffer, not copied: the writer awaits
    // `emit` before it writes the next row group, and the receiver copies them into its part.
    byteWriter.flush = async () => {
      await options.emit(byteWriter.getBytes());
      byteWriter.index = 0;
    };
    byteWriter.finish = () => byteWriter.flush();
    return new ParquetWriter({
      writer: byteWriter,
      schema: schemaOf(this.columns) as never,
      codec: CODECS[options.compression] as never,
      compressors: options.compression === 'gzip' ? { GZIP: (input: Uint8Array) => gzipSync(input) } : {},
      createdBy: 'threshold-processor',
    }) as unknown as HyparquetWriter;
  }

  get rows(): number {
    return this.#rows;
  }

  /** Rows in each full row group: row_group_size, fewer for wide records (ROW_GROUP_VALUES_AT_MOST). */
  get groupRows(): number {
    return Math.max(1, Math.min(this.options.rowGroupRows, Math.floor(ROW_GROUP_VALUES_AT_MOST / this.columns.length)));
  }

  /**
   * Adds the batch's rows; each row group is written as soon as it holds `rowGroupRows`, a batch
   * being split across groups, so a large batch never makes a large row group (what a row group
   * costs in memory while it is encoded is what sets the peak).
   */
  async append(prepared: PreparedColumns): Promise<void> {
    for (let from = 0; from < prepared.rows; ) {
      // A new row group of an object that has filled one: it will likely fill this one too.
      const groupRows = this.groupRows;
      if (this.#bufferedRows === 0 && this.#rows >= groupRows && !this.#reusing) {
        this.#buffered = this.reusableRowGroup();
        this.#reusing = true;
      }
      const take = Math.min(prepared.rows - from, groupRows - this.#bufferedRows);
      for (let c = 0; c < this.columns.length; c++) {
        const target = this.#buffered[c]!;
        const source = prepared.data[c]!;
        for (let i = from, at = this.#bufferedRows; i < from + take; i++, at++) target[at] = source[i];
      }
      from += take;
      this.#bufferedRows += take;
      this.#rows += take;
      if (this.#bufferedRows >= groupRows) await this.writeRowGroup();
    }
  }

  /** Writes what is buffered and the footer, with `metadata` as the file's key-value metadata. */
  async finish(metadata: Readonly<Record<string, string>>): Promise<void> {
    if (this.#bufferedRows > 0 || this.#rows === 0) await this.writeRowGroup();
    this.#writer!.kvMetadata = Object.entries(metadata).map(([key, value]) => ({ key, value }));
    await this.#writer!.finish();
  }

  private async writeRowGroup(): Promise<void> {
    const rows = this.#bufferedRows;
    const columnData = this.columns.map((column, c) => {
      const values = this.#buffered[c]!;
      values.length = rows;
      return { name: column.name, data: column.kind === 'STRING' ? utf8Interned(values) : values };
    });
    this.#bufferedRows = 0;
    this.#writer ??= this.begin();
    await this.#writer.write({ columnData, rowGroupSize: Math.max(rows, 1) });
    if (this.#reusing) {
      // Emptied, not dropped: the written values die young instead of being kept alive by the arrays until overwritten.
      for (const values of this.#buffered) values.fill(null);
    } else {
      this.#buffered = this.columns.map(() => []);
    }
    heapGuard.afterRowGroup();
  }
}

/**
 * Bounds the heap the writer's garbage can pile up in. Encoding a row group allocates a value,
 * a byte array or a BigInt per cell, and the whole row group stays reachable while it is encoded,
 * across several young-generation collections: V8 promotes that garbage to the old generation,
 * then lets the old generation grow to about four times the live heap before a full collection
 * (on a 5,000,000-record export: 25-30 MiB live, 130-140 MiB used, 273-285 MiB peak RSS). So
 * once the old generation has grown by `HEAP_GROWTH_BEFORE_COLLECTION` (or by half of what it
 * held after the last collection, when that is more), a full collection is asked for. Measured
 * on that export: peak RSS 162 MiB, about 11 % more CPU time (docs/parquet-writers.md).
 *
 * The collector is reached as test runners reach it (`--expose-gc` for a moment, to fetch `gc`
 * from a fresh context, then off again), so users need no node flag. Where it cannot be had,
 * nothing is collected early and V8 behaves as it would anyway.
 */
export const HEAP_GROWTH_BEFORE_COLLECTION = 16 * 1024 * 1024;

/**
 * A process that holds a large heap of its own (a big lookup table, many open objects) pays for
 * a full collection in proportion to it: letting the heap grow by half of what was live after the
 * last one keeps that cost a fixed share of the work, as V8's own sizing does.
 */
export function growthAllowed(liveBytes: number): number {
  return Math.max(HEAP_GROWTH_BEFORE_COLLECTION, liveBytes / 2);
}

export class HeapGuard {
  #collect: (() => void) | null | undefined;
  #baseline = 0;

  constructor(
    private readonly findCollector: () => (() => void) | null = fetchCollector,
    private readonly heapUsed: () => number = oldGenerationUsed,
  ) {}

  /** Collects when the heap has grown by the threshold since the last collection; says whether it did. */
  afterRowGroup(): boolean {
    const collect = (this.#collect ??= this.findCollector());
    if (collect === null) return false;
    const used = this.heapUsed();
    if (used - this.#baseline < growthAllowed(this.#baseline)) {
      // A collection V8 made by itself lowers the mark too.
      this.#baseline = Math.min(this.#baseline, used);
      return false;
    }
    collect();
    this.#baseline = this.heapUsed();
    return true;
  }
}

/**
 * What the old generation holds. The young generation is left out: its garbage goes at the next
 * scavenge, which costs little, and counting it (up to 16 MiB or more between scavenges) made
 * the guard collect after nearly every row group, at 40 % more CPU.
 */
function oldGenerationUsed(): number {
  let used = 0;
  for (const space of getHeapSpaceStatistics()) {
    if (!space.space_name.startsWith('new_')) used += space.space_used_size;
  }
  return used;
}

/** The engine's full collection, without a node flag; null where it cannot be had. */
export function fetchCollector(): (() => void) | null {
  const exposed = (globalThis as { gc?: () => void }).gc;
  if (typeof exposed === 'function') return exposed;
  try {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as unknown;
    return typeof gc === 'function' ? (gc as () => void) : null;
  } catch {
    return null;
  } finally {
    setFlagsFromString('--no-expose-gc');
  }
}

const heapGuard = new HeapGuard();



/**
 * Text as UTF-8 bytes, one byte array per distinct value of the row group. The writer would
 * otherwise encode every cell into its own small buffer: repeated values (a status, a sensor
 * name, the metadata columns, which hold one value per batch) then cost an allocation each,
 * and on a large export that garbage, not the data, set the peak memory.
 */
function utf8Interned(values: unknown[]): unknown[] {
  const seen = new Map<string, Uint8Array>();
  // Runs of one value (the metadata columns hold one per batch) skip the lookup.
  let last: string | undefined;
  let lastBytes: Uint8Array | undefined;
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (typeof value !== 'string') continue;
    if (value !== last) {
      lastBytes = seen.get(value);
      if (lastBytes === undefined) {
        lastBytes = Buffer.from(value, 'utf8');
        seen.set(value, lastBytes);
      }
      last = value;
    }
    values[i] = lastBytes;
  }
  return values;
}

function schemaOf(columns: readonly ParquetColumn[]): Record<string, unknown>[] {
  return [
    { name: 'root', num_children: columns.length },
    ...columns.map((c) => ({ name: c.name, repetition_type: 'OPTIONAL', ...SCHEMA_ELEMENT[c.kind] })),
  ];
}
