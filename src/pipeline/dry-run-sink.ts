import type { MatchBatch, Sink } from '../../connectors/types.js';
import { exportRecords } from '../records/export-record.js';
import type { PlainRecord } from '../records/layout.js';

const SAMPLES_PER_RULE = 3;

/** Stands in for a target under --dry-run: counts what would be sent and keeps a few records to show. */
export class DryRunSink implements Sink {
  readonly delivery = 'per-write' as const;
  readonly counts = new Map<string, number>();
  readonly samples = new Map<string, PlainRecord[]>();

  constructor(
    readonly name: string,
    readonly type: string,
    private readonly includeMetadata = true,
  ) {}

  async write(batch: MatchBatch): Promise<void> {
    this.counts.set(batch.rule, (this.counts.get(batch.rule) ?? 0) + batch.rows.length);
    const kept = this.samples.get(batch.rule) ?? [];
    if (kept.length < SAMPLES_PER_RULE) {
      const take: MatchBatch = { rule: batch.rule, datasource: batch.datasource, runId: batch.runId, matchedAt: batch.matchedAt, layout: batch.layout, rows: batch.rows.slice(0, SAMPLES_PER_RULE - kept.length) };
      kept.push(...exportRecords(take, this.includeMetadata));
      this.samples.set(batch.rule, kept);
    }
  }

  async flush(): Promise<void> {}

  /** What would have been exported, for standard output. */
  describe(): string {
    const total = [...this.counts.values()].reduce((a, b) => a + b, 0);
    let out = `would export ${total} record${total === 1 ? '' : 's'} to "${this.name}" (${this.type})\n`;
    for (const [rule, count] of this.counts) {
      out += `  ${rule}: ${count}\n`;
      for (const record of this.samples.get(rule) ?? []) out += `    ${JSON.stringify(record)}\n`;
      if (count > (this.samples.get(rule)?.length ?? 0)) out += `    ...\n`;
    }
    return out;
  }
}
