import type { MatchBatch } from '../../connectors/types.js';
import { exportColumns, exportRecords } from '../records/export-record.js';
import { dateText, jsonValue, OUTPUT_PIECE } from './ndjson.js';

/** One CSV cell as RFC 4180 writes it: quoted when it holds the delimiter, a quote, a line break or edge spaces. */
export function csvCell(value: unknown, delimiter = ','): string {
  if (value === null || value === undefined) return '';
  const text =
    typeof value === 'string'
      ? value
      : value instanceof Date
        ? (dateText(value) ?? '')
        : typeof value === 'object'
          ? jsonValue(value)
          : String(value);
  const needsQuotes =
    text.includes(delimiter) ||
    text.includes('"') ||
    text.includes('\n') ||
    text.includes('\r') ||
    (text.length > 0 && (text[0] === ' ' || text[text.length - 1] === ' '));
  return needsQuotes ? '"' + text.replace(/"/g, '""') + '"' : text;
}

export function csvLine(values: readonly unknown[], delimiter = ','): string {
  const line = values.map((v) => csvCell(v, delimiter)).join(delimiter);
  // A one-column row holding null would be an empty line, which readers skip: quote it so the row stays.
  return (line === '' && values.length > 0 ? '""' : line) + '\n';
}

/**
 * CSV for a stream of batches whose records may differ in shape (sparse JSON objects). The
 * header is the union of the columns seen, in order of first appearance; a record lacking a
 * column gets an empty cell (null). A column that first appears after rows were written is
 * added at the end: those earlier rows are then short, and `grew` tells the writer to pad them
 * (see padCsvRows) before the file becomes visible.
 */
export class CsvEncoder {
  #columns: string[] | undefined;
  #known = new Set<string>();
  #wroteRows = false;
  /** The header gained columns after rows had been written with fewer. */
  grew = false;

  constructor(private readonly includeMetadata: boolean) {}

  get columns(): readonly string[] | undefined {
    return this.#columns;
  }

  /** Appending to a file that has a header already: continue with its columns. */
  continueFrom(columns: readonly string[]): void {
    this.#columns = [...columns];
    this.#known = new Set(columns);
    this.#wroteRows = true;
  }

  /** The batch as text pieces, the header first if none was written. */
  encode(batch: MatchBatch): string[] {
    const pieces: string[] = [];
    let out = '';
    const columns = exportColumns(batch, this.includeMetadata);
    if (this.#columns === undefined) {
      this.#columns = [...columns];
      this.#known = new Set(columns);
      out += csvLine(this.#columns);
    } else {
      for (const c of columns) {
        if (this.#known.has(c)) continue;
        this.#known.add(c);
        this.#columns.push(c);
        if (this.#wroteRows) this.grew = true;
      }
    }
    const header = this.#columns;
    for (const record of exportRecords(batch, this.includeMetadata)) {
      out += csvLine(header.map((c) => (Object.hasOwn(record, c) ? record[c] : null)));
      if (out.length >= OUTPUT_PIECE) {
        pieces.push(out);
        out = '';
      }
    }
    this.#wroteRows ||= batch.rows.length > 0;
    if (out.length > 0) pieces.push(out);
    return pieces;
  }
}
