import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync, existsSync, writeFileSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { CLEANED_FOLDERS_REMEMBERED, fileSink, type FileSinkConfig } from '../../connectors/file/file-sink.js';
import type { MatchBatch } from '../../connectors/types.js';
import { ColumnLayout, OBJECT_LAYOUT } from '../../src/records/layout.js';
import { describeError } from '../../src/errors.js';
import { drive, freshDirPerTest, memoryLogger, parseNdjson } from '../helpers.js';

const layout = new ColumnLayout(['id', 'value', 'note'], { value: 'number' });

function batch(rows: string[][], rule = 'hot', datasource = 'sensors'): MatchBatch {
  return { rule, datasource, runId: 'run-1', matchedAt: '2026-11-24T12:00:00.000Z', layout, rows };
}

async function fileTarget(dir: string, config: Omit<FileSinkConfig, 'type'>, name = 'f') {
  return drive(await fileSink.create({ type: 'file', ...config }, { name, configDir: dir, log: memoryLogger().log, signal: new AbortController().signal }));
}

describe('file export target', () => {
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  const sinkOf = (config: Omit<FileSinkConfig, 'type'>) => fileTarget(dir, config);
  const read = (name: string) => readFileSync(path.join(dir, name), 'utf8');

  it('writes NDJSON with metadata, typed values and nulls', async () => {
    const sink = await sinkOf({ path: 'out/{rule}-{datasource}-{date}-{run_id}.ndjson' });
    await sink.write(batch([['1', '10.5', 'a "q"'], ['2', '', '']]));
    await sink.flush();
    expect(parseNdjson(read('out/hot-sensors-2026-11-24-run-1.ndjson'))).to.deep.equal([
      { id: '1', value: 10.5, note: 'a "q"', _rule: 'hot', _datasource: 'sensors', _run_id: 'run-1', _matched_at: '2026-11-24T12:00:00.000Z' },
      { id: '2', value: null, note: null, _rule: 'hot', _datasource: 'sensors', _run_id: 'run-1', _matched_at: '2026-11-24T12:00:00.000Z' },
    ]);
  });

  it('the first write into a folder removes temp files of processes that no longer run, not those of live ones; a folder is looked at again once 1,024 others were', async () => {
    const dead = spawnSync(process.execPath, ['-e', '0']).pid!;
    const stale = (folder: string, pid: number) => {
      mkdirSync(path.join(dir, folder), { recursive: true });
      const file = path.join(dir, folder, `.hot.ndjson.${pid}.0badc0de.tmp`);
      writeFileSync(file, 'half a file');
      return file;
    };
    const first = stale('first', dead);
    const live = stale('first', process.ppid);
    const sink = await sinkOf({ path: '{run_id}/hot.ndjson' });
    await sink.write({ ...batch([['1', '2', 'x']]), runId: 'first' });
    await sink.flush();
    expect(existsSync(first), 'a killed process\'s temp file').to.equal(false);
    expect(existsSync(live), 'a running process\'s temp file').to.equal(true);
    // Left again after the folder was looked at: remembered as cleaned, so not looked at again...
    const again = stale('first', dead);
    await sink.write({ ...batch([['2', '2', 'x']]), runId: 'first' });
    await sink.flush();
    expect(existsSync(again)).to.equal(true);
    // ...until more folders than it remembers were written to.
    for (let i = 0; i < CLEANED_FOLDERS_REMEMBERED; i++) {
      await sink.write({ ...batch([['3', '2', 'x']]), runId: `r${i}` });
      await sink.flush();
    }
    await sink.write({ ...batch([['4', '2', 'x']]), runId: 'first' });
    await sink.flush();
    expect(existsSync(again)).to.equal(false);
  });

  it('leaves metadata out when include_metadata is false', async () => {
    const sink = await sinkOf({ path: 'o.ndjson', include_metadata: false });
    await sink.write(batch([['1', '2', 'x']]));
    await sink.flush();
    expect(read('o.ndjson')).to.equal('{"id":"1","value":2,"note":"x"}\n');
  });

  it('writes CSV with a header and RFC 4180 quoting', async () => {
    const sink = await sinkOf({ path: 'o.csv', include_metadata: false });
    await sink.write(batch([['1', '2', 'a,b'], ['2', '3', 'say "hi"\nbye']]));
    await sink.flush();
    expect(read('o.csv')).to.equal('id,value,note\n1,2,"a,b"\n2,3,"say ""hi""\nbye"\n');
  });

  it('writes a JSON array', async () => {
    const sink = await sinkOf({ path: 'o.json', include_metadata: false });
    await sink.write(batch([['1', '2', 'x']]));
    await sink.write(batch([['3', '4', 'y']]));
    await sink.flush();
    expect(JSON.parse(read('o.json'))).to.deep.equal([
      { id: '1', value: 2, note: 'x' },
      { id: '3', value: 4, note: 'y' },
    ]);
  });

  for (const format of ['ndjson', 'csv', 'json'] as const) {
    it(`appends across runs by default (${format}), keeping one header / one array`, async () => {
      for (const id of ['1', '2']) {
        const sink = await sinkOf({ path: `o.${format}`, include_metadata: false });
        await sink.write(batch([[id, '5', 'n']]));
        await sink.flush();
      }
      const text = read(`o.${format}`);
      if (format === 'ndjson') expect(parseNdjson(text).map((r) => r.id)).to.deep.equal(['1', '2']);
      if (format === 'csv') expect(text).to.equal('id,value,note\n1,5,n\n2,5,n\n');
      if (format === 'json') expect(JSON.parse(text).map((r: { id: string }) => r.id)).to.deep.equal(['1', '2']);
    });
  }

  it('overwrite mode replaces the file each run', async () => {
    for (const id of ['1', '2']) {
      const sink = await sinkOf({ path: 'o.ndjson', mode: 'overwrite', include_metadata: false });
      await sink.write(batch([[id, '5', 'n']]));
      await sink.flush();
    }
    expect(parseNdjson(read('o.ndjson')).map((r) => r.id)).to.deep.equal(['2']);
  });

  it('nothing is visible before flush, and abort leaves no file and no temp file', async () => {
    const sink = await sinkOf({ path: 'o.ndjson' });
    await sink.write(batch([['1', '2', 'x']]));
    expect(existsSync(path.join(dir, 'o.ndjson'))).to.equal(false);
    await sink.abort!();
    expect(readdirSync(dir)).to.deep.equal([]);
  });

  it('writes no file when nothing matched', async () => {
    const sink = await sinkOf({ path: 'o.ndjson' });
    await sink.flush();
    expect(readdirSync(dir)).to.deep.equal([]);
  });

  it('keeps writes from concurrent datasources whole and separate per file', async () => {
    const sink = await sinkOf({ path: '{datasource}.ndjson', include_metadata: false });
    const writes = [];
    for (let i = 0; i < 50; i++) writes.push(sink.write(batch([[String(i), String(i), 'x'.repeat(5000)]], 'r', i % 2 ? 'odd' : 'even')));
    await Promise.all(writes);
    await sink.flush();
    expect(parseNdjson(read('odd.ndjson'))).to.have.length(25);
    expect(parseNdjson(read('even.ndjson')).map((r) => r.id)).to.deep.equal(Array.from({ length: 25 }, (_, i) => String(i * 2)));
  });

  it('makes rule names safe as path segments', async () => {
    const sink = await sinkOf({ path: 'out/{rule}.ndjson' });
    await sink.write(batch([['1', '2', 'x']], '../High value / alerts'));
    await sink.flush();
    expect(readdirSync(path.join(dir, 'out'))).to.deep.equal(['.._High_value___alerts.ndjson']);
  });

  it('refuses to append to a file that is not a JSON array, and says what to do', async () => {
    writeFileSync(path.join(dir, 'o.json'), '{"not": "an array"}');
    const sink = await sinkOf({ path: 'o.json' });
    try {
      await sink.write(batch([['1', '2', 'x']]));
      expect.fail('should have thrown');
    } catch (err) {
      expect((err as Error).message).to.match(/does not end with a JSON array; use mode: overwrite or format: ndjson/);
    }
    await sink.abort!();
    expect(read('o.json')).to.equal('{"not": "an array"}');
  });

  it('fails cleanly when the folder cannot be created', async () => {
    writeFileSync(path.join(dir, 'blocker'), 'a file, not a folder');
    const sink = await sinkOf({ path: 'blocker/o.ndjson' });
    let message = '';
    await sink.write(batch([['1', '2', 'x']])).catch((err: Error) => (message = err.message));
    expect(message).to.match(/EEXIST|ENOTDIR/);
  });

  it('exports object rows as they are', async () => {
    mkdirSync(path.join(dir, 'x'));
    const sink = await sinkOf({ path: 'x/o.ndjson', include_metadata: false });
    await sink.write({ ...batch([]), layout: OBJECT_LAYOUT, rows: [{ a: { b: [1, 2] }, c: null }] });
    await sink.flush();
    expect(read('x/o.ndjson')).to.equal('{"a":{"b":[1,2]},"c":null}\n');
  });
});

describe('file export target, failures', () => {
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  const sinkOf = (config: Omit<FileSinkConfig, 'type'>) => fileTarget(dir, config);

  it('sparse records share one CSV file: the header is the union of their columns and a missing field is empty', async () => {
    const sink = await sinkOf({ path: 'all.csv', include_metadata: false });
    await sink.write(batch([['1', '2', 'x']]));
    const wider: MatchBatch = { ...batch([]), datasource: 'b', layout: new ColumnLayout(['id', 'secret_note']), rows: [['9', 'keep, me']] };
    const narrower: MatchBatch = { ...batch([]), datasource: 'a', layout: new ColumnLayout(['id', 'value']), rows: [['8', '1']] };
    await sink.write(wider);
    await sink.write(narrower);
    await sink.flush();
    expect(readFileSync(path.join(dir, 'all.csv'), 'utf8')).to.equal('id,value,note,secret_note\n1,2,x,\n9,,,"keep, me"\n8,1,,\n');
  });

  it('JSON objects whose fields differ from record to record export to CSV with nulls, not an error', async () => {
    const sink = await sinkOf({ path: 'o.csv', include_metadata: false });
    await sink.write({ ...batch([]), layout: OBJECT_LAYOUT, rows: [{ a: 1 }, { b: 'two' }, { a: 3, c: { d: true } }] });
    await sink.write({ ...batch([]), layout: OBJECT_LAYOUT, rows: [{ e: null }] });
    await sink.flush();
    expect(readFileSync(path.join(dir, 'o.csv'), 'utf8')).to.equal('a,b,c,e\n1,,,\n,two,,\n3,,"{""d"":true}",\n,,,\n');
  });

  it('appending to a CSV file that starts with a byte order mark reads its header correctly', async () => {
    writeFileSync(path.join(dir, 'o.csv'), '\uFEFFid,value,note\n0,1,old\n');
    const sink = await sinkOf({ path: 'o.csv', include_metadata: false });
    await sink.write(batch([['1', '2', 'new']]));
    await sink.flush();
    expect(readFileSync(path.join(dir, 'o.csv'), 'utf8')).to.equal('\uFEFFid,value,note\n0,1,old\n1,2,new\n');
  });

  it('two targets whose paths resolve to the same file: the second one fails, naming the first', async () => {
    const a = await fileTarget(dir, { path: 'out/{rule}.ndjson' }, 'per_rule');
    const b = await fileTarget(dir, { path: 'out/big.ndjson' }, 'fixed');
    await a.write(batch([['1', '2', 'x']], 'big'));
    let message = '';
    await b.write(batch([['2', '2', 'y']], 'small')).catch((err: Error) => (message = err.message));
    expect(message).to.match(/out\/big\.ndjson: export target "per_rule" writes this file too/);
    await a.flush();
    await b.abort!();
    // once the first target has published, the path is free again for the next cycle
    await b.write(batch([['3', '2', 'z']], 'small'));
    await b.flush();
    expect(parseNdjson(readFileSync(path.join(dir, 'out', 'big.ndjson'), 'utf8')).map((r) => r.id)).to.deep.equal(['1', '3']);
  });

  it('nothing is published when one file of the cycle cannot be, and every temp file is removed', async () => {
    mkdirSync(path.join(dir, 'out', 'r2.ndjson'), { recursive: true });
    const sink = await sinkOf({ path: 'out/{rule}.ndjson', mode: 'overwrite' });
    await sink.write(batch([['1', '2', 'x']], 'r1'));
    await sink.write(batch([['1', '2', 'x']], 'r2'));
    let message = '';
    await sink.flush().catch((err: Error) => (message = describeError(err)));
    expect(message).to.match(/r2\.ndjson; no file of this run was made visible: .*r2\.ndjson is a folder/);
    expect(readdirSync(path.join(dir, 'out'))).to.deep.equal(['r2.ndjson']);
  });

  it('appending to an indented empty JSON array keeps it an array of the new records only', async () => {
    writeFileSync(path.join(dir, 'o.json'), '[\n        \n]\n');
    const sink = await sinkOf({ path: 'o.json', include_metadata: false });
    await sink.write(batch([['1', '2', 'x']]));
    await sink.flush();
    expect(JSON.parse(readFileSync(path.join(dir, 'o.json'), 'utf8'))).to.deep.equal([{ id: '1', value: 2, note: 'x' }]);
  });

  it('appending to an indented JSON array keeps what it held', async () => {
    writeFileSync(path.join(dir, 'o.json'), '[         \n {"keep":1}\n]');
    const sink = await sinkOf({ path: 'o.json', include_metadata: false });
    await sink.write(batch([['1', '2', 'x']]));
    await sink.flush();
    expect(JSON.parse(readFileSync(path.join(dir, 'o.json'), 'utf8'))).to.deep.equal([{ keep: 1 }, { id: '1', value: 2, note: 'x' }]);
  });

  it('appending NDJSON to a file without a final line break does not glue two records', async () => {
    writeFileSync(path.join(dir, 'o.ndjson'), '{"old":1}');
    const sink = await sinkOf({ path: 'o.ndjson', include_metadata: false });
    await sink.write(batch([['1', '2', 'x']]));
    await sink.flush();
    expect(parseNdjson(readFileSync(path.join(dir, 'o.ndjson'), 'utf8'))).to.deep.equal([{ old: 1 }, { id: '1', value: 2, note: 'x' }]);
  });

  it('an unknown placeholder in the path is a config error', () => {
    expect(fileSink.validate!({ type: 'file', path: 'out/{rul}.ndjson' })).to.deep.equal([
      { key: 'path', message: 'unknown placeholder {rul} in the path; the path can use {rule}, {datasource}, {date}, {run_id}' },
    ]);
  });
});
