import { expect } from 'chai';
import type { DeliveryBatch, DeliveryGuarantee, MatchBatch, Sink } from '../../connectors/types.js';
import type { DeliveryPolicy } from '../../src/delivery/policy.js';
import { deliveryBatch, SPOOL_KEEP_BYTES, SPOOL_KEEP_LIMIT, TargetQueue } from '../../src/delivery/target-queue.js';
import { ConnectorError, describeError } from '../../src/errors.js';
import { ColumnLayout } from '../../src/records/layout.js';
import { memoryLogger } from '../helpers.js';

const layout = new ColumnLayout(['id', 'text']);

function match(from: number, count: number, options: { rule?: string; runId?: string; matchedAt?: string; text?: string } = {}): MatchBatch {
  return {
    rule: options.rule ?? 'r',
    datasource: 'd',
    runId: options.runId ?? 'run-1',
    matchedAt: options.matchedAt ?? '2026-11-24T12:00:00.000Z',
    layout,
    rows: Array.from({ length: count }, (_, i) => [String(from + i), options.text ?? 'x']),
  };
}

const wait = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** An in-memory target that records each write, how many run at once, and fails on demand. */
class RecordingSink implements Sink {
  readonly writes: DeliveryBatch[] = [];
  attempts = 0;
  inFlight = 0;
  maxInFlight = 0;
  flushes = 0;
  aborts = 0;
  writeDelayMs = 0;
  failWrite: ((batch: DeliveryBatch, attempt: number) => Error | undefined) | undefined;
  flushError: Error | undefined;

  constructor(readonly delivery: DeliveryGuarantee) {}

  async write(batch: DeliveryBatch): Promise<void> {
    this.attempts++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    try {
      if (this.writeDelayMs > 0) await wait(this.writeDelayMs);
      const err = this.failWrite?.(batch, this.attempts);
      if (err) throw err;
      this.writes.push(batch);
    } finally {
      this.inFlight--;
    }
  }

  async flush(): Promise<void> {
    this.flushes++;
    if (this.flushError) throw this.flushError;
  }

  async abort(): Promise<void> {
    this.aborts++;
  }

  sizes(): number[] {
    return this.writes.map((w) => w.rows.length);
  }
}

function queueOver(sink: Sink, overrides: Partial<DeliveryPolicy> = {}, signal = new AbortController().signal) {
  const counts = { exported: 0, failed: 0 };
  const policy: DeliveryPolicy = {
    batchSize: 10,
    batchBytes: 1 << 20,
    lingerMs: 0,
    maxInFlight: 1,
    retry: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 50 },
    ...overrides,
  };
  const queue = new TargetQueue('t', sink, policy, { signal, log: memoryLogger().log }, {
    exported: (_rule, n) => (counts.exported += n),
    failed: (_rule, n) => (counts.failed += n),
  });
  return { queue, counts };
}

describe('TargetQueue', () => {
  describe('batching', () => {
    it('batch_size gathers small matches into writes of exactly batch_size, the last one smaller', async () => {
      const sink = new RecordingSink('per-write');
      const { queue, counts } = queueOver(sink, { batchSize: 10, lingerMs: 60_000 });
      for (let i = 0; i < 25; i++) await queue.add(match(i, 1));
      await queue.finish();
      expect(sink.sizes()).to.deep.equal([10, 10, 5]);
      expect(sink.writes.flatMap((w) => w.rows.map((r) => (r as string[])[0]))).to.deep.equal(Array.from({ length: 25 }, (_, i) => String(i)));
      expect(counts).to.deep.equal({ exported: 25, failed: 0 });
    });

    it('a match larger than batch_size is cut into writes of batch_size', async () => {
      const sink = new RecordingSink('per-write');
      const { queue } = queueOver(sink, { batchSize: 10 });
      await queue.add(match(0, 23));
      await queue.finish();
      expect(sink.sizes()).to.deep.equal([10, 10, 3]);
    });

    it('batch_bytes cuts a write before batch_size', async () => {
      const sink = new RecordingSink('per-write');
      // Each row is about 100 bytes ("id" 2-3 chars + 1, text 95 + 1): 1024 bytes are passed at the 11th row.
      const { queue } = queueOver(sink, { batchSize: 100, batchBytes: 1024, lingerMs: 60_000 });
      for (let i = 10; i < 40; i++) await queue.add(match(i, 1, { text: 'y'.repeat(96) }));
      await queue.finish();
      expect(sink.sizes()).to.deep.equal([11, 11, 8]);
    });

    it('linger sends a partial batch after the linger time, without waiting for finish', async () => {
      const sink = new RecordingSink('per-write');
      const { queue, counts } = queueOver(sink, { batchSize: 100, lingerMs: 30 });
      await queue.add(match(0, 3));
      await queue.add(match(3, 2));
      expect(sink.writes).to.have.lengthOf(0);
      await wait(100);
      expect(sink.sizes()).to.deep.equal([5]);
      expect(counts.exported).to.equal(5);
      await queue.finish();
      expect(sink.sizes()).to.deep.equal([5]);
    });

    it('keeps rules apart: one write holds one rule', async () => {
      const sink = new RecordingSink('per-write');
      const { queue } = queueOver(sink, { batchSize: 100, lingerMs: 60_000 });
      await queue.add(match(0, 2, { rule: 'a' }));
      await queue.add(match(2, 3, { rule: 'b' }));
      await queue.add(match(5, 1, { rule: 'a' }));
      await queue.finish();
      expect(sink.writes.map((w) => [w.rule, w.rows.length])).to.have.deep.members([['a', 3], ['b', 3]]);
    });
  });

  describe('max_in_flight', () => {
    for (const limit of [1, 3]) {
      it(`keeps at most ${limit} write${limit > 1 ? 's' : ''} in flight, with adds one after another and all at once`, async () => {
        const sink = new RecordingSink('per-write');
        sink.writeDelayMs = 15;
        const { queue, counts } = queueOver(sink, { batchSize: 1, maxInFlight: limit });
        for (let i = 0; i < 8; i++) await queue.add(match(i, 1));
        await Promise.all(Array.from({ length: 12 }, (_, i) => queue.add(match(100 + i, 1))));
        await queue.finish();
        expect(sink.maxInFlight).to.equal(limit);
        expect(counts).to.deep.equal({ exported: 20, failed: 0 });
      });
    }
  });

  describe('counting', () => {
    it('per-write: records count exported when their write returns, before finish', async () => {
      const sink = new RecordingSink('per-write');
      sink.writeDelayMs = 30;
      const { queue, counts } = queueOver(sink);
      await queue.add(match(0, 4));
      expect(counts.exported).to.equal(0);
      await wait(80);
      expect(counts).to.deep.equal({ exported: 4, failed: 0 });
      await queue.finish();
      expect(counts).to.deep.equal({ exported: 4, failed: 0 });
      expect(queue.status()).to.deep.equal({ ok: true, records: 4 });
    });

    it('atomic: records count exported only once flush has published them', async () => {
      const sink = new RecordingSink('atomic');
      const { queue, counts } = queueOver(sink);
      await queue.add(match(0, 4));
      await wait(30);
      expect(sink.writes).to.have.lengthOf(1);
      expect(counts).to.deep.equal({ exported: 0, failed: 0 });
      await queue.finish();
      expect(sink.flushes).to.equal(1);
      expect(counts).to.deep.equal({ exported: 4, failed: 0 });
    });

    it('atomic: a failed flush counts every written record failed, and discards', async () => {
      const sink = new RecordingSink('atomic');
      sink.flushError = new ConnectorError('disk full', { code: 'ENOSPC' });
      const { queue, counts } = queueOver(sink);
      await queue.add(match(0, 4));
      await queue.add(match(4, 3, { rule: 'other' }));
      await queue.finish();
      expect(counts).to.deep.equal({ exported: 0, failed: 7 });
      expect(sink.aborts).to.equal(1);
      expect(queue.status()).to.include({ ok: false, records: 0 });
      expect(queue.status().error).to.include('disk full');
    });

    it('atomic: a cancelled cycle counts written and buffered records failed, and discards', async () => {
      const sink = new RecordingSink('atomic');
      const controller = new AbortController();
      const { queue, counts } = queueOver(sink, { batchSize: 5, lingerMs: 60_000 }, controller.signal);
      await queue.add(match(0, 7));
      controller.abort();
      await queue.cancel();
      expect(sink.sizes()).to.deep.equal([5]);
      expect(counts).to.deep.equal({ exported: 0, failed: 7 });
      expect(sink.aborts).to.equal(1);
      expect(sink.flushes).to.equal(0);
    });

    it('per-write: a cancelled cycle keeps what was delivered exported and counts the buffered rest failed', async () => {
      const sink = new RecordingSink('per-write');
      const controller = new AbortController();
      const { queue, counts } = queueOver(sink, { batchSize: 5, lingerMs: 60_000 }, controller.signal);
      await queue.add(match(0, 7));
      controller.abort();
      await queue.cancel();
      expect(counts).to.deep.equal({ exported: 5, failed: 2 });
    });
  });

  describe('retries', () => {
    it('a retryable failure is retried, and the batch is counted once', async () => {
      const sink = new RecordingSink('per-write');
      sink.failWrite = (_b, attempt) => (attempt === 1 ? new ConnectorError('reset', { code: 'ECONNRESET', retryable: true }) : undefined);
      const { queue, counts } = queueOver(sink);
      await queue.add(match(0, 4));
      await queue.finish();
      expect(sink.attempts).to.equal(2);
      expect(counts).to.deep.equal({ exported: 4, failed: 0 });
    });

    it('a permanent failure is not retried; its records count failed and later batches still go', async () => {
      const sink = new RecordingSink('per-write');
      sink.failWrite = (_b, attempt) => (attempt === 1 ? new ConnectorError('bad record', { code: 'INVALID_RECORD', retryable: false }) : undefined);
      const { queue, counts } = queueOver(sink, { batchSize: 4 });
      await queue.add(match(0, 4));
      await queue.add(match(4, 4));
      await queue.finish();
      expect(sink.attempts).to.equal(2);
      expect(counts).to.deep.equal({ exported: 4, failed: 4 });
    });

    it('after a retryable failure exhausts its attempts the target is down: later matches count failed without being sent', async () => {
      const sink = new RecordingSink('per-write');
      sink.failWrite = () => new ConnectorError('connection refused', { code: 'ECONNREFUSED', retryable: true });
      const { queue, counts } = queueOver(sink, { batchSize: 5, retry: { maxAttempts: 2, initialBackoffMs: 1, maxBackoffMs: 5 } });
      await queue.add(match(0, 5));
      await queue.add(match(5, 5));
      await queue.add(match(10, 3));
      await queue.finish();
      expect(sink.attempts).to.equal(2);
      expect(counts).to.deep.equal({ exported: 0, failed: 13 });
      const status = queue.status();
      expect(status.ok).to.equal(false);
      expect(status.error).to.match(/gave up after 2 attempts/);
    });

    it('a Retry-After longer than max_backoff fails the write at once instead of waiting', async () => {
      const sink = new RecordingSink('per-write');
      sink.failWrite = () => new ConnectorError('slow down', { code: 'HTTP_429', retryable: true, retryAfterMs: 60_000 });
      const { queue, counts } = queueOver(sink, { retry: { maxAttempts: 5, initialBackoffMs: 1, maxBackoffMs: 50 } });
      const started = Date.now();
      await queue.add(match(0, 3));
      await queue.finish();
      expect(Date.now() - started).to.be.below(1000);
      expect(sink.attempts).to.equal(1);
      expect(counts).to.deep.equal({ exported: 0, failed: 3 });
      expect(queue.status().error).to.include('longer than retry.max_backoff');
    });

    it('a Retry-After within max_backoff is waited out', async () => {
      const sink = new RecordingSink('per-write');
      sink.failWrite = (_b, attempt) => (attempt === 1 ? new ConnectorError('slow down', { code: 'HTTP_429', retryable: true, retryAfterMs: 40 }) : undefined);
      const { queue, counts } = queueOver(sink, { retry: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 100 } });
      const started = Date.now();
      await queue.add(match(0, 3));
      await queue.finish();
      expect(Date.now() - started).to.be.at.least(35);
      expect(counts).to.deep.equal({ exported: 3, failed: 0 });
    });
  });

  describe('idempotency key', () => {
    it('is the same for the same records in another run, and differs for different records', () => {
      const key = (m: MatchBatch) => deliveryBatch('t', [m]).idempotencyKey;
      const first = key(match(0, 5, { runId: 'run-1', matchedAt: '2026-11-24T12:00:00.000Z' }));
      expect(first).to.match(/^[0-9a-f]{32}$/);
      expect(key(match(0, 5, { runId: 'run-2', matchedAt: '2026-11-25T08:30:00.000Z' }))).to.equal(first);
      expect(key(match(0, 4))).to.not.equal(first);
      expect(key(match(1, 5))).to.not.equal(first);
      expect(key(match(0, 5, { text: 'other' }))).to.not.equal(first);
      expect(key(match(0, 5, { rule: 'other' }))).to.not.equal(first);
      expect(deliveryBatch('another-target', [match(0, 5)]).idempotencyKey).to.not.equal(first);
    });

    it('is the same for a batch gathered from several matches as for one match of the same records', async () => {
      const runs: string[][] = [];
      for (const runId of ['run-1', 'run-2']) {
        const sink = new RecordingSink('per-write');
        const { queue } = queueOver(sink, { batchSize: 6, lingerMs: 60_000 });
        if (runId === 'run-1') await queue.add(match(0, 12, { runId }));
        else for (let i = 0; i < 12; i += 3) await queue.add(match(i, 3, { runId, matchedAt: '2027-01-01T00:00:00.000Z' }));
        await queue.finish();
        runs.push(sink.writes.map((w) => w.idempotencyKey));
      }
      expect(runs[0]).to.have.lengthOf(2);
      expect(runs[1]).to.deep.equal(runs[0]);
      expect(runs[0]![0]).to.not.equal(runs[0]![1]);
    });
  });

  it('never loses a failure: the error names the target write that failed', async () => {
    const sink = new RecordingSink('atomic');
    sink.failWrite = () => new ConnectorError('permission denied', { code: 'EACCES' });
    const { queue, counts } = queueOver(sink);
    await queue.add(match(0, 2));
    await queue.finish();
    expect(counts).to.deep.equal({ exported: 0, failed: 2 });
    expect(describeError(new Error(queue.status().error))).to.include('permission denied');
  });
});

describe('TargetQueue: what an atomic target keeps for the spool', () => {
  function spoolingQueue(sink: Sink) {
    const spooled: MatchBatch[] = [];
    const unspoolable: number[] = [];
    const policy: DeliveryPolicy = { batchSize: 5_000, batchBytes: 1 << 30, lingerMs: 0, maxInFlight: 1, retry: { maxAttempts: 1, initialBackoffMs: 1, maxBackoffMs: 1 } };
    const queue = new TargetQueue('t', sink, policy, { signal: new AbortController().signal, log: memoryLogger().log }, {
      exported: () => {},
      failed: () => {},
      undelivered: (batch) => spooled.push(batch),
      unspoolable: (records) => unspoolable.push(records),
    });
    return { queue, spooled, unspoolable };
  }

  it('a failed publish of a small cycle hands every batch to the spool, in order', async () => {
    const sink = new RecordingSink('atomic');
    sink.flushError = new Error('rename failed');
    const { queue, spooled, unspoolable } = spoolingQueue(sink);
    for (let i = 0; i < 3; i++) await queue.add(match(i * 100, 100));
    await queue.finish();
    expect(spooled.flatMap((b) => b.rows.map((r) => (r as string[])[0]))).to.deep.equal(Array.from({ length: 300 }, (_, i) => String(i)));
    expect(unspoolable).to.deep.equal([]);
  });

  it(`past ${SPOOL_KEEP_LIMIT} records it keeps none in memory; a failed publish says the cycle cannot be spooled instead`, async () => {
    const sink = new RecordingSink('atomic');
    sink.flushError = new Error('rename failed');
    const { queue, spooled, unspoolable } = spoolingQueue(sink);
    const total = SPOOL_KEEP_LIMIT + 5_000;
    for (let i = 0; i < total; i += 5_000) await queue.add(match(i, 5_000));
    await queue.finish();
    expect(spooled).to.deep.equal([]);
    expect(unspoolable).to.deep.equal([total]);
  });

  it(`past ${SPOOL_KEEP_BYTES / 1048576} MiB of values it keeps none either, though far fewer than ${SPOOL_KEEP_LIMIT} records (wide records)`, async () => {
    const sink = new RecordingSink('atomic');
    sink.flushError = new Error('rename failed');
    const { queue, spooled, unspoolable } = spoolingQueue(sink);
    const wide = 'v'.repeat(10_000); // 10 KB a record: 1,000 records are past the bytes bound
    for (let i = 0; i < 1_000; i += 100) await queue.add(match(i, 100, { text: wide }));
    await queue.finish();
    expect(spooled).to.deep.equal([]);
    expect(unspoolable).to.deep.equal([1_000]);
    // The same count of narrow records is kept and spooled.
    const narrow = new RecordingSink('atomic');
    narrow.flushError = new Error('rename failed');
    const kept = spoolingQueue(narrow);
    for (let i = 0; i < 1_000; i += 100) await kept.queue.add(match(i, 100));
    await kept.queue.finish();
    expect(kept.unspoolable).to.deep.equal([]);
    expect(kept.spooled.length).to.be.greaterThan(0);
  });

  it('a large cycle that publishes keeps nothing and reports nothing', async () => {
    const sink = new RecordingSink('atomic');
    const { queue, spooled, unspoolable } = spoolingQueue(sink);
    for (let i = 0; i < SPOOL_KEEP_LIMIT * 2; i += 5_000) await queue.add(match(i, 5_000));
    await queue.finish();
    expect(spooled).to.deep.equal([]);
    expect(unspoolable).to.deep.equal([]);
  });
});

describe('TargetQueue: a per-write target refusing a batch for good', () => {
  function refusingQueue(sink: Sink) {
    const spooled: { first: string; refused: string | undefined }[] = [];
    const policy: DeliveryPolicy = { batchSize: 2, batchBytes: 1 << 30, lingerMs: 0, maxInFlight: 1, retry: { maxAttempts: 2, initialBackoffMs: 1, maxBackoffMs: 1 } };
    const queue = new TargetQueue('t', sink, policy, { signal: new AbortController().signal, log: memoryLogger().log }, {
      exported: () => {},
      failed: () => {},
      undelivered: (batch, refused) => spooled.push({ first: (batch.rows[0] as string[])[0]!, refused }),
    });
    return { queue, spooled };
  }
  const badRequest = () => new ConnectorError('POST /hook answered HTTP 400: field value must be a number', { code: 'HTTP_400', retryable: false });

  it('while it takes other records: the batch is at fault, and is spooled as refused with the reason', async () => {
    const sink = new RecordingSink('per-write');
    sink.failWrite = (batch) => ((batch.rows[0] as string[])[0] === '2' ? badRequest() : undefined);
    const { queue, spooled } = refusingQueue(sink);
    await queue.add(match(0, 6));
    await queue.finish();
    expect(sink.sizes()).to.deep.equal([2, 2]);
    expect(spooled).to.deep.equal([{ first: '2', refused: 'POST /hook answered HTTP 400: field value must be a number' }]);
  });

  it('when it takes nothing at all, the target may be at fault (a wrong token): spooled as usual, to go out again', async () => {
    const sink = new RecordingSink('per-write');
    sink.failWrite = () => badRequest();
    const { queue, spooled } = refusingQueue(sink);
    await queue.add(match(0, 4));
    await queue.finish();
    expect(spooled).to.deep.equal([
      { first: '0', refused: undefined },
      { first: '2', refused: undefined },
    ]);
  });

  it('a retryable failure is never taken as a refusal', async () => {
    const sink = new RecordingSink('per-write');
    sink.failWrite = (batch) => ((batch.rows[0] as string[])[0] === '0' ? new ConnectorError('503', { code: 'HTTP_503', retryable: true }) : undefined);
    const { queue, spooled } = refusingQueue(sink);
    await queue.add(match(0, 2));
    await queue.finish();
    expect(spooled).to.deep.equal([{ first: '0', refused: undefined }]);
  });
});
