import { createHash } from 'node:crypto';
import type { DeliveryBatch, MatchBatch, OperationContext, Sink } from '../../connectors/types.js';
import { toNdjsonPieces } from '../encoding/ndjson.js';
import { causeChain, deliveredOf, describeError, isRecordFault, isRetryable, PartialWriteError, serializeError, undeliveredRowsOf } from '../errors.js';
import { withRows } from '../records/export-record.js';
import type { DeliveryPolicy } from './policy.js';
import { withRetry } from './retry.js';
import { timerDelay } from '../util/timer-delay.js';
import { rowBytes, rowsBytes } from '../records/batch-values.js';

/** Records of one cycle an atomic target keeps in memory for the spool, should its publish fail. */
export const SPOOL_KEEP_LIMIT = 20_000;
/**
 * The same in bytes of record values (counted as batch_bytes counts them): 20,000 records of a
 * thousand fields each would be twenty million values held for a failure that rarely comes. Held
 * in memory, short values cost several times their bytes (a 3-character value is a 16-byte
 * string and a slot in its row), so 8 MiB of values is up to about 40 MB; 20,000 records of
 * ordinary width are a megabyte or two and never reach it.
 */
export const SPOOL_KEEP_BYTES = 8 * 1024 * 1024;

/** Where a target's outcome per rule is counted: the cycle's summary. */
export interface DeliveryListener {
  /** Records that reached the target for good: a per-write target's returned write, an atomic target's published flush. */
  exported(rule: string, count: number): void;
  /** Records that did not, and will not this cycle. */
  failed(rule: string, count: number): void;
  /**
   * The records behind a `failed` count of a cycle that was not cancelled, as a batch, in the
   * order they were sent: what a dead-letter spool keeps to send again. Not called for records
   * dropped by a cancellation (the cycle is then not committed, so they are read again).
   * `refused` says why the target refused the batch for good (the batch is at fault, not the
   * target): a per-write target that took other records in the same cycle, or an atomic one whose
   * write failed on its records (isRecordFault).
   */
  undelivered?(batch: MatchBatch, refused?: string): void;
  /**
   * An atomic target's cycle failed with more records than it keeps for the spool
   * (SPOOL_KEEP_LIMIT): they cannot be handed to `undelivered`, so the cycle must not be
   * committed, and its records are read and sent again next cycle instead.
   */
  unspoolable?(records: number): void;
  /** A write failed and is about to be tried again. */
  retried?(): void;
}

/** A target's state at the end of a cycle, as the summary shows it. */
export interface TargetStatus {
  readonly ok: boolean;
  readonly records: number;
  readonly error?: string;
}

/** Matches of one rule, datasource and row shape waiting to be written together. */
interface Group {
  readonly first: MatchBatch;
  readonly parts: MatchBatch[];
  rows: number;
  bytes: number;
  timer: NodeJS.Timeout | undefined;
}

/**
 * Stands between the cycle and one target for the length of a cycle. It gathers matches into
 * the writes the target wants (batch_size, batch_bytes, linger), keeps at most max_in_flight
 * writes going, retries what fails with a retryable error, and counts every record exactly once,
 * as exported or failed, at the moment that becomes true. The target's delivery guarantee
 * decides that moment: a per-write target's records count when its write returns; an atomic
 * target's when its flush publishes them.
 */
export class TargetQueue {
  readonly #groups = new Map<string, Group>();
  readonly #inFlight = new Set<Promise<void>>();
  /** Atomic targets: records written this cycle and not yet published, by rule. */
  readonly #unpublished = new Map<string, number>();
  readonly #errors: unknown[] = [];
  /** Set when sending more this cycle is pointless (the target is unreachable, or an atomic cycle is already lost). */
  #down: unknown;
  #notSentWhileDown = 0;
  #exported = 0;
  /** Per-write targets: batches refused with a permanent error, settled at the end of the cycle (see settleRefused). */
  readonly #refused: { batch: MatchBatch; err: unknown }[] = [];
  /** Atomic targets: batches of this cycle whose own records the target refused, and why. */
  readonly #refusedInCycle = new Map<MatchBatch, string>();
  /** Atomic targets with a spool: every batch sent or refused this cycle, in order; none is delivered until the flush publishes. */
  readonly #cycleBatches: MatchBatch[] = [];
  #cycleRecords = 0;
  #cycleBytes = 0;
  /** More than SPOOL_KEEP_LIMIT records (or SPOOL_KEEP_BYTES) this cycle: no longer kept (see keepForSpool). */
  #tooManyToKeep = false;

  constructor(
    readonly name: string,
    private readonly sink: Sink,
    private readonly policy: DeliveryPolicy,
    private readonly ctx: OperationContext,
    private readonly listener: DeliveryListener,
  ) {}

  /** Takes a rule's matches. Resolves once they are buffered or handed to the target; waits while max_in_flight writes are in progress. */
  async add(match: MatchBatch): Promise<void> {
    const total = match.rows.length;
    if (total === 0) return;
    if (this.refuses()) return this.notSent(match);
    const key = `${match.rule}\u0000${match.datasource}\u0000${match.layout.key}`;
    const { batchSize, batchBytes } = this.policy;
    for (let offset = 0; offset < total; ) {
      let group = this.#groups.get(key);
      if (!group) {
        group = { first: match, parts: [], rows: 0, bytes: 0, timer: undefined };
        this.#groups.set(key, group);
      }
      const { take, bytes } = rowsWithinBudget(match.rows, offset, batchSize - group.rows, batchBytes - group.bytes);
      const part = take === total ? match : { ...match, rows: match.rows.slice(offset, offset + take) };
      group.parts.push(part);
      group.rows += take;
      group.bytes += bytes;
      offset += take;
      if (group.rows >= batchSize || group.bytes >= batchBytes || this.policy.lingerMs === 0) {
        this.#groups.delete(key);
        if (group.timer) clearTimeout(group.timer);
        await this.send(group);
      } else {
        group.timer ??= setTimeout(() => this.sendLingering(key, group!), timerDelay(this.policy.lingerMs));
      }
    }
  }

  /**
   * Writes every partly filled batch now, lingering or not. The spooled batches a cycle sends
   * again are grouped apart from its new matches (their records are objects, not the source's
   * rows): a partial one left lingering was overtaken by the new matches of the same rule.
   */
  async sendBuffered(): Promise<void> {
    for (const [key, group] of [...this.#groups]) {
      this.#groups.delete(key);
      if (group.timer) clearTimeout(group.timer);
      await this.send(group);
    }
  }

  /** End of a cycle that was not cancelled: write what is buffered, wait for every write, publish (atomic) or flush. */
  async finish(): Promise<void> {
    await this.sendBuffered();
    await Promise.all(this.#inFlight);
    if (this.ctx.signal.aborted) return this.cancel();
    if (this.sink.delivery === 'per-write') {
      await this.sink.flush(this.ctx).catch((err) => this.noteError(err, 'finishing the cycle'));
      this.settleRefused();
      return;
    }
    if (this.#down !== undefined) return this.discard();
    try {
      await this.sink.flush(this.ctx);
    } catch (err) {
      this.noteError(err, 'publishing the cycle');
      return this.discard();
    }
    for (const [rule, count] of this.#unpublished) this.countExported(rule, count);
    this.#unpublished.clear();
    this.forgetCycle();
  }

  /** The cycle was cut short: nothing more is sent; an atomic target discards what it has not published. */
  async cancel(): Promise<void> {
    for (const [key, group] of [...this.#groups]) {
      this.#groups.delete(key);
      if (group.timer) clearTimeout(group.timer);
      this.listener.failed(group.first.rule, group.rows);
    }
    // In-flight writes received the aborted signal; one stuck regardless is ended by the process's shutdown deadline.
    await Promise.all(this.#inFlight);
    if (this.sink.delivery === 'atomic') await this.discard();
    else await this.sink.abort?.(this.ctx).catch((err) => this.ctx.log.warn({ err: serializeError(err) }, 'abort failed'));
  }

  status(): TargetStatus {
    if (this.#errors.length === 0) return { ok: true, records: this.#exported };
    const more = this.#errors.length > 1 ? ` (and ${this.#errors.length - 1} more error${this.#errors.length > 2 ? 's' : ''})` : '';
    return { ok: false, records: this.#exported, error: describeError(this.#errors[0]) + more };
  }

  private refuses(): boolean {
    return this.#down !== undefined || this.ctx.signal.aborted;
  }

  private notSent(batch: MatchBatch): void {
    this.#notSentWhileDown += batch.rows.length;
    this.listener.failed(batch.rule, batch.rows.length);
    if (this.ctx.signal.aborted) return;
    if (this.sink.delivery === 'atomic') this.keepForSpool(batch, rowsBytes(batch.rows));
    else this.listener.undelivered?.(batch);
  }

  /**
   * An atomic target's batches are kept until its flush publishes them, so that a failed publish
   * can hand them to the spool. Past SPOOL_KEEP_LIMIT records they are let go: a large export
   * (a million matches into a file) must not hold every record in memory for a failure that
   * rarely comes. If it does come, the cycle is not committed instead (`unspoolable`), which
   * loses nothing either: its records are read and sent again.
   */
  private keepForSpool(batch: MatchBatch, bytes: number): void {
    if (!this.listener.undelivered) return;
    this.#cycleRecords += batch.rows.length;
    this.#cycleBytes += bytes;
    if (this.#tooManyToKeep) return;
    if (this.#cycleRecords > SPOOL_KEEP_LIMIT || this.#cycleBytes > SPOOL_KEEP_BYTES) {
      this.#tooManyToKeep = true;
      this.#cycleBatches.length = 0;
      return;
    }
    this.#cycleBatches.push(batch);
  }

  private forgetCycle(): void {
    this.#refusedInCycle.clear();
    this.#cycleBatches.length = 0;
    this.#cycleRecords = 0;
    this.#cycleBytes = 0;
    this.#tooManyToKeep = false;
  }

  private sendLingering(key: string, group: Group): void {
    if (this.#groups.get(key) !== group) return;
    this.#groups.delete(key);
    group.timer = undefined;
    void this.send(group);
  }

  /** Waits for a free slot, then starts the write without waiting for it to end. */
  private async send(group: Group): Promise<void> {
    while (this.#inFlight.size >= this.policy.maxInFlight) await Promise.race(this.#inFlight);
    const batch = deliveryBatch(this.name, group.parts);
    if (this.refuses()) return this.notSent(batch);
    if (this.sink.delivery === 'atomic') this.keepForSpool(batch, group.bytes);
    const write = this.write(batch).finally(() => this.#inFlight.delete(write));
    this.#inFlight.add(write);
  }

  /** Never rejects: every outcome is counted here. */
  private async write(batch: DeliveryBatch): Promise<void> {
    const count = batch.rows.length;
    try {
      await withRetry(() => this.sink.write(batch, this.ctx), {
        policy: this.policy.retry,
        signal: this.ctx.signal,
        log: this.ctx.log,
        what: `writing ${count} record${count === 1 ? '' : 's'} of rule "${batch.rule}" to export target "${this.name}"`,
        onRetry: () => this.listener.retried?.(),
      });
    } catch (err) {
      // A per-write target may have delivered part of the batch before failing: those records are out for good.
      const delivered = this.sink.delivery === 'per-write' ? Math.min(deliveredOf(err), count) : 0;
      if (delivered > 0) this.countExported(batch.rule, delivered);
      if (delivered < count) this.listener.failed(batch.rule, count - delivered);
      if (this.ctx.signal.aborted) return;
      if (this.sink.delivery === 'per-write' && delivered < count) {
        const rest = delivered === 0 ? batch : withRows(batch, undeliveredRowsOf(err, batch.rows));
        if (refusedForGood(err)) this.#refused.push({ batch: rest, err });
        else this.listener.undelivered?.(rest);
      }
      this.noteError(err, `writing ${count} records of rule "${batch.rule}" from datasource "${batch.datasource}"`);
      // The cycle of an atomic target is lost whole; a batch whose own records are at fault goes to the spool as refused, the others as they are.
      if (this.sink.delivery === 'atomic' && isRecordFault(err)) this.#refusedInCycle.set(batch, describeError(err));
      // An unreachable target fails every later write too, each after its own retries: stop sending this cycle.
      // An atomic target's cycle is lost with one failed write, so sending more is pointless too.
      if (this.sink.delivery === 'atomic' || isRetryable(err)) this.#down ??= err;
      return;
    }
    if (this.sink.delivery === 'atomic') this.#unpublished.set(batch.rule, (this.#unpublished.get(batch.rule) ?? 0) + count);
    else this.countExported(batch.rule, count);
  }

  /**
   * A batch refused for good (a 400, a constraint) while the target took other records this
   * cycle is at fault itself: spooled as refused, it is not sent again each cycle (one bad record
   * must not fail every cycle after it). When the target took nothing, the fault may be the
   * target's (a wrong token, a missing table): the batch is spooled as usual, and goes out again
   * once that is fixed.
   */
  private settleRefused(): void {
    const targetTookOthers = this.#exported > 0;
    for (const { batch, err } of this.#refused.splice(0)) {
      if (!targetTookOthers) {
        this.listener.undelivered?.(batch);
        continue;
      }
      this.spoolRefused(batch, describeError(err));
    }
  }

  /** Hands a refused batch to the spool with its reason, and says so once. */
  private spoolRefused(batch: MatchBatch, reason: string): void {
    this.ctx.log.warn(
      { rule: batch.rule, records: batch.rows.length, reason },
      'the export target refused these records for good: kept in the dead-letter spool as refused, not sent again each cycle; send them with --replay-dead-letters once fixed',
    );
    this.listener.undelivered?.(batch, reason);
  }

  private countExported(rule: string, count: number): void {
    this.#exported += count;
    this.listener.exported(rule, count);
  }

  /** Atomic target: drop the cycle's writes; what they held counts as failed. */
  private async discard(): Promise<void> {
    await this.sink.abort?.(this.ctx).catch((err) => this.ctx.log.warn({ err: serializeError(err) }, 'discarding partial output failed'));
    for (const [rule, count] of this.#unpublished) this.listener.failed(rule, count);
    this.#unpublished.clear();
    if (!this.ctx.signal.aborted) {
      if (this.#tooManyToKeep) this.listener.unspoolable?.(this.#cycleRecords);
      else {
        for (const batch of this.#cycleBatches) {
          const reason = this.#refusedInCycle.get(batch);
          if (reason === undefined) this.listener.undelivered?.(batch);
          else this.spoolRefused(batch, reason);
        }
      }
    }
    this.forgetCycle();
    if (this.#notSentWhileDown > 0) {
      this.ctx.log.error({ records: this.#notSentWhileDown }, 'export target failed earlier in the cycle; these records were not sent');
      this.#notSentWhileDown = 0;
    }
  }

  private noteError(err: unknown, doing: string): void {
    this.#errors.push(err);
    this.ctx.log.error({ err: serializeError(err), doing }, 'export target failed');
  }
}

/**
 * The target said no to these records, and would say it again: a permanent error. A partial
 * write is never retried as a whole, but what stopped it decides: a cut connection is the
 * network's fault, a WRONGTYPE the record's.
 */
function refusedForGood(err: unknown): boolean {
  for (const e of causeChain(err)) if (e instanceof PartialWriteError) return !isRetryable(e.cause);
  return !isRetryable(err);
}

/** One write's batch: the parts' rows together, and an identity computed only if the target asks for it. */
export function deliveryBatch(target: string, parts: readonly MatchBatch[]): DeliveryBatch {
  const first = parts[0]!;
  const rows = parts.length === 1 ? first.rows : parts.flatMap((p) => p.rows);
  let key: string | undefined;
  return {
    rule: first.rule,
    datasource: first.datasource,
    runId: first.runId,
    matchedAt: first.matchedAt,
    layout: first.layout,
    rows,
    ...(first.fields ? { fields: first.fields } : {}),
    get idempotencyKey() {
      return (key ??= contentKey(target, first, rows));
    },
  };
}

/**
 * sha256 over the target, rule, datasource and records: the same records sent again carry the
 * same key. The records are hashed as their NDJSON without metadata, whose compiled line writers
 * cost a fraction of building each record and stringifying it.
 */
function contentKey(target: string, batch: MatchBatch, rows: readonly unknown[]): string {
  const hash = createHash('sha256');
  hash.update(`${target}\u0000${batch.rule}\u0000${batch.datasource}\u0000`);
  for (const piece of toNdjsonPieces({ ...batch, rows }, false)) hash.update(piece);
  return hash.digest('hex').slice(0, 32);
}

/**
 * How many rows from `from` fit: at most `maxRows`, and stopping after the row that passes
 * `budget` bytes (at least one row, so a single huge record still goes out alone). Bytes are
 * rough (UTF-16 units of text, 8 per other scalar): the cap is approximate by design, and the
 * count must stay cheaper than the write it sizes.
 */
function rowsWithinBudget(rows: readonly unknown[], from: number, maxRows: number, budget: number): { take: number; bytes: number } {
  const end = Math.min(rows.length, from + maxRows);
  let bytes = 0;
  let i = from;
  while (i < end) {
    bytes += rowBytes(rows[i++]);
    if (bytes >= budget) break;
  }
  return { take: i - from, bytes };
}

