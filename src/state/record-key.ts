import { hash } from 'node:crypto';
import type { RowLayout } from '../records/layout.js';

/** A short, stable digest of values: 96 bits, so a collision between two live keys is not a concern. */
export function digest(values: unknown): string {
  return hash('sha256', jsonText(values), 'base64url').slice(0, 16);
}

/**
 * The values as JSON, BigInts as their digits. A replacer function makes JSON.stringify call back
 * for every value (it was a third of the cost of a key), so it is used only for the rare record
 * holding a BigInt, which JSON.stringify otherwise refuses. Both give the same text.
 */
function jsonText(values: unknown): string {
  try {
    return JSON.stringify(values);
  } catch (err) {
    if (err instanceof TypeError && /BigInt/i.test(err.message)) return JSON.stringify(values, jsonSafe);
    throw err;
  }
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
