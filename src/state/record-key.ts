import { createHash } from 'node:crypto';
import type { RowLayout } from '../records/layout.js';

/** A short, stable digest of values: 96 bits, so a collision between two live keys is not a concern. */
export function digest(values: unknown): string {
  return createHash('sha256').update(JSON.stringify(values, jsonSafe)).digest('base64url').slice(0, 16);
}

function jsonSafe(_key: string, value: unknown): unknown {
  return typeof value === 'bigint' ? value.toString() : value;
}

/** The identity of a whole record: every field, as a target would receive it. */
export function recordDigest(layout: RowLayout, row: unknown): string {
  return digest(layout.toRecord(row));
}

/** Builds the function that names a rule's record for deduplication: its datasource and its dedup_key fields (default: every field). */
export function dedupKeyOf(fields: readonly string[] | undefined, datasource: string, layout: RowLayout): (row: unknown) => string {
  if (fields === undefined) return (row) => digest([datasource, layout.toRecord(row)]);
  const accessors = fields.map((f) => layout.accessor(f));
  return (row) => digest([datasource, accessors.map((read) => normalizeKeyValue(read(row)))]);
}

/** A CSV cell and a JSON number that mean the same value make the same key ("42" and 42). */
function normalizeKeyValue(value: unknown): unknown {
  if (value === undefined) return null;
  if (typeof value === 'number' || typeof value === 'bigint') return String(value);
  // An invalid Date (pg-types gives one for a year past 275760) is null, as JSON writes it.
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? null : value.toISOString();
  return value;
}
