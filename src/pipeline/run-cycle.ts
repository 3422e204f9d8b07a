import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import type { MatchBatch } from '../../connectors/types.js';
import { TargetQueue } from '../delivery/target-queue.js';
import { describeError, serializeError } from '../errors.js';
import type { RecordBatch } from '../records/layout.js';
import { isAbsent } from '../rules/coerce.js';
import { explain, firstUndecidedLeaf } from '../rules/compile.js';
import type { CycleRule, EvaluationContext, Rule } from '../rules/rule.js';
import { deliveryPolicyFor, endpointError, recreateFailedEndpoints, type Runtime } from './runtime.js';
import { emptyRuleStats, type CycleReport, type EndpointStatus, type RuleStats } from './stats.js';

/** How many undecidable records per rule and cycle are shown in the debug log. */
const INVALID_SAMPLES = 5;

export interface CycleOptions {
  /** Aborting stops reading and cancels the targets' I/O (a second Ctrl-C, a shutdown deadline). */
  readonly signal?: AbortSignal;
  /** Fixed "now" for time windows (rule tests); default: the clock at cycle start. */
  readonly now?: number;
  /** Called once the cycle's report exists: its counters are live, for a progress display. */
  readonly onStart?: (report: CycleReport) => void;
}

/** A sortable, unique id for one cycle: 20261124T143000Z-9f3a. */
export function newRunId(at: Date): string {
  return `${at.toISOString().replace(/[-:]/g, '').replace(/\.\d+/, '')}-${randomBytes(2).toString('hex')}`;
}

/**
 * One cycle: every datasource read in parallel (bounded by settings.concurrency), each batch
 * evaluated by the rules that read that datasource, each match handed to its rule's targets
 * (which gather, write and retry as their delivery policy says), then the rules' end-of-cycle
 * step, then every target finished. A failing datasource or target is reported and the rest go on.
 */
export async function runCycle(runtime: Runtime, options: CycleOptions = {}): Promise<CycleReport> {
  const { config, log } = runtime;
  const started = new Date();
  const signal = options.signal ?? new AbortController().signal;
  const ctx: EvaluationContext = { now: options.now ?? started.getTime() };
  config.clock.now = ctx.now;
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
  await recreateFailedEndpoints(runtime, signal);
  const cycle = new Cycle(runtime, report, signal, ctx);
  const limit = pLimit(config.settings.concurrency);
  await Promise.all([...runtime.sources.keys()].map((name) => limit(() => cycle.readDatasource(name))));
  await cycle.endRules();
  await cycle.finishTargets();
  report.durationMs = Date.now() - started.getTime();
  log.debug({ run_id: report.runId, duration_ms: report.durationMs }, 'cycle finished');
  return report;
}

class Cycle {
  readonly #queues = new Map<string, TargetQueue>();
  readonly #invalidSamples = new Map<string, number>();
  readonly #rules: readonly CycleRule[];

  constructor(
    private readonly runtime: Runtime,
    private readonly report: CycleReport,
    private readonly signal: AbortSignal,
    private readonly ctx: EvaluationContext,
  ) {
    this.#rules = runtime.config.rules.filter((r) => r.enabled);
    for (const [name, endpoint] of runtime.sinks) {
      if (!endpoint.ok) {
        report.targets.set(name, { ok: false, records: 0, error: endpointError(endpoint) });
        this.logFailure({ target: name, type: endpoint.type }, endpoint.error, 'export target cannot be created; it is tried again next cycle');
        continue;
      }
      const config = runtime.config.targets[name]!;
      const log = runtime.log.child({ target: name });
      const queue = new TargetQueue(name, endpoint.value, deliveryPolicyFor(config), { signal, log }, {
        exported: (rule, count) => (this.report.rules.get(rule)!.exported += count),
        failed: (rule, count) => (this.report.rules.get(rule)!.failed += count),
      });
      this.#queues.set(name, queue);
      report.targets.set(name, { ok: true, records: 0 });
    }
  }

  async readDatasource(name: string): Promise<void> {
    const endpoint = this.runtime.sources.get(name)!;
    const status: EndpointStatus = { ok: true, records: 0 };
    this.report.datasources.set(name, status);
    const rules = this.#rules.filter((r) => r.datasources.includes(name));
    const log = this.runtime.log.child({ datasource: name });
    if (!endpoint.ok) {
      Object.assign(status, { ok: false, error: endpointError(endpoint) });
      this.logFailure({ datasource: name, type: endpoint.type }, endpoint.error, 'datasource cannot be created; it is tried again next cycle');
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
      // The rows read before the failure were evaluated and delivered: the count keeps them.
      Object.assign(status, { ok: false, error: describeError(err) });
      this.logFailure({ datasource: name, type: endpoint.type }, err, 'datasource failed; the other datasources go on');
    }
  }

  /** All rules of a datasource over one batch; the next batch is read once every target has taken this one's matches. */
  private async evaluate(datasource: string, batch: RecordBatch, rules: readonly CycleRule[]): Promise<void> {
    const matchedAt = new Date().toISOString();
    const deliveries: Promise<void>[] = [];
    for (const rule of rules) {
      const stats = this.report.rules.get(rule.name)!;
      const outcome = rule.evaluate(batch, this.ctx);
      stats.read += batch.rows.length;
      stats.matched += outcome.matched.length;
      stats.invalid += outcome.invalid;
      for (const row of outcome.invalidRows) this.sampleInvalid(rule, datasource, batch, row);
      if (outcome.matched.length === 0) continue;
      const match = this.matchBatch(rule, datasource, { layout: batch.layout, rows: outcome.matched, ...(batch.fields ? { fields: batch.fields } : {}) }, matchedAt);
      this.deliver(rule, match, stats, deliveries);
    }
    await Promise.all(deliveries);
  }

  /** The rules' end-of-cycle step: what aggregate and stateful rules conclude once every batch has been seen. */
  async endRules(): Promise<void> {
    if (this.signal.aborted) return;
    const matchedAt = new Date().toISOString();
    const deliveries: Promise<void>[] = [];
    for (const rule of this.#rules) {
      const stats = this.report.rules.get(rule.name)!;
      for (const { datasource, batch } of rule.endCycle(this.ctx)) {
        stats.matched += batch.rows.length;
        this.deliver(rule, this.matchBatch(rule, datasource, batch, matchedAt), stats, deliveries);
      }
    }
    await Promise.all(deliveries);
  }

  private matchBatch(rule: CycleRule, datasource: string, batch: RecordBatch, matchedAt: string): MatchBatch {
    return { rule: rule.name, datasource, runId: this.report.runId, matchedAt, ...batch };
  }

  private deliver(rule: CycleRule, match: MatchBatch, stats: RuleStats, deliveries: Promise<void>[]): void {
    for (const target of rule.targets) {
      const queue = this.#queues.get(target);
      if (queue) deliveries.push(queue.add(match));
      else stats.failed += match.rows.length;
    }
  }

  private sampleInvalid(rule: CycleRule, datasource: string, batch: RecordBatch, row: unknown): void {
    const seen = this.#invalidSamples.get(rule.name) ?? 0;
    if (seen >= INVALID_SAMPLES || !this.runtime.log.isLevelEnabled('debug') || !('condition' in rule)) return;
    this.#invalidSamples.set(rule.name, seen + 1);
    const leaf = firstUndecidedLeaf(explain((rule as Rule).condition, (f) => batch.layout.accessor(f), row));
    this.runtime.log.debug(
      { rule: rule.name, datasource, field: leaf?.field, operator: leaf?.operator, value: leaf?.actual ?? null },
      isAbsent(leaf?.actual) ? 'record lacks a field the rule needs; not matched' : 'value cannot be compared; not matched',
    );
  }

  /**
   * Ends the cycle for every target: publishes (atomic) or flushes (per-write) what they took, or,
   * when the cycle was cancelled, stops them and discards what an atomic target had not published.
   */
  async finishTargets(): Promise<void> {
    await Promise.all(
      [...this.#queues].map(async ([name, queue]) => {
        await (this.signal.aborted ? queue.cancel() : queue.finish());
        this.report.targets.set(name, queue.status());
      }),
    );
    this.report.cancelled = this.signal.aborted;
  }

  private logFailure(fields: Record<string, string>, error: unknown, message: string): void {
    this.runtime.log.error({ ...fields, err: serializeError(error) }, message);
  }
}
