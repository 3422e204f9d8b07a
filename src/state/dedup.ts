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
 * A rule's dedup memory during one cycle. It works on the cycle's own copy of the table, which
 * becomes the remembered state only once the cycle's deliveries are done (or spooled).
 */
export class RuleDedup {
  readonly #keyFns = new Map<string, (row: unknown) => string>();
  suppressed = 0;

  constructor(
    readonly policy: DedupPolicy,
    readonly table: DedupTable,
    private readonly now: number,
  ) {}

  /** The rows to export: each key once per cycle, and only if the policy lets it alert again. */
  filter(datasource: string, layout: RowLayout, rows: readonly unknown[]): unknown[] {
    if (this.policy.realertMs === 0) return [...rows];
    const keyOf = this.keyFunction(datasource, layout);
    const kept: unknown[] = [];
    for (const row of rows) {
      const key = keyOf(row);
      const entry = this.table.get(key);
      if (entry !== undefined && !this.mayRealert(entry)) {
        // Moved last too: a key still matching is the last to be forgotten past MAX_DEDUP_KEYS_PER_RULE.
        this.table.delete(key);
        this.table.set(key, { seen: this.now, exported: entry.exported });
        this.suppressed++;
        continue;
      }
      this.table.delete(key); // re-inserted last: the Map's order is then least recently seen first
      this.table.set(key, { seen: this.now, exported: this.now });
      kept.push(row);
    }
    return kept;
  }

  /**
   * End of a cycle in which the rule saw all its records: forget what no longer needs
   * remembering. `complete` is false when a datasource failed: a key it did not see may still match.
   */
  sweep(complete: boolean): void {
    const { realertMs } = this.policy;
    for (const [key, entry] of this.table) {
      const stale = realertMs === undefined ? complete && entry.seen < this.now : this.now - entry.exported >= realertMs;
      if (stale) this.table.delete(key);
    }
    let excess = this.table.size - MAX_DEDUP_KEYS_PER_RULE;
    for (const key of this.table.keys()) {
      if (excess-- <= 0) break;
      this.table.delete(key);
    }
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
