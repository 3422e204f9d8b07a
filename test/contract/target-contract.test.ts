/**
 * The delivery contract (connectors/types.ts), run against every export target in targets.ts.
 * Each test drives the real sink, directly or through the TargetQueue the cycle uses, and then
 * compares what the harness reads back from the real peer with the records it must hold.
 * See harness.ts for what a target supplies, and docs/contract-suite.md.
 */
import { expect } from 'chai';
import type { DeliveryBatch, MatchBatch, OperationContext, Sink } from '../../connectors/types.js';
import type { DeliveryPolicy } from '../../src/delivery/policy.js';
import { deliveryBatch, TargetQueue } from '../../src/delivery/target-queue.js';
import { ConnectorError, describeError } from '../../src/errors.js';
import { ColumnLayout, OBJECT_LAYOUT } from '../../src/records/layout.js';
import { memoryLogger } from '../helpers.js';
import type { PlainRecord, TargetHarness } from './harness.js';
import { TARGETS } from './targets.js';

const RUN_ID = 'run-contract';
const MATCHED_AT = '2026-11-24T12:00:00.000Z';
const DATASOURCE = 'contract-src';

/** Typed columns as a CSV source declares them: numbers, timestamps, booleans, and text that needs escaping. */
const COLUMNS = new ColumnLayout(['id', 'reading', 'seen', 'ok', 'note'], { reading: 'number', seen: 'timestamp', ok: 'boolean' });

type Shape = 'columnar' | 'objects';

function ids(from: number, count: number): number[] {
  return Array.from({ length: count }, (_, i) => from + i);
}

function matchBatch(shape: Shape, rule: string, numbers: readonly number[]): MatchBatch {
  const rows =
    shape === 'columnar'
      ? numbers.map((n) => [`c${n}`, String(n * 1.5), '2026-11-24T10:00:00Z', n % 2 ? 'true' : 'false', n % 3 === 0 ? '' : `say "hi", ${n}\nbye`])
      : numbers.map((n) => ({ id: `o${n}`, constructor: `not a function ${n}`, nested: { deep: [n, 'two', { three: null }] }, missing: null, unicode: 'é✓' }));
  return { rule, datasource: DATASOURCE, runId: RUN_ID, matchedAt: MATCHED_AT, layout: shape === 'columnar' ? COLUMNS : OBJECT_LAYOUT, rows };
}

/** What the peer must hold for these records, written independently of the encoders. */
function expected(shape: Shape, rule: string, numbers: readonly number[], includeMetadata = true): PlainRecord[] {
  const meta = includeMetadata ? { _rule: rule, _datasource: DATASOURCE, _run_id: RUN_ID, _matched_at: MATCHED_AT } : {};
  return numbers.map((n) =>
    shape === 'columnar'
      ? { id: `c${n}`, reading: n * 1.5, seen: '2026-11-24T10:00:00.000Z', ok: n % 2 === 1, note: n % 3 === 0 ? null : `say "hi", ${n}\nbye`, ...meta }
      : { id: `o${n}`, constructor: `not a function ${n}`, nested: { deep: [n, 'two', { three: null }] }, missing: null, unicode: 'é✓', ...meta },
  );
}

/** Records in a stable order (rule, then id), so that the order of concurrent writes does not matter. */
function sorted(records: readonly PlainRecord[]): PlainRecord[] {
  const key = (r: PlainRecord) => `${String(r._rule ?? '')}/${String(r.id).padStart(8, '0')}`;
  return [...records].sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

const idsOf = (records: readonly PlainRecord[]) => records.map((r) => String(r.id)).sort();

const FAST_RETRY = { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 50 };

function policy(overrides: Partial<DeliveryPolicy> = {}): DeliveryPolicy {
  return { batchSize: 7, batchBytes: 1 << 20, lingerMs: 0, maxInFlight: 4, retry: FAST_RETRY, ...overrides };
}

/** A TargetQueue over the sink, with a listener that adds up what it reports. */
function queueOver(sink: Sink, options: { policy?: Partial<DeliveryPolicy>; signal?: AbortSignal } = {}) {
  const counts = { exported: 0, failed: 0 };
  const { log, lines } = memoryLogger();
  const ctx: OperationContext = { signal: options.signal ?? new AbortController().signal, log };
  const queue = new TargetQueue('contract', sink, policy(options.policy), ctx, {
    exported: (_rule, n) => (counts.exported += n),
    failed: (_rule, n) => (counts.failed += n),
  });
  return { queue, counts, lines };
}

/** A sink as the queue sees it, whose first writes fail with the given errors before the real sink is reached. */
class FailingFirst implements Sink {
  readonly delivery: Sink['delivery'];
  readonly attempts = new Map<string, number>();

  constructor(
    private readonly inner: Sink,
    private readonly errors: Error[],
  ) {
    this.delivery = inner.delivery;
  }

  async write(batch: DeliveryBatch, ctx: OperationContext): Promise<void> {
    const first = String((batch.layout.toRecord(batch.rows[0]) as PlainRecord).id);
    this.attempts.set(first, (this.attempts.get(first) ?? 0) + 1);
    const error = this.errors.shift();
    if (error) throw error;
    return this.inner.write(batch, ctx);
  }

  flush(ctx: OperationContext) {
    return this.inner.flush(ctx);
  }

  async abort(ctx: OperationContext) {
    await this.inner.abort?.(ctx);
  }
}

/** Settles within `ms`, or fails the test: cancellation must not wait on anything. */
async function promptly<T>(work: Promise<T>, ms = 2000): Promise<PromiseSettledResult<T>> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => (timer = setTimeout(() => reject(new Error(`did not settle within ${ms}ms after cancellation`)), ms)));
  try {
    return await Promise.race([work.then((value) => ({ status: 'fulfilled' as const, value }), (reason) => ({ status: 'rejected' as const, reason })), late]);
  } finally {
    clearTimeout(timer);
  }
}

function expectCancelledOrDone(result: PromiseSettledResult<unknown>): void {
  if (result.status === 'rejected') expect((result.reason as { code?: string }).code, describeError(result.reason)).to.equal('CANCELLED');
}

for (const makeHarness of TARGETS) {
  const h: TargetHarness = makeHarness();

  describe(`export target contract: ${h.name} (${h.delivery})`, function () {
    this.timeout(20_000);
    beforeEach(() => h.setup());
    afterEach(() => h.cleanup());

    const create = (includeMetadata = true) => h.create({ includeMetadata, log: memoryLogger().log });
    const direct = (sink: Sink, signal: AbortSignal = new AbortController().signal) => {
      const ctx: OperationContext = { signal, log: memoryLogger().log };
      return {
        write: (batch: MatchBatch) => sink.write(deliveryBatch('contract', [batch]), ctx),
        flush: () => sink.flush(ctx),
        abort: () => sink.abort?.(ctx) ?? Promise.resolve(),
      };
    };

    it('declares the delivery the harness expects', async () => {
      expect((await create()).delivery).to.equal(h.delivery);
    });

    for (const shape of ['columnar', 'objects'] as const) {
      for (const includeMetadata of [true, false]) {
        it(`holds exactly the records written: ${shape} rows, ${includeMetadata ? 'with metadata' : 'include_metadata: false'}`, async () => {
          const sink = direct(await create(includeMetadata));
          await sink.write(matchBatch(shape, 'alpha', ids(1, 4)));
          await sink.write(matchBatch(shape, 'beta', ids(5, 3)));
          await sink.write(matchBatch(shape, 'alpha', ids(8, 2)));
          await sink.flush();
          const want = [...expected(shape, 'alpha', [...ids(1, 4), ...ids(8, 2)], includeMetadata), ...expected(shape, 'beta', ids(5, 3), includeMetadata)];
          if (includeMetadata) expect(sorted(await h.received())).to.deep.equal(sorted(want));
          else expect(sorted(await h.received())).to.have.deep.members(want).and.have.lengthOf(want.length);
        });
      }
    }

    it(h.delivery === 'atomic' ? 'shows nothing before flush, everything after' : 'shows each write as soon as it returns', async () => {
      const sink = direct(await create());
      await sink.write(matchBatch('columnar', 'alpha', ids(1, 5)));
      const before = await h.visibleBeforeFlush();
      if (h.delivery === 'atomic') expect(before).to.deep.equal([]);
      else expect(sorted(before)).to.deep.equal(expected('columnar', 'alpha', ids(1, 5)));
      await sink.flush();
      expect(sorted(await h.received())).to.deep.equal(expected('columnar', 'alpha', ids(1, 5)));
    });

    it(h.delivery === 'atomic' ? 'abort leaves nothing visible and no trace' : 'abort keeps what was written, and the queue counts it exported', async () => {
      const sink = await create();
      const direct1 = direct(sink);
      await direct1.write(matchBatch('objects', 'alpha', ids(1, 3)));
      await direct1.abort();
      if (h.delivery === 'atomic') {
        expect(await h.received()).to.deep.equal([]);
        expect(await h.traces()).to.deep.equal([]);
      } else {
        expect(sorted(await h.received())).to.deep.equal(expected('objects', 'alpha', ids(1, 3)));
      }

      // The same through the queue, as a cancelled cycle ends it: the counts must say what the peer holds.
      await h.cleanup();
      await h.setup();
      const { queue, counts } = queueOver(await create(), { policy: { batchSize: 4, maxInFlight: 1 } });
      await queue.add(matchBatch('columnar', 'alpha', ids(1, 10)));
      await queue.cancel();
      const received = await h.received();
      expect(counts.exported + counts.failed).to.equal(10);
      expect(counts.exported).to.equal(received.length);
      if (h.delivery === 'atomic') {
        expect(counts.failed).to.equal(10);
        expect(await h.traces()).to.deep.equal([]);
      } else {
        // Everything handed to the target before the cut was written, and stays.
        expect(counts.exported).to.be.greaterThan(0);
        expect(idsOf(received)).to.deep.equal(idsOf(expected('columnar', 'alpha', ids(1, counts.exported))));
      }
    });

    it('concurrent adds through a queue with max_in_flight > 1: every record arrives exactly once', async () => {
      const { queue, counts } = queueOver(await create(), { policy: { batchSize: 5, maxInFlight: 4 } });
      const adds = ids(0, 20).map((k) => queue.add(matchBatch(k % 2 ? 'columnar' : 'objects', k % 3 ? 'alpha' : 'beta', ids(k * 3, 3))));
      await Promise.all(adds);
      await queue.finish();
      const received = await h.received();
      const want = ids(0, 20).flatMap((k) => expected(k % 2 ? 'columnar' : 'objects', k % 3 ? 'alpha' : 'beta', ids(k * 3, 3)));
      expect(sorted(received)).to.deep.equal(sorted(want));
      expect(counts).to.deep.equal({ exported: 60, failed: 0 });
      expect(queue.status()).to.deep.equal({ ok: true, records: 60 });
    });

    it('direct concurrent writes: every record arrives exactly once', async () => {
      const sink = direct(await create());
      await Promise.all(ids(0, 12).map((k) => sink.write(matchBatch('columnar', k % 2 ? 'alpha' : 'beta', ids(k * 50, 50)))));
      await sink.flush();
      const want = ids(0, 12).flatMap((k) => expected('columnar', k % 2 ? 'alpha' : 'beta', ids(k * 50, 50)));
      expect(sorted(await h.received())).to.deep.equal(sorted(want));
    });

    it('a flush with no writes leaves no trace', async () => {
      await direct(await create()).flush();
      expect(await h.traces()).to.deep.equal([]);
      const { queue, counts } = queueOver(await create());
      await queue.finish();
      expect(await h.traces()).to.deep.equal([]);
      expect(counts).to.deep.equal({ exported: 0, failed: 0 });
    });

    it('with an aborted signal, write and flush reject with CANCELLED or do nothing, and nothing is published', async () => {
      const controller = new AbortController();
      controller.abort();
      const sink = direct(await create(), controller.signal);
      expectCancelledOrDone(await promptly(sink.write(matchBatch('columnar', 'alpha', ids(1, 5)))));
      expectCancelledOrDone(await promptly(sink.flush()));
      await promptly(sink.abort());
      expect(await h.received()).to.deep.equal([]);
      if (h.delivery === 'atomic') expect(await h.traces()).to.deep.equal([]);
    });

    it('a signal aborted between the writes and the flush: the flush rejects with CANCELLED or does nothing; an atomic target publishes nothing', async () => {
      const controller = new AbortController();
      const sink = direct(await create(), controller.signal);
      await sink.write(matchBatch('columnar', 'alpha', ids(1, 5)));
      controller.abort();
      expectCancelledOrDone(await promptly(sink.flush()));
      await promptly(sink.abort());
      if (h.delivery === 'atomic') {
        expect(await h.received()).to.deep.equal([]);
        expect(await h.traces()).to.deep.equal([]);
      } else {
        expect(sorted(await h.received())).to.deep.equal(expected('columnar', 'alpha', ids(1, 5)));
      }
    });

    it('a queue whose signal is aborted sends nothing and counts every record failed', async () => {
      const controller = new AbortController();
      controller.abort();
      const { queue, counts } = queueOver(await create(), { signal: controller.signal });
      await queue.add(matchBatch('columnar', 'alpha', ids(1, 9)));
      await promptly(queue.cancel());
      expect(counts).to.deep.equal({ exported: 0, failed: 9 });
      expect(await h.received()).to.deep.equal([]);
    });

    for (const [label, error] of [
      ['a retryable error', new ConnectorError('connection reset by peer', { code: 'ECONNRESET', retryable: true })],
      ['a retryable error with Retry-After', new ConnectorError('slow down', { code: 'HTTP_429', retryable: true, retryAfterMs: 5 })],
    ] as const) {
      it(`${label} on the first write is retried: every record once, exported = n, failed = 0`, async () => {
        const sink = new FailingFirst(await create(), [error]);
        const { queue, counts } = queueOver(sink, { policy: { batchSize: 4, maxInFlight: 1 } });
        await queue.add(matchBatch('columnar', 'alpha', ids(1, 10)));
        await queue.finish();
        expect(sorted(await h.received())).to.deep.equal(expected('columnar', 'alpha', ids(1, 10)));
        expect(counts).to.deep.equal({ exported: 10, failed: 0 });
        expect(sink.attempts.get('c1')).to.equal(2);
      });
    }

    it('a permanent error is not retried and its records count failed; the counts match the peer', async () => {
      const sink = new FailingFirst(await create(), [new ConnectorError('rejected: bad record', { code: 'INVALID_RECORD', retryable: false })]);
      const { queue, counts } = queueOver(sink, { policy: { batchSize: 4, maxInFlight: 1 } });
      await queue.add(matchBatch('columnar', 'alpha', ids(1, 10)));
      await queue.finish();
      expect(sink.attempts.get('c1')).to.equal(1);
      const received = await h.received();
      expect(counts.exported + counts.failed).to.equal(10);
      expect(counts.exported).to.equal(received.length);
      if (h.delivery === 'atomic') {
        // One lost write loses an atomic target's cycle.
        expect(counts.failed).to.equal(10);
        expect(await h.traces()).to.deep.equal([]);
      } else {
        expect(counts.failed).to.equal(4);
        expect(sorted(received)).to.deep.equal(expected('columnar', 'alpha', ids(5, 6)));
      }
      expect(queue.status().ok).to.equal(false);
    });

    it('the counts reported equal what the peer received', async () => {
      const { queue, counts } = queueOver(await create(), { policy: { batchSize: 6, maxInFlight: 3 } });
      await queue.add(matchBatch('objects', 'alpha', ids(1, 13)));
      await queue.add(matchBatch('columnar', 'beta', ids(100, 17)));
      await queue.add(matchBatch('columnar', 'alpha', ids(200, 1)));
      await queue.finish();
      const received = await h.received();
      expect(received).to.have.lengthOf(31);
      expect(counts).to.deep.equal({ exported: received.length, failed: 0 });
      expect(queue.status().records).to.equal(received.length);
    });

    it('check resolves with a note; a misconfigured target rejects naming the problem, without leaking a secret', async () => {
      const ok = await create();
      const note = await ok.check?.({ signal: new AbortController().signal, log: memoryLogger().log });
      expect(note, 'check() should say what it checked').to.be.a('string').and.not.equal('');

      const { log, lines } = memoryLogger();
      const { sink, names } = await h.createFailing({ includeMetadata: true, log });
      const checkLog = memoryLogger();
      let failure: unknown;
      await sink.check!({ signal: new AbortController().signal, log: checkLog.log }).then(
        () => expect.fail('check() of a misconfigured target should reject'),
        (err) => (failure = err),
      );
      const message = describeError(failure);
      expect(message).to.not.equal('');
      expect(message).to.include(names);
      if (h.secret) {
        expect(message).to.not.include(h.secret);
        expect(JSON.stringify([...lines(), ...checkLog.lines()])).to.not.include(h.secret);
      }
    });
  });
}
