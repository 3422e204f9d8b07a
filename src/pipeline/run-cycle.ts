import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import type { MatchBatch, Sink } from '../../connectors/types.js';
import type { RecordBatch } from '../records/layout.js';
import { isAbsent } from '../rules/coerce.js';
import { explain, firstUndecidedLeaf } from '../rules/compile.js';
import type { Rule } from '../rules/rule.js';
import { TRUE, UNKNOWN } from '../rules/truth.js';
import type { Runtime } from './runtime.js';
import { emptyRuleStats, type CycleReport, type EndpointStatus, type RuleStats } from './stats.js';

/** How many undecidable records per rule and cycle are shown in the debug log. */
const INVALID_SAMPLES = 5;

export interface CycleOptions {
  /** Aborting stops reading early (a second Ctrl-C); a first SIGTERM lets the cycle finish instead. */
  readonly signal?: AbortSignal;
  /** Fixed "now" for time windows (rule tests); default: the clock at cycle start. */
  readonly now?: number;
  /** Called once the cycle's report exists: its counters are live while the cycle runs (the CLI's progress line reads them). */
  readonly onStart?: (report: CycleReport) => void;
}

/** A sortable, unique id for one cycle: 20261124T143000Z-9f3a. */
export function newRunId(at: Date): string {
  return `${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '')}-${randomBytes(2).toString('hex')}`;
}

/**
 * One cycle: every datasource read in parallel (bounded by settings.concurrency), each batch
 * evaluated by the rules that read that datasource, each match sent to its rule's targets,
 * then every target flushed. A failing datasource or target is reported and the rest go on.
 */
export async function runCycle(runtime: Runtime, options: CycleOptions = {}): Promise<CycleReport> {
  const { config, log } = runtime;
  const started = new Date();
  config.clock.now = options.now ?? started.getTime();
  const report: CycleReport = {
    runId: newRunId(started),
    startedAt: started.toISOString(),
    durationMs: 0,
    rules: new Map(config.rules.filter((r) => r.enabled).map((r) => [r.name, emptyRuleStats()])),
    datasources: new Map(),
    targets: new Map(),
    cancelled: false,
  };
  options.onStart?.(report);
  log.debug({ run_id: report.runId }, 'cycle started');
  const cycle = new Cycle(runtime, report, options.signal ?? new AbortController().signal);
  const limit = pLimit(config.settings.concurrency);
  await Promise.all([...runtime.sources.keys()].map((name) => limit(() => cycle.readDatasource(name))));
  await cycle.flushTargets();
  report.durationMs = Date.now() - started.getTime();
  log.debug({ run_id: report.runId, duration_ms: report.durationMs }, 'cycle finished');
  return report;
}

class Cycle {
  readonly #deliveredByTarget = new Map<string, Map<string, number>>();
  readonly #invalidSamples = new Map<string, number>();

  constructor(
    private readonly runtime: Runtime,
    private readonly report: CycleReport,
    private readonly signal: AbortSignal,
  ) {
    for (const [name, endpoint] of runtime.sinks) {
      report.targets.set(name, endpoint.ok ? { ok: true, records: 0 } : this.failure(endpoint.error));
      this.#deliveredByTarget.set(name, new Map());
      if (!endpoint.ok) this.logFailure({ target: name, type: endpoint.type }, endpoint.error, 'export target cannot be created');
    }
  }

  async readDatasource(name: string): Promise<void> {
    const endpoint = this.runtime.sources.get(name)!;
    const status: EndpointStatus = { ok: true, records: 0 };
    this.report.datasources.set(name, status);
    const rules = this.runtime.config.rules.filter((r) => r.enabled && r.datasources.includes(name));
    const log = this.runtime.log.child({ datasource: name });
    if (!endpoint.ok) {
      Object.assign(status, this.failure(endpoint.error));
      this.logFailure({ datasource: name, type: endpoint.type }, endpoint.error, 'datasource cannot be created');
      return;
    }
    try {
      const batches = endpoint.value.read({ log, batchSize: this.runtime.config.settings.batch_size, signal: this.signal });
      for await (const batch of batches) {
        status.records += batch.rows.length;
        await this.evaluate(name, batch, rules);
        if (this.signal.aborted) break;
      }
    } catch (err) {
      Object.assign(status, this.failure(err as Error));
      this.logFailure({ datasource: name, type: endpoint.type }, err as Error, 'datasource failed; the other datasources go on');
    }
  }

  /** All rules of a datasource over one batch; the next batch is read only once every target has taken this one. */
  private async evaluate(datasource: string, batch: RecordBatch, rules: readonly Rule[]): Promise<void> {
    const matchedAt = new Date().toISOString();
    const deliveries: Promise<void>[] = [];
    for (const rule of rules) {
      const stats = this.report.rules.get(rule.name)!;
      const matched = this.matchRows(rule, datasource, batch, stats);
      if (matched.length === 0) continue;
      const match: MatchBatch = { rule: rule.name, datasource, runId: this.report.runId, matchedAt, layout: batch.layout, rows: matched };
      for (const target of rule.targets) deliveries.push(this.deliver(target, match, stats));
    }
    await Promise.all(deliveries);
  }

  private matchRows(rule: Rule, datasource: string, batch: RecordBatch, stats: RuleStats): unknown[] {
    const predicate = rule.predicateFor(batch.layout);
    const { rows } = batch;
    const matched: unknown[] = [];
    let invalid = 0;
    for (let i = 0; i < rows.length; i++) {
      const outcome = predicate(rows[i]);
      if (outcome === TRUE) matched.push(rows[i]);
      else if (outcome === UNKNOWN) {
        invalid++;
        this.sampleInvalid(rule, datasource, batch, rows[i]);
      }
    }
    stats.read += rows.length;
    stats.matched += matched.length;
    stats.invalid += invalid;
    return matched;
  }

  private sampleInvalid(rule: Rule, datasource: string, batch: RecordBatch, row: unknown): void {
    const seen = this.#invalidSamples.get(rule.name) ?? 0;
    if (seen >= INVALID_SAMPLES || !this.runtime.log.isLevelEnabled('debug')) return;
    this.#invalidSamples.set(rule.name, seen + 1);
    const leaf = firstUndecidedLeaf(explain(rule.condition, (f) => batch.layout.accessor(f), row));
    this.runtime.log.debug(
      { rule: rule.name, datasource, field: leaf?.field, operator: leaf?.operator, value: leaf?.actual ?? null },
      isAbsent(leaf?.actual) ? 'record lacks a field the rule needs; not matched' : 'value cannot be compared; not matched',
    );
  }

  private async deliver(target: string, batch: MatchBatch, stats: RuleStats): Promise<void> {
    const endpoint = this.runtime.sinks.get(target)!;
    const status = this.report.targets.get(target)!;
    const count = batch.rows.length;
    if (!endpoint.ok || !status.ok) {
      stats.failed += count;
      return;
    }
    try {
      await endpoint.value.write(batch);
      stats.exported += count;
      status.records += count;
      const byRule = this.#deliveredByTarget.get(target)!;
      byRule.set(batch.rule, (byRule.get(batch.rule) ?? 0) + count);
    } catch (err) {
      stats.failed += count;
      if (!status.ok) return;
      Object.assign(status, this.failure(err as Error));
      this.logFailure({ target, type: endpoint.type, rule: batch.rule, datasource: batch.datasource }, err as Error, 'export target failed; its other records this cycle are not sent');
    }
  }

  /** Makes each target's records durable; a target that failed drops what it half-wrote, and its counts move to failed. */
  async flushTargets(): Promise<void> {
    // Decided once: a signal that arrives while files are being renamed no longer un-publishes them.
    const cancelled = this.signal.aborted;
    this.report.cancelled = cancelled;
    await Promise.all(
      [...this.runtime.sinks].map(async ([name, endpoint]) => {
        if (!endpoint.ok) return;
        const status = this.report.targets.get(name)!;
        if (!status.ok || cancelled) {
          // Failed or cancelled: what it took this cycle is discarded, so none of it counts as exported.
          await this.abortSink(endpoint.value);
          this.uncountDeliveries(name);
          return;
        }
        try {
          await endpoint.value.flush();
        } catch (err) {
          Object.assign(status, this.failure(err as Error));
          this.logFailure({ target: name, type: endpoint.type }, err as Error, 'export target failed to finish writing');
          this.uncountDeliveries(name);
        }
      }),
    );
  }

  private async abortSink(sink: Sink): Promise<void> {
    await sink.abort?.().catch((err: Error) => this.runtime.log.warn({ err: { message: err.message } }, 'discarding partial output failed'));
  }

  private uncountDeliveries(target: string): void {
    for (const [rule, count] of this.#deliveredByTarget.get(target)!) {
      const stats = this.report.rules.get(rule)!;
      stats.exported -= count;
      stats.failed += count;
    }
    this.#deliveredByTarget.get(target)!.clear();
    this.report.targets.get(target)!.records = 0;
  }

  private failure(error: Error): EndpointStatus {
    return { ok: false, records: 0, error: error.message };
  }

  private logFailure(fields: Record<string, string>, error: Error, message: string): void {
    this.runtime.log.error({ ...fields, err: { message: error.message, ...(error.name !== 'Error' ? { name: error.name } : {}) } }, message);
  }
}
