import { expect } from 'chai';
import { appendFileSync } from 'node:fs';
import path from 'node:path';
import type { DeliveryBatch, Sink } from '../../connectors/types.js';
import { loadConfig } from '../../src/config/load-config.js';
import { ConnectorError, PartialWriteError } from '../../src/errors.js';
import { runCycle } from '../../src/pipeline/run-cycle.js';
import { closeRuntime, openRuntime } from '../../src/pipeline/runtime.js';
import { StateKeeper } from '../../src/state/state-keeper.js';
import { freshDirPerTest, memoryLogger, writeFiles } from '../helpers.js';

/** A per-write target whose peer is down, delivers part of a batch then fails, or is up, as the test says. */
class Peer implements Sink {
  readonly delivery = 'per-write' as const;
  mode: 'down' | 'partial-once' | 'up' = 'up';
  readonly received: string[] = [];
  writes = 0;

  async write(batch: DeliveryBatch): Promise<void> {
    this.writes++;
    const ids = batch.rows.map((row) => String(batch.layout.toRecord(row).id));
    if (this.mode === 'down') throw new ConnectorError('connect ECONNREFUSED 127.0.0.1:9', { code: 'ECONNREFUSED', retryable: true });
    if (this.mode === 'partial-once') {
      this.mode = 'up';
      this.received.push(ids[0]!);
      throw new PartialWriteError('sending', 1, new ConnectorError('socket hang up', { code: 'ECONNRESET', retryable: true }));
    }
    this.received.push(...ids);
  }

  async flush(): Promise<void> {}
}

describe('the dead-letter spool with a per-write target', () => {
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('spools what a down target refused, keeps the undelivered rest of a partial write, and sends it all once the target is up, across restarts', async () => {
    writeFiles(dir, {
      'config.yaml':
        'datasources:\n  s: {type: csv, path: data.csv, incremental: {field: id}}\n' +
        'processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: out}\n' +
        'export_targets:\n  out: {type: console, retry: {max_attempts: 2, initial_backoff: 1ms, max_backoff: 1ms}}\n',
      'data.csv': 'id,v\n1,5\n2,7\n3,9\n',
    });
    const config = await loadConfig(path.join(dir, 'config.yaml'), { env: {} });
    const { log } = memoryLogger('warn');
    const peer = new Peer();
    const cycle = async () => {
      // A new process each time: the state comes back from its files.
      const state = await StateKeeper.open(path.join(dir, 'state'));
      const runtime = await openRuntime(config, log);
      runtime.sinks.set('out', { ok: true, value: peer, type: 'console' });
      try {
        return await runCycle(runtime, { state });
      } finally {
        await closeRuntime(runtime);
        await state.close();
      }
    };

    peer.mode = 'down';
    const first = await cycle();
    expect(first.spool).to.deep.equal(new Map([['out', 3]]));
    expect(first.targets.get('out')).to.include({ ok: false, retries: 1 });
    expect(first.rules.get('hot')).to.include({ exported: 0, failed: 3 });

    peer.mode = 'partial-once';
    appendFileSync(path.join(dir, 'data.csv'), '4,8\n');
    const second = await cycle();
    // The spooled batch went first; its first record got through, the other two are spooled again.
    expect(peer.received).to.deep.equal(['1', '4']);
    expect(second.spool).to.deep.equal(new Map([['out', 2]]));

    const third = await cycle();
    expect(peer.received).to.deep.equal(['1', '4', '2', '3']);
    expect(third.spool).to.deep.equal(new Map());
    expect(third.rules.get('hot')).to.include({ exported: 2, failed: 0 });
    // Nothing new and nothing spooled: nothing is sent.
    const writes = peer.writes;
    await cycle();
    expect(peer.writes).to.equal(writes);
  });
});
