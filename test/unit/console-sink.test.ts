import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { ConsoleSink } from '../../connectors/console/console-sink.js';
import type { MatchBatch } from '../../connectors/types.js';
import { ColumnLayout } from '../../src/records/layout.js';
import { TargetQueue } from '../../src/delivery/target-queue.js';
import { drive, memoryLogger } from '../helpers.js';

const batch: MatchBatch = {
  rule: 'hot',
  datasource: 'sensors',
  runId: 'run-1',
  matchedAt: '2026-11-24T12:34:56.000Z',
  layout: new ColumnLayout(['id', 'msg'], {}),
  rows: [['1', 'plain'], ['2', 'has space']],
};

async function printed(format: 'auto' | 'pretty' | 'ndjson', isTTY: boolean, includeMetadata = true): Promise<string> {
  const out = Object.assign(new PassThrough(), { isTTY });
  let text = '';
  out.on('data', (d) => (text += d));
  const sink = new ConsoleSink({ type: 'console', format, include_metadata: includeMetadata }, { name: 'c', configDir: '.', log: memoryLogger().log, signal: new AbortController().signal }, out);
  await drive(sink).write(batch);
  return text.replace(/\x1b\[\d+m/g, '');
}

describe('console export target', () => {
  it('prints NDJSON when not on a terminal', async () => {
    expect(await printed('auto', false)).to.equal(
      '{"id":"1","msg":"plain","_rule":"hot","_datasource":"sensors","_run_id":"run-1","_matched_at":"2026-11-24T12:34:56.000Z"}\n' +
        '{"id":"2","msg":"has space","_rule":"hot","_datasource":"sensors","_run_id":"run-1","_matched_at":"2026-11-24T12:34:56.000Z"}\n',
    );
  });

  it('prints readable lines on a terminal', async () => {
    expect(await printed('auto', true)).to.equal('12:34:56 hot [sensors] id=1 msg=plain\n12:34:56 hot [sensors] id=2 msg="has space"\n');
  });

  it('format: ndjson wins over a terminal, and metadata can be left out', async () => {
    expect(await printed('ndjson', true, false)).to.equal('{"id":"1","msg":"plain"}\n{"id":"2","msg":"has space"}\n');
    expect(await printed('pretty', false, false)).to.equal('id=1 msg=plain\nid=2 msg="has space"\n');
  });

  it('prints nothing once the signal is aborted, and says it was cancelled', async () => {
    const out = Object.assign(new PassThrough(), { isTTY: false });
    let text = '';
    out.on('data', (d) => (text += d));
    const sink = new ConsoleSink({ type: 'console' }, { name: 'c', configDir: '.', log: memoryLogger().log, signal: new AbortController().signal }, out);
    const controller = new AbortController();
    controller.abort();
    let code: string | undefined;
    await drive(sink, controller.signal).write(batch).catch((err) => (code = err.code));
    expect(code).to.equal('CANCELLED');
    expect(text).to.equal('');
  });

  it('cancelled while the reader is slow: the records already printed count exported, the rest failed', async () => {
    // A reader that reads nothing until asked: the sink fills the stream's buffer and waits for it to drain.
    const out = Object.assign(new PassThrough({ highWaterMark: 1024 }), { isTTY: false });
    const sink = new ConsoleSink({ type: 'console' }, { name: 'c', configDir: '.', log: memoryLogger().log, signal: new AbortController().signal }, out);
    const controller = new AbortController();
    const counts = { exported: 0, failed: 0 };
    const policy = { batchSize: 10_000, batchBytes: 1 << 30, lingerMs: 0, maxInFlight: 1, retry: { maxAttempts: 3, initialBackoffMs: 1, maxBackoffMs: 10 } };
    const queue = new TargetQueue('c', sink, policy, { signal: controller.signal, log: memoryLogger().log }, {
      exported: (_rule, n) => (counts.exported += n),
      failed: (_rule, n) => (counts.failed += n),
    });
    const rows = Array.from({ length: 3000 }, (_, i) => [String(i), 'x'.repeat(100)]);
    await queue.add({ ...batch, rows });
    await new Promise((resolve) => setTimeout(resolve, 20));
    controller.abort();
    await queue.cancel();
    let text = '';
    out.on('data', (d) => (text += d));
    await new Promise((resolve) => setImmediate(resolve));
    const printed = text.split('\n').filter(Boolean).length;
    expect(printed).to.be.greaterThan(0).and.below(3000);
    expect(counts).to.deep.equal({ exported: printed, failed: 3000 - printed });
  });
});
