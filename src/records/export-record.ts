import type { MatchBatch } from '../../connectors/types.js';
import { ColumnLayout, type ColumnType, type PlainRecord } from './layout.js';
import { inferFields, withMetadata, type FieldDescriptor, type FieldType } from './fields.js';

/** The fields every exported record carries, unless a target sets include_metadata: false. */
export const METADATA_FIELDS = ['_rule', '_datasource', '_run_id', '_matched_at'] as const;

/**
 * The batch with other rows (a slice, the undelivered ones). Built field by field: spreading a
 * delivery batch would compute its idempotency key, a hash of every record, and carry it over.
 */
export function withRows(batch: MatchBatch, rows: readonly unknown[]): MatchBatch {
  return {
    rule: batch.rule,
    datasource: batch.datasource,
    runId: batch.runId,
    matchedAt: batch.matchedAt,
    layout: batch.layout,
    rows,
    ...(batch.fields ? { fields: batch.fields } : {}),
  };
}

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

const COLUMN_FIELD_TYPES: Record<ColumnType, FieldType> = { string: 'string', number: 'number', timestamp: 'timestamp', boolean: 'boolean' };

/**
 * The typed fields of the records a target receives: what the source declared (CSV `columns:`,
 * a database's result metadata), else inferred from the records; then the metadata fields.
 */
export function exportFields(batch: MatchBatch, includeMetadata: boolean): FieldDescriptor[] {
  return withMetadata(sourceFields(batch), includeMetadata);
}

function sourceFields(batch: MatchBatch): readonly FieldDescriptor[] {
  if (batch.fields) return batch.fields;
  const { layout } = batch;
  if (layout instanceof ColumnLayout) {
    return layout.columns.map((name, i) => ({ name, type: COLUMN_FIELD_TYPES[layout.types[i]!] ?? 'string', nullable: true }));
  }
  return inferFields(batch.rows.map((row) => layout.toRecord(row)));
}
