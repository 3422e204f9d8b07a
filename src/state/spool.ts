import type { MatchBatch } from '../../connectors/types.js';
import type { FieldDescriptor } from '../records/fields.js';
import { OBJECT_LAYOUT } from '../records/layout.js';
import { DamagedStateError } from './damaged-state-error.js';
import { rowsBytes } from '../records/batch-values.js';

/**
 * Most records one target's spool may hold. The spool is kept in memory and written whole at
 * every commit: without a cap, a per-write target that was down while a cycle matched 5,000,000
 * records held them all (2.1 GB RSS) and the commit failed with "Invalid string length", and a
 * target down for many cycles made the spool, and every commit, grow with each cycle. Past the
 * cap a cycle spools nothing more for that target: its spool stays as it was committed, and the
 * dedup memory and watermarks feeding it are not saved, so the records are read and sent again.
 */
export const SPOOL_MAX_RECORDS = 100_000;

/**
 * The same in bytes of record values, counted as batch_bytes counts them (field names included,
 * since the spool keeps records as objects). A record cap alone does not bound a spool of wide
 * records: 100,000 records of 450 fields are 45 million values, several gigabytes in memory and a
 * spool longer than V8's longest string, so the commit failed with "Invalid string length" again
 * (and with it every later commit, so every rule alerted again each cycle). Records of ordinary
 * width reach SPOOL_MAX_RECORDS first.
 */
export const SPOOL_MAX_BYTES = 64 * 1024 * 1024;

/** A batch a target could not take, as kept on disk: one NDJSON line per batch, its records as the target would have received them. */
export interface SpooledBatch {
  readonly rule: string;
  readonly datasource: string;
  readonly run_id: string;
  readonly matched_at: string;
  readonly records: readonly Record<string, unknown>[];
  readonly fields?: readonly FieldDescriptor[];
  /**
   * Why the target refused this batch for good (a 400, a constraint) while it took other records
   * in the same cycle: the batch, not the target, is at fault, so it is not sent again each
   * cycle; --replay-dead-letters sends it once it is fixed.
   */
  readonly refused?: string;
}

export function toSpooled(batch: MatchBatch, rows: readonly unknown[] = batch.rows, refused?: string): SpooledBatch {
  return {
    rule: batch.rule,
    datasource: batch.datasource,
    run_id: batch.runId,
    matched_at: batch.matchedAt,
    records: rows.map((row) => batch.layout.toRecord(row)),
    ...(batch.fields ? { fields: batch.fields } : {}),
    ...(refused !== undefined ? { refused } : {}),
  };
}

/** The batch as it goes out again: same rule, datasource, run id and match time as the first attempt, so an idempotency key is the same too. */
export function fromSpooled(spooled: SpooledBatch): MatchBatch {
  return {
    rule: spooled.rule,
    datasource: spooled.datasource,
    runId: spooled.run_id,
    matchedAt: spooled.matched_at,
    layout: OBJECT_LAYOUT,
    rows: spooled.records,
    ...(spooled.fields ? { fields: spooled.fields } : {}),
  };
}

export function spoolRecords(batches: readonly SpooledBatch[]): number {
  return batches.reduce((sum, b) => sum + b.records.length, 0);
}

/** Bytes of the spooled records' names and values, as SPOOL_MAX_BYTES counts them. */
export function spoolBytes(batches: readonly SpooledBatch[]): number {
  let total = 0;
  for (const b of batches) total += rowsBytes(b.records);
  return total;
}

export function encodeSpool(batches: readonly SpooledBatch[]): string {
  return batches.map((b) => JSON.stringify(b, (_k, v: unknown) => (typeof v === 'bigint' ? v.toString() : v)) + '\n').join('');
}

/** Parses a spool file; a line cut short by a crash mid-write cannot happen (files are replaced atomically), but one edited by hand is reported. */
export function decodeSpool(text: string, file: string): SpooledBatch[] {
  const batches: SpooledBatch[] = [];
  text.split('\n').forEach((line, i) => {
    if (line.trim() === '') return;
    let parsed: unknown;
    try {
      parsed = JSON.parse(line);
    } catch (err) {
      throw new DamagedStateError(`${file}:${i + 1}: not a JSON line (${(err as Error).message}); fix or remove the line to go on`);
    }
    const b = parsed as Partial<SpooledBatch>;
    if (typeof b.rule !== 'string' || typeof b.datasource !== 'string' || !Array.isArray(b.records)) {
      throw new DamagedStateError(`${file}:${i + 1}: not a spooled batch (needs rule, datasource and records); fix or remove the line to go on`);
    }
    batches.push({ run_id: '', matched_at: new Date(0).toISOString(), ...b } as SpooledBatch);
  });
  return batches;
}
