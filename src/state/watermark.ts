import type { RowLayout } from '../records/layout.js';
import { toEpochMillis } from '../rules/coerce.js';
import type { Accessor } from '../rules/compile.js';
import { recordDigest } from './record-key.js';

/**
 * How far a datasource has been read: the largest value of its incremental field among the
 * records processed, and the digests of the records holding exactly that value. A later read
 * processes a record when its value is greater, or equal and its digest is not listed, so
 * records that share the boundary timestamp are neither skipped nor processed twice.
 */
export interface Watermark {
  readonly field: string;
  readonly value: string | number;
  readonly atValue: readonly string[];
}

type Comparable = { readonly n: number } | { readonly s: string };

/**
 * Records at the latest value kept as rows before they are digested. Digesting only when the
 * cycle ends saves the work for ordered data, where each record is a new maximum; past this many
 * a field many records share (a date, a timestamp in whole minutes) would hold all their rows.
 */
const PENDING_ROWS = 1_000;

/**
 * Past this many records listed at the watermark's value a warning says the field is too coarse:
 * every one stays listed (a record at the value must be neither skipped nor processed twice), so
 * the state grows with them, about 20 bytes each in the state and 60 in memory.
 */
export const WATERMARK_LIST_WARNING = 10_000;

/**
 * What a field value is compared as: a number (numbers and numeric text), a time (ISO 8601 and
 * the other timestamp forms the rules accept, as epoch milliseconds), else text.
 */
export function comparable(value: unknown): Comparable | undefined {
  if (value === null || value === undefined || value === '') return undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? { n: value } : undefined;
  if (typeof value === 'bigint') return { n: Number(value) };
  if (typeof value === 'string' && /^\s*-?\d+(\.\d+)?\s*$/.test(value)) return { n: Number(value) };
  const ms = toEpochMillis(value);
  if (ms !== undefined) return { n: ms };
  return typeof value === 'string' ? { s: value } : undefined;
}

function compare(a: Comparable, b: Comparable): number {
  if ('n' in a && 'n' in b) return a.n - b.n;
  const x = 'n' in a ? String(a.n) : a.s;
  const y = 'n' in b ? String(b.n) : b.s;
  return x < y ? -1 : x > y ? 1 : 0;
}

/** Filters one datasource's records in one cycle against the committed watermark, and computes the next one. */
export class WatermarkFilter {
  readonly #accessors = new Map<string, Accessor>();
  readonly #previous: Comparable | undefined;
  readonly #previousAt: ReadonlySet<string>;
  /** The largest value so far: digests of the records at it, and those records not yet digested (digesting every row as the maximum climbs would cost more than the read). */
  #max: { raw: string | number; cmp: Comparable; at: Set<string>; pending: { layout: RowLayout; row: unknown }[] } | undefined;
  /** Records skipped as already processed. */
  skipped = 0;
  /** Records without a usable value in the field: always processed (dedup keeps them from alerting twice). */
  unordered = 0;

  constructor(
    readonly field: string,
    readonly committed: Watermark | undefined,
  ) {
    const usable = committed && committed.field === field ? committed : undefined;
    this.#previous = usable ? comparable(usable.value) : undefined;
    this.#previousAt = new Set(usable?.atValue ?? []);
    if (usable && this.#previous) this.#max = { raw: usable.value, cmp: this.#previous, at: new Set(usable.atValue), pending: [] };
  }

  /** The rows newer than the watermark; the next watermark moves as they are seen. */
  filter(layout: RowLayout, rows: readonly unknown[]): unknown[] {
    const read = this.accessor(layout);
    const kept: unknown[] = [];
    for (const row of rows) {
      const raw = read(row);
      const value = comparable(raw);
      if (value === undefined) {
        this.unordered++;
        kept.push(row);
        continue;
      }
      const sincePrevious = this.#previous ? compare(value, this.#previous) : 1;
      if (sincePrevious < 0) {
        this.skipped++;
        continue;
      }
      if (sincePrevious === 0 && this.#previousAt.has(recordDigest(layout, row))) {
        this.skipped++;
        continue;
      }
      kept.push(row);
      this.advance(raw, value, layout, row);
    }
    return kept;
  }

  /** The watermark to commit once the cycle's deliveries are done; undefined when nothing was ever seen. */
  next(): Watermark | undefined {
    if (this.#max === undefined) return undefined;
    this.digestPending();
    return { field: this.field, value: this.#max.raw, atValue: [...this.#max.at] };
  }

  private advance(raw: unknown, value: Comparable, layout: RowLayout, row: unknown): void {
    const order = this.#max ? compare(value, this.#max.cmp) : 1;
    if (order < 0) return;
    if (order > 0) {
      if (this.#max === undefined) this.#max = { raw: plainValue(raw), cmp: value, at: new Set(), pending: [] };
      else {
        // In place: with ordered data every record is a new maximum, and a new Set per record would dominate the read.
        this.#max.raw = plainValue(raw);
        this.#max.cmp = value;
        if (this.#max.at.size > 0) this.#max.at.clear();
        this.#max.pending.length = 0;
      }
    }
    const max = this.#max!;
    max.pending.push({ layout, row });
    if (max.pending.length >= PENDING_ROWS) this.digestPending();
  }

  private digestPending(): void {
    const max = this.#max!;
    for (const { layout, row } of max.pending) max.at.add(recordDigest(layout, row));
    max.pending = [];
  }

  private accessor(layout: RowLayout): Accessor {
    let read = this.#accessors.get(layout.key);
    if (read === undefined) {
      read = layout.accessor(this.field);
      this.#accessors.set(layout.key, read);
    }
    return read;
  }
}

/** A value as it can be kept in JSON and handed to a source's query. */
function plainValue(raw: unknown): string | number {
  if (typeof raw === 'number') return raw;
  if (raw instanceof Date) return raw.toISOString();
  return String(raw);
}
