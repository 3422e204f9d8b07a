import type { RowLayout } from '../records/layout.js';
import { dedupKeyOf } from './record-key.js';

/** How one rule suppresses repeated alerts. */
export interface DedupPolicy {
  /** The fields that name "the same alert" (default: every field of the record). */
  readonly fields?: readonly string[];
  /**
   * Without it: a record is exported once, then suppressed for as long as it keeps matching in
   * consecutive cycles; once a complete cycle passes without it matching, it is forgotten and a
   * later match alerts again. With it: exported at most once per window (0: never suppressed).
   */
  readonly realertMs?: number;
}

/** One remembered alert: when its key last matched, and when it was last exported. Milliseconds since 1970. */
export interface DedupEntry {
  readonly seen: number;
  readonly exported: number;
}

export type DedupTable = Map<string, DedupEntry>;

/**
 * Most keys one rule remembers. Past it the keys that matched longest ago are forgotten first
 * (they may alert once more). An entry costs about 120 bytes in memory and 50 in dedup.json.
 */
export const MAX_DEDUP_KEYS_PER_RULE = 100_000;

/**
 * Most keys a rule holds for the records one cycle matched. Within a cycle
 * every key up to this many is kept, so repeats in the same cycle (a file whose rows come twice,
 * two reads of one table) are exported once; only past it do the oldest go, and at the end of
 * the cycle MAX_DEDUP_KEYS_PER_RULE of them are remembered. Without a bound, a first run matching
 * 5,000,000 distinct records held every key (2 GB).
 */
export const MAX_CYCLE_KEYS_PER_RULE = 200_000;

/**
 * Forgetting in steps of this size keeps the cost per match constant (a Map gives up its oldest
 * key only through an iterator that walks the holes earlier deletes left).
 */
const EVICTION_STEP = MAX_CYCLE_KEYS_PER_RULE / 8;

/**
 * A rule's dedup memory during one cycle. It works on the cycle's own copy of the table, which
 * becomes the remembered state only once the cycle's deliveries are done (or spooled).
 *
 * The keys this cycle matched are kept apart from the table until `sweep`, and bounded as they
 * come: a first run over a large table can match millions of distinct records. Forgetting from
 * the table's keys instead would drop the remembered alerts still to come in this cycle, and a
 * rule matching a little more than the cap every cycle would then alert on every record, every
 * cycle.
 */
export class RuleDedup {
  readonly #keyFns = new Map<string, (row: unknown) => string>();
  /** Keys matched this cycle, least recently first; moved back into the table by `sweep`. */
  readonly #matched: DedupTable = new Map();
  /** Every key exported this cycle shares one entry (entries are never changed, only replaced). */
  readonly #exportedNow: DedupEntry;
  suppressed = 0;
  /** Keys forgotten this cycle only because the rule had more than MAX_DEDUP_KEYS_PER_RULE: they may alert again. */
  overflowed = 0;

  constructor(
    readonly policy: DedupPolicy,
    readonly table: DedupTable,
    private readonly now: number,
  ) {
    this.#exportedNow = Object.freeze({ seen: now, exported: now });
  }

  /** Keys the rule holds now: the remembered ones not matched yet this cycle, and the cycle's own. */
  get heldKeys(): number {
    return this.table.size + this.#matched.size;
  }

  /** The rows to export: each key once per cycle, and only if the policy lets it alert again. */
  filter(datasource: string, layout: RowLayout, rows: readonly unknown[]): unknown[] {
    if (this.policy.realertMs === 0) return [...rows];
    const keyOf = this.keyFunction(datasource, layout);
    const matched = this.#matched;
    const kept: unknown[] = [];
    for (const row of rows) {
      const key = keyOf(row);
      let entry = matched.get(key);
      if (entry === undefined) {
        entry = this.table.get(key);
        if (entry !== undefined) this.table.delete(key);
      } else {
        matched.delete(key); // set again below, last: a key still matching is the last to be forgotten
      }
      if (entry !== undefined && !this.mayRealert(entry)) {
        matched.set(key, entry.seen === this.now ? entry : { seen: this.now, exported: entry.exported });
        this.suppressed++;
        continue;
      }
      matched.set(key, this.#exportedNow);
      kept.push(row);
      if (matched.size > MAX_CYCLE_KEYS_PER_RULE) this.forgetOldest(matched, matched.size - (MAX_CYCLE_KEYS_PER_RULE - EVICTION_STEP));
    }
    return kept;
  }

  /**
   * End of the cycle: this cycle's keys join the table (until then they are not in it), and what
   * no longer needs remembering is forgotten. `complete` is false when a datasource failed: a key
   * it did not see may still match.
   */
  sweep(complete: boolean): void {
    // After the keys not matched this cycle: the table's order is least recently matched first.
    for (const [key, entry] of this.#matched) this.table.set(key, entry);
    this.#matched.clear();
    const { realertMs } = this.policy;
    for (const [key, entry] of this.table) {
      const stale = realertMs === undefined ? complete && entry.seen < this.now : this.now - entry.exported >= realertMs;
      if (stale) this.table.delete(key);
    }
    if (this.table.size > MAX_DEDUP_KEYS_PER_RULE) this.forgetOldest(this.table, this.table.size - MAX_DEDUP_KEYS_PER_RULE);
  }

  /** Forgets the `count` keys that matched longest ago (the Map's first ones). */
  private forgetOldest(table: DedupTable, count: number): void {
    let left = count;
    for (const key of table.keys()) {
      if (left-- <= 0) break;
      table.delete(key);
    }
    this.overflowed += count;
  }

  private mayRealert(entry: DedupEntry): boolean {
    const { realertMs } = this.policy;
    if (realertMs === undefined) return false; // still matching (or matched twice in this cycle): suppressed
    return this.now - entry.exported >= realertMs;
  }

  private keyFunction(datasource: string, layout: RowLayout): (row: unknown) => string {
    const id = `${datasource}\u0000${layout.key}`;
    let fn = this.#keyFns.get(id);
    if (fn === undefined) {
      fn = dedupKeyOf(this.policy.fields, datasource, layout);
      this.#keyFns.set(id, fn);
    }
    return fn;
  }
}
