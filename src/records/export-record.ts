import type { MatchBatch } from '../../connectors/types.js';
import { ColumnLayout, type PlainRecord, type RowLayout } from './layout.js';

/** The fields every exported record carries, unless a target sets include_metadata: false. */
export const METADATA_FIELDS = ['_rule', '_datasource', '_run_id', '_matched_at'] as const;

export function metadataOf(batch: MatchBatch): PlainRecord {
  return { _rule: batch.rule, _datasource: batch.datasource, _run_id: batch.runId, _matched_at: batch.matchedAt };
}

/** The batch's rows as plain records; metadata fields replace source fields of the same name. */
export function exportRecords(batch: MatchBatch, includeMetadata: boolean): PlainRecord[] {
  const { layout, rows } = batch;
  if (!includeMetadata) return rows.map((row) => layout.toRecord(row));
  const meta = metadataOf(batch);
  return rows.map((row) => ({ ...layout.toRecord(row), ...meta }));
}

/** Field names in export order: the source's columns (when known), then the metadata. */
export function exportColumns(batch: MatchBatch, includeMetadata: boolean): string[] {
  const source = batch.layout.columns ?? unionOfKeys(batch);
  const meta: readonly string[] = includeMetadata ? METADATA_FIELDS : [];
  return [...source.filter((c) => !meta.includes(c)), ...meta];
}

/** Every field of object rows, in order of first appearance: one row's keys would drop the others'. */
function unionOfKeys(batch: MatchBatch): string[] {
  const keys = new Set<string>();
  for (const row of batch.rows) for (const key of Object.keys(batch.layout.toRecord(row))) keys.add(key);
  return [...keys];
}

/**
 * Output is cut into pieces of about this size. A string over ~128 kB lands in V8's large-object
 * space, which only a full collection frees: on a large file that made the heap, and RSS, grow
 * with the input. Pieces this size die young and cheaply.
 */
export const OUTPUT_PIECE = 64 * 1024;

/**
 * NDJSON lines for a batch, in pieces of about OUTPUT_PIECE characters. For columnar rows the
 * JSON is assembled from pre-escaped keys and the metadata suffix is built once per batch, so a
 * matched row costs one string per value.
 */
export function toNdjsonPieces(batch: MatchBatch, includeMetadata: boolean): string[] {
  const metaJson = includeMetadata ? JSON.stringify(metadataOf(batch)).slice(1, -1) : '';
  const line = lineWriter(batch.layout, includeMetadata);
  const pieces: string[] = [];
  let out = '';
  for (const row of batch.rows) {
    const fields = line(row);
    out += '{' + fields + (metaJson && fields ? ',' : '') + metaJson + '}\n';
    if (out.length >= OUTPUT_PIECE) {
      pieces.push(out);
      out = '';
    }
  }
  if (out.length > 0) pieces.push(out);
  return pieces;
}

type LineWriter = (row: unknown) => string;
const lineWriters = new WeakMap<RowLayout, LineWriter[]>();

function lineWriter(layout: RowLayout, includeMetadata: boolean): LineWriter {
  let cached = lineWriters.get(layout);
  if (!cached) {
    cached = [compileLineWriter(layout, false), compileLineWriter(layout, true)];
    lineWriters.set(layout, cached);
  }
  return cached[includeMetadata ? 1 : 0]!;
}

/** `"a":1,"b":"x"` for one row, without braces; metadata-named source fields are left out when metadata follows. */
function compileLineWriter(layout: RowLayout, dropMetadataNames: boolean): LineWriter {
  const skip = (name: string) => dropMetadataNames && (METADATA_FIELDS as readonly string[]).includes(name);
  if (layout instanceof ColumnLayout) {
    const keep = layout.columns.map((name, i) => [name, i] as const).filter(([name]) => !skip(name));
    const keys = keep.map(([name], k) => (k === 0 ? '' : ',') + JSON.stringify(name) + ':');
    const positions = keep.map(([, i]) => i);
    const converters = positions.map((i) => layout.converters[i]!);
    const untyped = positions.map((i) => layout.types[i] === 'string');
    return (row) => {
      const cells = row as readonly string[];
      let out = '';
      for (let k = 0; k < positions.length; k++) {
        const cell = cells[positions[k]!];
        if (cell === undefined || cell === '') out += keys[k] + 'null';
        else if (untyped[k]) out += keys[k] + jsonString(cell);
        else out += keys[k] + JSON.stringify(converters[k]!(cell));
      }
      return out;
    };
  }
  return (row) => {
    const record = layout.toRecord(row);
    if (dropMetadataNames && METADATA_FIELDS.some((f) => f in record)) {
      const copy = { ...record };
      for (const f of METADATA_FIELDS) delete copy[f];
      return JSON.stringify(copy).slice(1, -1);
    }
    return JSON.stringify(record).slice(1, -1);
  };
}

const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON; most CSV cells need no escaping, and skipping JSON.stringify for them is measurably faster. */
function jsonString(text: string): string {
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : '"' + text + '"';
}

/** One CSV cell as RFC 4180 writes it: quoted when it holds the delimiter, a quote, a line break or edge spaces. */
export function csvCell(value: unknown, delimiter = ','): string {
  if (value === null || value === undefined) return '';
  const text =
    typeof value === 'string'
      ? value
      : value instanceof Date
        ? value.toISOString()
        : typeof value === 'object'
          ? JSON.stringify(value)
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
  return values.map((v) => csvCell(v, delimiter)).join(delimiter) + '\n';
}
