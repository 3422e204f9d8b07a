import type { MatchBatch } from '../../connectors/types.js';
import { METADATA_FIELDS, metadataOf } from '../records/export-record.js';
import { ColumnLayout, type RowLayout } from '../records/layout.js';

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
        else out += keys[k] + jsonValue(converters[k]!(cell));
      }
      return out;
    };
  }
  return (row) => {
    const record = layout.toRecord(row);
    if (dropMetadataNames && METADATA_FIELDS.some((f) => Object.hasOwn(record, f))) {
      const copy = { ...record };
      for (const f of METADATA_FIELDS) delete copy[f];
      return jsonValue(copy).slice(1, -1);
    }
    return jsonValue(record).slice(1, -1);
  };
}

const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/** A string as JSON; most CSV cells need no escaping, and skipping JSON.stringify for them is measurably faster. */
export function jsonString(text: string): string {
  return NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : '"' + text + '"';
}

/**
 * A Date as ISO text, or null for an invalid one (new Date('garbage')), which JSON writes as
 * null too: toISOString would throw and fail the whole export for one bad value.
 */
export function dateText(date: Date): string | null {
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** JSON of any record value: big integers (bigint) as exact numbers, never rounded, never a thrown TypeError. */
export function jsonValue(value: unknown): string {
  try {
    return JSON.stringify(value) ?? 'null';
  } catch (err) {
    if (!(err instanceof TypeError)) throw err;
    return JSON.stringify(value, (_k, v) => (typeof v === 'bigint' ? `\u0000bigint:${v}` : v)).replace(/"\\u0000bigint:(-?\d+)"/g, '$1');
  }
}
