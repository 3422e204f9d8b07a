import { randomBytes } from 'node:crypto';
import pLimit from 'p-limit';
import type { MatchBatch } from '../../connectors/types.js';
import { SPOOL_KEEP_BYTES, SPOOL_KEEP_LIMIT, TargetQueue } from '../delivery/target-queue.js';
import { describeError, serializeError } from '../errors.js';
import type { RecordBatch } from '../records/layout.js';
import { isAbsent } from '../rules/coerce.js';
import { explain, firstUndecidedLeaf } from '../rules/compile.js';
import type { CycleRule, EvaluationContext, Rule } from '../rules/rule.js';
import type { Logger } from '../log.js';
import { MAX_DEDUP_KEYS_PER_RULE, RuleDedup } from '../state/dedup.js';
import { fromSpooled, SPOOL_MAX_BYTES, SPOOL_MAX_RECORDS, spoolBytes, spoolRecords, toSpooled } from '../state/spool.js';
import type { StateKeeper } from '../state/state-keeper.js';
import { StateLockLostError, type ServiceState } from '../state/state-store.js';
import { WATERMARK_LIST_WARNING, WatermarkFilter } from '../state/watermark.js';
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
  /**
   * Watermarks, dedup keys and the dead-letter spool. Without it every cycle reads everything
   * and exports every match (rule tests).
   */
  readonly state?: StateKeeper;
  /** --replay-dead-letters: send the spool again and read no datasource. */
  readonly replayOnly?: boolean;
}

/**
 * Test-only: milliseconds to wait after the targets finished and before the state is committed,
 * so a test can kill the process exactly there. Never set it in production.
 */
const PAUSE_BEFORE_COMMIT_ENV = 'THRESHOLD_PROCESSOR_TEST_PAUSE_BEFORE_COMMIT_MS';

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
  const { config } = runtime;
  const started = new Date();
  const signal = options.signal ?? new AbortController().signal;
  const ctx: EvaluationContext = { now: options.now ?? started.getTime() };
  const report: CycleReport = {
    runId: newRunId(started),
    startedAt: started.toISOString(),
    durationMs: 0,
    rules: new Map(config.rules.filter((r) => r.enabled).map((r) => [r.name, emptyRuleStats()])),
    datasources: new Map(),
    targets: new Map(),
    cancelled: false,
  };
  // Every line logged for this cycle, by us or a connector, carries its run id.
  const log = runtime.log.child({ run_id: report.runId });
  options.onStart?.(report);
  log.debug('cycle started');
  await recreateFailedEndpoints(runtime, signal, log);
  const cycle = new Cycle(runtime, report, signal, ctx, log, options.state, options.replayOnly === true);
  await cycle.replaySpool();
  const limit = pLimit(config.settings.concurrency);
  if (!options.replayOnly) {
    await Promise.all([...runtime.sources.keys()].map((name) => limit(() => cycle.readDatasource(name))));
    await cycle.endRules();
  }
  await cycle.finishTargets();
  await cycle.commitState();
  if (options.state) report.spool = options.state.spoolSizes();
  report.durationMs = Date.now() - started.getTime();
  log.debug({ duration_ms: report.durationMs }, 'cycle finished');
  return report;
}

class Cycle {
  readonly #queues = new Map<string, TargetQueue>();
  readonly #invalidSamples = new Map<string, number>();
  readonly #rules: readonly CycleRule[];
  /** The cycle's copy of the service state; it becomes the remembered one at commit. */
  readonly #work: ServiceState | undefined;
  readonly #dedup = new Map<string, RuleDedup>();
  readonly #watermarks = new Map<string, WatermarkFilter>();
  /** Atomic targets whose failed cycle was too large to spool: what feeds them is not committed. */
  readonly #unspoolable: { target: string; records: number; spoolFull?: Record<string, number> }[] = [];
  /** Targets whose spool this cycle took over (replayed, or added to). */
  readonly #spoolTouched = new Set<string>();
  /** Records and bytes (SPOOL_MAX_BYTES) in each touched target's spool, as the cycle changes it. */
  readonly #spoolSizes = new Map<string, { records: number; bytes: number }>();
  /** Targets whose spool would have passed SPOOL_MAX_RECORDS this cycle, and the records not spooled. */
  readonly #spoolOverflow = new Map<string, number>();

  constructor(
    private readonly runtime: Runtime,
    private readonly report: CycleReport,
    private readonly signal: AbortSignal,
    private readonly ctx: EvaluationContext,
    private readonly log: Logger,
    private readonly state: StateKeeper | undefined,
    private readonly replayOnly = false,
  ) {
    this.#rules = runtime.config.rules.filter((r) => r.enabled);
    this.#work = state?.begin();
    for (const [name, endpoint] of runtime.sinks) {
      if (!endpoint.ok) {
        report.targets.set(name, { ok: false, records: 0, error: endpointError(endpoint) });
        this.logFailure({ target: name, type: endpoint.type }, endpoint.error, 'export target cannot be created; it is tried again next cycle');
        continue;
      }
      const config = runtime.config.targets[name]!;
      const log = this.log.child({ target: name });
      const status: EndpointStatus = { ok: true, records: 0 };
      const queue = new TargetQueue(name, endpoint.value, deliveryPolicyFor(config), { signal, log, cycle: report.runId }, {
        exported: (rule, count) => this.countDelivery(rule, name, 'exported', count),
        failed: (rule, count) => this.countDelivery(rule, name, 'failed', count),
        retried: () => (status.retries = (status.retries ?? 0) + 1),
        ...(this.spooling
          ? {
              undelivered: (batch: MatchBatch, refused?: string) => this.spool(name, batch, refused),
              unspoolable: (records: number) => void this.#unspoolable.push({ target: name, records }),
            }
          : {}),
      });
      this.#queues.set(name, queue);
      report.targets.set(name, status);
    }
  }

  /** A spool is kept when there is state to keep it in and the run may change it (not a dry run). */
  private get spooling(): boolean {
    return this.#work !== undefined && this.state?.readOnly === false;
  }

  private countDelivery(rule: string, target: string, outcome: 'exported' | 'failed', count: number): void {
    const stats = this.report.rules.get(rule);
    if (stats) stats[outcome] += count;
    const perTarget = (this.report.deliveries ??= new Map());
    const key = `${rule}\u0000${target}`;
    const entry = perTarget.get(key) ?? { rule, target, exported: 0, failed: 0 };
    entry[outcome] += count;
    perTarget.set(key, entry);
  }

  /** Keeps a batch a target could not take, to send it again next cycle. */
  private spool(target: string, batch: MatchBatch, refused?: string): void {
    const work = this.#work!;
    this.#spoolTouched.add(target);
    const count = batch.rows.length;
    const overflow = this.#spoolOverflow.get(target);
    if (overflow !== undefined) {
      this.#spoolOverflow.set(target, overflow + count);
      return;
    }
    const list = work.spool.get(target) ?? [];
    const before = this.#spoolSizes.get(target) ?? { records: spoolRecords(list), bytes: spoolBytes(list) };
    const spooled = toSpooled(batch, batch.rows, refused);
    const size = { records: before.records + count, bytes: before.bytes + spoolBytes([spooled]) };
    if (size.records > SPOOL_MAX_RECORDS || size.bytes > SPOOL_MAX_BYTES) {
      // Let go of what this cycle spooled for the target: the commit keeps its spool as it was (holdBackUnspoolable).
      this.#spoolOverflow.set(target, size.records);
      this.#spoolSizes.delete(target);
      work.spool.set(target, []);
      return;
    }
    list.push(spooled);
    work.spool.set(target, list);
    this.#spoolSizes.set(target, size);
  }

  /**
   * Start of the cycle: every batch left in a target's spool goes out again, oldest first and
   * before any new match, so a target receives its records in order. What fails again goes back
   * into the spool. A target that cannot be created this cycle keeps its spool as it is.
   */
  async replaySpool(): Promise<void> {
    if (!this.spooling) return;
    const work = this.#work!;
    await Promise.all(
      [...work.spool].map(async ([target, batches]) => {
        const queue = this.#queues.get(target);
        if (!this.runtime.sinks.has(target)) {
          this.log.warn(
            { target, batches: batches.length, spool: this.state!.store.spoolLocation(target) },
            'spooled batches wait for an export target that is no longer in the config; put it back to send them, or remove the spool to drop them',
          );
        }
        if (!queue || batches.length === 0) return;
        // Batches the target refused for good are kept as they are, and go out only when asked (--replay-dead-letters).
        const held = this.replayOnly ? [] : batches.filter((b) => b.refused !== undefined);
        const again = held.length === 0 ? batches : batches.filter((b) => b.refused === undefined);
        work.spool.set(target, held);
        this.#spoolSizes.set(target, { records: spoolRecords(held), bytes: spoolBytes(held) });
        this.#spoolTouched.add(target);
        if (held.length > 0) this.log.warn({ target, batches: held.length, records: spoolRecords(held) }, 'refused batches wait in the dead-letter spool: send them with --replay-dead-letters once fixed');
        if (again.length === 0) return;
        this.log.info({ target, batches: again.length, records: spoolRecords(again) }, 'sending the spooled batches again');
        for (const spooled of again) {
          const match = fromSpooled(spooled);
          if (!this.report.rules.has(match.rule)) this.report.rules.set(match.rule, emptyRuleStats());
          await queue.add(match);
        }
        // Before any new match: a partly filled batch of spooled records must not wait out its linger behind them.
        await queue.sendBuffered();
      }),
    );
  }

  async readDatasource(name: string): Promise<void> {
    const endpoint = this.runtime.sources.get(name)!;
    const status: EndpointStatus = { ok: true, records: 0 };
    this.report.datasources.set(name, status);
    const rules = this.#rules.filter((r) => r.datasources.includes(name));
    const log = this.log.child({ datasource: name });
    if (!endpoint.ok) {
      Object.assign(status, { ok: false, error: endpointError(endpoint) });
      this.logFailure({ datasource: name, type: endpoint.type }, endpoint.error, 'datasource cannot be created; it is tried again next cycle');
      return;
    }
    const watermark = this.watermarkFilter(name);
    const committed = watermark?.committed;
    try {
      const batches = endpoint.value.read({
        log,
        batchSize: this.runtime.config.settings.batch_size,
        signal: this.signal,
        ...(committed ? { watermark: { field: committed.field, value: committed.value } } : {}),
      });
      for await (const batch of batches) {
        status.records += batch.rows.length;
        const fresh = watermark ? { ...batch, rows: watermark.filter(batch.layout, batch.rows) } : batch;
        if (watermark) status.skipped = watermark.skipped;
        if (fresh.rows.length > 0) await this.evaluate(name, fresh, rules);
        if (this.signal.aborted) break;
      }
    } catch (err) {
      // The rows read before the failure were evaluated and delivered: the count keeps them.
      Object.assign(status, { ok: false, error: describeError(err) });
      this.logFailure({ datasource: name, type: endpoint.type }, err, 'datasource failed; the other datasources go on');
    }
  }

  /** The datasource's incremental filter, when it has `incremental` and there is state to keep the watermark in. */
  private watermarkFilter(name: string): WatermarkFilter | undefined {
    const field = this.runtime.config.incremental?.get(name);
    if (field === undefined || this.#work === undefined) return undefined;
    const filter = new WatermarkFilter(field, this.#work.watermarks.get(name));
    this.#watermarks.set(name, filter);
    return filter;
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
      const rows = this.withoutRepeats(rule, datasource, batch.layout, outcome.matched, stats);
      if (rows.length === 0) continue;
      const match = this.matchBatch(rule, datasource, { layout: batch.layout, rows, ...(batch.fields ? { fields: batch.fields } : {}) }, matchedAt);
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
        const rows = this.withoutRepeats(rule, datasource, batch.layout, batch.rows, stats);
        if (rows.length > 0) this.deliver(rule, this.matchBatch(rule, datasource, { ...batch, rows }, matchedAt), stats, deliveries);
      }
    }
    await Promise.all(deliveries);
  }

  /** The matches that are not repeats of an alert already exported (dedup_key, realert). */
  private withoutRepeats(rule: CycleRule, datasource: string, layout: RecordBatch['layout'], rows: readonly unknown[], stats: RuleStats): readonly unknown[] {
    if (this.#work === undefined || rows.length === 0) return rows;
    let dedup = this.#dedup.get(rule.name);
    if (dedup === undefined) {
      const table = this.#work.dedup.get(rule.name) ?? new Map();
      this.#work.dedup.set(rule.name, table);
      dedup = new RuleDedup(this.runtime.config.dedup?.get(rule.name) ?? {}, table, this.ctx.now);
      this.#dedup.set(rule.name, dedup);
    }
    const before = dedup.suppressed;
    const kept = dedup.filter(datasource, layout, rows);
    stats.deduplicated += dedup.suppressed - before;
    return kept;
  }

  private matchBatch(rule: CycleRule, datasource: string, batch: RecordBatch, matchedAt: string): MatchBatch {
    return { rule: rule.name, datasource, runId: this.report.runId, matchedAt, ...batch };
  }

  private deliver(rule: CycleRule, match: MatchBatch, stats: RuleStats, deliveries: Promise<void>[]): void {
    for (const target of rule.targets) {
      const queue = this.#queues.get(target);
      if (queue) deliveries.push(queue.add(match));
      else {
        this.countDelivery(rule.name, target, 'failed', match.rows.length);
        if (this.spooling) this.spool(target, match);
      }
    }
  }

  private sampleInvalid(rule: CycleRule, datasource: string, batch: RecordBatch, row: unknown): void {
    const seen = this.#invalidSamples.get(rule.name) ?? 0;
    if (seen >= INVALID_SAMPLES || !this.runtime.log.isLevelEnabled('debug') || !('condition' in rule)) return;
    this.#invalidSamples.set(rule.name, seen + 1);
    const leaf = firstUndecidedLeaf(explain((rule as Rule).condition, (f) => batch.layout.accessor(f), row, this.ctx));
    this.log.debug(
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
        const retries = this.report.targets.get(name)?.retries;
        this.report.targets.set(name, { ...queue.status(), ...(retries ? { retries } : {}) });
      }),
    );
    this.report.cancelled = this.signal.aborted;
  }

  /**
   * Makes the cycle's watermarks, dedup keys and spool the remembered state, now that every
   * target has delivered or spooled. Not after a cancelled cycle: its records are read again.
   */
  async commitState(): Promise<void> {
    const work = this.#work;
    if (work === undefined || this.state === undefined || this.report.cancelled || this.state.readOnly) return;
    this.advanceWatermarks(work);
    this.forgetStaleAlerts(work);
    this.holdBackUnspoolable(work);
    for (const target of this.#spoolTouched) if ((work.spool.get(target) ?? []).length === 0) work.spool.delete(target);
    await this.pauseForCrashTest();
    try {
      await this.state.commit(work);
      this.report.stateCommitted = true;
    } catch (err) {
      this.report.stateError = describeError(err);
      if (err instanceof StateLockLostError) this.report.stateLost = true;
      this.logFailure({ state: this.state.store.label }, err, 'cannot save the state; this cycle\'s records will be read and sent again next cycle');
    }
  }

  /**
   * An atomic target that failed with more records than the spool keeps: what would send those
   * records again stays as it was, the dedup memory of its rules and the watermarks of their
   * datasources, so the next cycle reads and sends them again. The rest of the state is saved:
   * the other rules must not alert again each cycle because one target is down.
   */
  private holdBackUnspoolable(work: ServiceState): void {
    const previous = this.state!.state;
    for (const [target, records] of this.#spoolOverflow) {
      // The spool as committed: what this cycle replayed from it and delivered goes out again next cycle.
      const kept = previous.spool.get(target);
      if (kept) work.spool.set(target, kept);
      else work.spool.delete(target);
      this.#unspoolable.push({ target, records, spoolFull: { spool_max_records: SPOOL_MAX_RECORDS, spool_max_bytes: SPOOL_MAX_BYTES, spooled: kept ? spoolRecords(kept) : 0 } });
    }
    if (this.#unspoolable.length === 0) return;
    const targets = new Set(this.#unspoolable.map((u) => u.target));
    const rules = this.#rules.filter((r) => r.targets.some((t) => targets.has(t)));
    const datasources = new Set(rules.flatMap((r) => r.datasources));
    for (const rule of rules) {
      const table = previous.dedup.get(rule.name);
      if (table) work.dedup.set(rule.name, new Map(table));
      else work.dedup.delete(rule.name);
    }
    for (const name of datasources) {
      const mark = previous.watermarks.get(name);
      if (mark) work.watermarks.set(name, mark);
      else work.watermarks.delete(name);
    }
    const heldBack = { rules: rules.map((r) => r.name), datasources: [...datasources] };
    for (const { target, records, spoolFull } of this.#unspoolable) {
      if (spoolFull) {
        this.log.warn(
          { target, records, ...spoolFull, ...heldBack },
          'the dead-letter spool of this target is full: it is kept as it was and this cycle\'s records for it are not spooled; the dedup memory of these rules and the watermarks of these datasources are not saved, so the records are read and sent again next cycle',
        );
      } else {
        this.log.warn(
          { target, records, spool_keep_limit: SPOOL_KEEP_LIMIT, spool_keep_bytes: SPOOL_KEEP_BYTES, ...heldBack },
          'too many records to spool: the dedup memory of these rules and the watermarks of these datasources are not saved, so the records are read and sent again next cycle',
        );
      }
    }
  }

  /** A datasource read to its end moves its watermark; one that failed keeps the old one (its records may not have come in order). */
  private advanceWatermarks(work: ServiceState): void {
    for (const [name, filter] of this.#watermarks) {
      const next = filter.next();
      if (!this.report.datasources.get(name)?.ok || !next) continue;
      work.watermarks.set(name, next);
      const listedBefore = filter.committed?.field === next.field && filter.committed.value === next.value ? filter.committed.atValue.length : 0;
      if (next.atValue.length > WATERMARK_LIST_WARNING && next.atValue.length > listedBefore) {
        this.log.warn(
          { datasource: name, field: next.field, value: next.value, listed: next.atValue.length },
          'many records share the incremental field\'s latest value: the watermark lists each of them so that none is skipped or processed twice, and the state grows with them; a finer field, such as a timestamp with milliseconds or a sequence number, keeps it small',
        );
      }
    }
  }

  /** Drops the dedup memory of rules no longer enabled, and the keys each rule no longer needs. */
  private forgetStaleAlerts(work: ServiceState): void {
    const enabled = new Set(this.#rules.map((r) => r.name));
    for (const rule of [...work.dedup.keys()]) if (!enabled.has(rule)) work.dedup.delete(rule);
    for (const rule of this.#rules) {
      const table = work.dedup.get(rule.name);
      if (!table) continue;
      // A key that did not match is forgotten only if the rule saw all its records this cycle.
      const complete = rule.datasources.every((d) => this.report.datasources.get(d)?.ok === true);
      const dedup = this.#dedup.get(rule.name) ?? new RuleDedup(this.runtime.config.dedup?.get(rule.name) ?? {}, table, this.ctx.now);
      dedup.sweep(complete);
      if (dedup.overflowed > 0) {
        this.log.warn(
          { rule: rule.name, forgotten: dedup.overflowed, max_keys: MAX_DEDUP_KEYS_PER_RULE },
          'the rule matched more distinct records than its dedup memory holds: the keys that matched longest ago were forgotten, and their records may alert again (set dedup_key to name fewer, broader alerts)',
        );
      }
    }
  }

  private async pauseForCrashTest(): Promise<void> {
    const pause = Number(process.env[PAUSE_BEFORE_COMMIT_ENV] ?? 0);
    if (!(pause > 0)) return;
    this.log.warn({ pause_ms: pause }, 'test hook: pausing before the state commit');
    await new Promise((resolve) => setTimeout(resolve, pause));
  }

  private logFailure(fields: Record<string, string>, error: unknown, message: string): void {
    this.log.error({ ...fields, err: serializeError(error) }, message);
  }
}
