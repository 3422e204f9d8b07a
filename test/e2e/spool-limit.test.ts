import { expect } from 'chai';
import { mkdirSync, readFileSync, rmSync } from 'node:fs';
import path from 'node:path';
import { SPOOL_KEEP_LIMIT } from '../../src/delivery/target-queue.js';
import { freshDirPerTest, logLines, parseNdjson, runCli, writeFiles } from '../helpers.js';

describe('an atomic target failing with more records than the spool keeps (built CLI)', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('what feeds that target is not saved, and the next run sends every record again; the other rules\' state is saved, so they do not alert twice', async () => {
    const rows = SPOOL_KEEP_LIMIT + 5_000;
    writeFiles(dir, {
      'c.yaml':
        'datasources:\n  s: {type: csv, path: data.csv}\n  t: {type: csv, path: pages.csv}\n' +
        'processing_rules:\n  - {name: hot, datasource: s, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: out}\n' +
        '  - {name: page, datasource: t, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: pager}\n' +
        'export_targets:\n  out: {type: file, path: out/hot.ndjson, mode: overwrite, include_metadata: false}\n' +
        '  pager: {type: file, path: pages.ndjson, mode: append, include_metadata: false}\n',
      'data.csv': `id,v\n${Array.from({ length: rows }, (_, i) => `${i},1`).join('\n')}\n`,
      'pages.csv': 'id,v\np1,5\n',
    });
    // A folder where the file should go: the publishing rename fails at the end of the cycle.
    mkdirSync(path.join(dir, 'out', 'hot.ndjson'), { recursive: true });
    const first = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(first.code, first.stderr.slice(-2000)).to.equal(1);
    const warning = logLines(first.stderr).find((l) => l.msg?.startsWith('too many records to spool'));
    expect(warning, first.stderr.slice(-3000)).to.include({ target: 'out', records: rows });

    rmSync(path.join(dir, 'out', 'hot.ndjson'), { recursive: true });
    const second = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(second.code, second.stderr.slice(-2000)).to.equal(0);
    const written = parseNdjson(readFileSync(path.join(dir, 'out', 'hot.ndjson'), 'utf8'));
    expect(written).to.have.length(rows);
    // the healthy target's alert went out once: its rule's dedup memory was saved by the first run
    expect(parseNdjson(readFileSync(path.join(dir, 'pages.ndjson'), 'utf8'))).to.deep.equal([{ id: 'p1', v: '5' }]);
  });
});
