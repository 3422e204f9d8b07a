import { expect } from 'chai';
import { PassThrough } from 'node:stream';
import { ConsoleSink } from '../../connectors/console/console-sink.js';
import type { MatchBatch } from '../../connectors/types.js';
import { ColumnLayout } from '../../src/records/layout.js';
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
});
