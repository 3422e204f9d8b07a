import type { Accessor } from '../rules/compile.js';
import { exactNumber, toBoolean, toEpochMillis } from '../rules/coerce.js';

export type ColumnType = 'string' | 'number' | 'timestamp' | 'boolean';
export type PlainRecord = Record<string, unknown>;

/**
 * The shape of the rows in a batch. Columnar sources (CSV) hand over arrays and one layout
 * that knows each column's position, so a rule reads `row[3]` and no object is built for a row
 * that does not match. Other sources hand over objects.
 */
export interface RowLayout {
  /** Equal keys mean equal shapes: compiled predicates are cached by it. */
  readonly key: string;
  /** Column names in order, for columnar layouts. */
  readonly columns: readonly string[] | undefined;
  accessor(field: string): Accessor;
  /** The row as the record a target receives, with typed columns converted. */
  toRecord(row: unknown): PlainRecord;
}

const absent: Accessor = () => undefined;

export class ColumnLayout implements RowLayout {
  readonly key: string;
  readonly columns: readonly string[];
  readonly types: readonly ColumnType[];
  readonly converters: readonly ((text: string) => unknown)[];
  readonly #index = new Map<string, number>();
  /** Where a column named "__proto__" is, or -1: assigning that key would set the record's prototype instead. */
  readonly #protoColumn: number;

  constructor(columns: readonly string[], types: Readonly<Record<string, ColumnType>> = {}) {
    this.columns = columns;
    columns.forEach((name, i) => {
      if (!this.#index.has(name)) this.#index.set(name, i);
    });
    // Own keys only: a column named "constructor" must not find Object.prototype.constructor.
    this.types = columns.map((name) => (Object.hasOwn(types, name) ? types[name]! : 'string'));
    this.converters = this.types.map(converterFor);
    this.#protoColumn = columns.indexOf('__proto__');
    this.key = `columns:${JSON.stringify(columns)}:${JSON.stringify(types)}`;
  }

  indexOf(field: string): number {
    return this.#index.get(field) ?? -1;
  }

  accessor(field: string): Accessor {
    const i = this.indexOf(field);
    return i < 0 ? absent : (row: string[]) => row[i];
  }

  toRecord(row: unknown): PlainRecord {
    const values = row as readonly string[];
    const record: PlainRecord = {};
    const p = this.#protoColumn;
    for (let i = 0; i < this.columns.length; i++) {
      const value = this.converters[i]!(values[i] ?? '');
      if (i === p) Object.defineProperty(record, '__proto__', { value, writable: true, enumerable: true, configurable: true });
      else record[this.columns[i]!] = value;
    }
    return record;
  }
}

/**
 * How a CSV cell is exported. Empty cells are null; a typed cell that does not convert keeps
 * its text, so nothing the source held is lost: that includes a number a JSON number would
 * round, such as a 20-digit id (see exactNumber).
 */
function converterFor(type: ColumnType): (text: string) => unknown {
  switch (type) {
    case 'string':
      return (text) => (text === '' ? null : text);
    case 'number':
      return (text) => (text === '' ? null : exactNumber(text) ?? text);
    case 'boolean':
      return (text) => (text === '' ? null : toBoolean(text) ?? text);
    case 'timestamp':
      return (text) => {
        if (text === '') return null;
        const ms = toEpochMillis(text);
        return ms === undefined ? text : (isoTextOf(text) ?? new Date(ms).toISOString());
      };
  }
}

/**
 * A timestamp already written as toISOString writes it (`2026-11-24T11:59:00.000Z`, or without
 * the fraction), and known valid, is its own export text: making a Date to print it again was a
 * tenth of a hash-mode Redis export's time. Any other shape (a space, an offset, a lower-case z,
 * digits of a fraction other than three) goes through Date.
 */
function isoTextOf(text: string): string | undefined {
  const n = text.length;
  if ((n !== 20 && n !== 24) || text.charCodeAt(n - 1) !== 90 /* Z */ || !isIsoSecondsShape(text)) return undefined;
  if (n === 20) return text.slice(0, 19) + '.000Z';
  return text.charCodeAt(19) === 46 /* . */ && isDigit(text, 20) && isDigit(text, 21) && isDigit(text, 22) ? text : undefined;
}

/** `DDDD-DD-DDTDD:DD:DD` in the first 19 characters. */
function isIsoSecondsShape(text: string): boolean {
  for (let i = 0; i < 19; i++) {
    const c = text.charCodeAt(i);
    const expected = i === 4 || i === 7 ? 45 /* - */ : i === 10 ? 84 /* T */ : i === 13 || i === 16 ? 58 /* : */ : -1;
    if (expected >= 0 ? c !== expected : c < 48 || c > 57) return false;
  }
  return true;
}

function isDigit(text: string, i: number): boolean {
  const c = text.charCodeAt(i);
  return c >= 48 && c <= 57;
}

/** Rows that are plain objects (JSON from an API, rows from a database). Dotted fields reach into nested objects. */
class ObjectLayout implements RowLayout {
  readonly key = 'objects';
  readonly columns = undefined;

  accessor(field: string): Accessor {
    if (!field.includes('.')) return ownField(field);
    const parts = field.split('.');
    const direct = ownField(field);
    return (row: PlainRecord) => {
      const whole = direct(row);
      if (whole !== undefined) return whole;
      let value: unknown = row;
      for (const part of parts) {
        if (value === null || typeof value !== 'object' || !Object.hasOwn(value, part)) return undefined;
        value = (value as PlainRecord)[part];
      }
      return value;
    };
  }

  toRecord(row: unknown): PlainRecord {
    return row as PlainRecord;
  }
}

/**
 * Reads a record's own field: a record without "toString" or "constructor" has no such field,
 * whatever Object.prototype holds. Only names Object.prototype has pay for the own-key check.
 */
function ownField(field: string): Accessor {
  if (!(field in Object.prototype)) return (row: PlainRecord) => row[field];
  return (row: PlainRecord) => (Object.hasOwn(row, field) ? row[field] : undefined);
}

export const OBJECT_LAYOUT: RowLayout = new ObjectLayout();

/** A slice of a datasource's rows, all of one layout. */
export interface RecordBatch {
  readonly layout: RowLayout;
  readonly rows: readonly unknown[];
  /** The fields' types, when the source knows them (a database's result metadata). */
  readonly fields?: readonly import('./fields.js').FieldDescriptor[];
}
