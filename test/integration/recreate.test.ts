import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { fileSink } from '../../connectors/file/file-sink.js';
import type { Sink } from '../../connectors/types.js';
import { loadConfig } from '../../src/config/load-config.js';
import { runCycle } from '../../src/pipeline/run-cycle.js';
import { closeRuntime, openRuntime, type Endpoint } from '../../src/pipeline/runtime.js';
import { freshDirPerTest, memoryLogger, parseNdjson, writeFiles } from '../helpers.js';

describe('a connector that could not be created is created again on a later cycle', () => {
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('fails its target while down, backs off, then delivers once creation succeeds', async () => {
    writeFiles(dir, {
      'config.yaml':
        'datasources:\n  s: {type: csv, path: data.csv}\n' +
        'processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: out}\n' +
        'export_targets:\n  out: {type: file, path: "out/{rule}.ndjson"}\n',
      'data.csv': 'id,v\n1,5\n2,0\n3,9\n',
    });
    const config = await loadConfig(path.join(dir, 'config.yaml'), { env: {} });
    const { log, lines } = memoryLogger('debug');
    const runtime = await openRuntime(config, log);
    try {
      // The server behind the target is "down" for the first two creations: the creation is the
      // real file target's, behind a gate the test opens.
      let down = true;
      let creations = 0;
      const create = async (): Promise<Sink> => {
        creations++;
        if (down) throw new Error('connect ECONNREFUSED 127.0.0.1:1');
        return fileSink.create(config.targets.out as unknown as Parameters<typeof fileSink.create>[0], { name: 'out', configDir: config.dir, log, signal: new AbortController().signal });
      };
      runtime.sinks.set('out', { ok: false, error: new Error('connect ECONNREFUSED 127.0.0.1:1'), type: 'file', attempts: 1, retryAt: 0, create });

      const first = await runCycle(runtime);
      expect(creations, 'the first cycle tries again at once').to.equal(1);
      expect(first.targets.get('out')!.ok).to.equal(false);
      expect(first.rules.get('hot')!.exported).to.equal(0);
      const endpoint = runtime.sinks.get('out') as Extract<Endpoint<Sink>, { ok: false }>;
      expect(endpoint.ok).to.equal(false);
      expect(endpoint.retryAt - Date.now(), 'after a second failure it waits before trying again').to.be.within(10_000, 15_000);

      const second = await runCycle(runtime);
      expect(creations, 'no attempt while backing off').to.equal(1);
      expect(second.targets.get('out')!.ok).to.equal(false);

      down = false;
      endpoint.retryAt = Date.now() - 1; // the backoff has passed
      const third = await runCycle(runtime);
      expect(creations).to.equal(2);
      expect(third.targets.get('out')!.ok, JSON.stringify([...third.targets])).to.equal(true);
      expect(third.rules.get('hot')!.exported).to.equal(2);
      expect(runtime.sinks.get('out')!.ok).to.equal(true);
      const written = parseNdjson(readFileSync(path.join(dir, 'out', 'hot.ndjson'), 'utf8'));
      expect(written.map((r) => r.id)).to.deep.equal(['1', '3']);
      expect(lines().some((l) => l.msg === 'export target created after an earlier failure')).to.equal(true);
    } finally {
      await closeRuntime(runtime);
    }
    expect(existsSync(path.join(dir, 'out'))).to.equal(true);
  });
});
