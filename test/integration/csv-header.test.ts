import { expect } from 'chai';
import { readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse/sync';
import { HEADER_LIMIT, readCsvHeader } from '../../connectors/csv/csv-header.js';
import { freshDirPerTest, runCli, writeFiles } from '../helpers.js';

const COMMA = { delimiter: ',', quote: '"' };

describe('readCsvHeader', () => {
  let dir: string;
  freshDirPerTest((d) => (dir = d));
  const file = (name: string) => path.join(dir, name);

  it('reads the first record, quoted line breaks included, not the first line', async () => {
    writeFiles(dir, { 'a.csv': '\uFEFF\nid,"two\nlines","cr\r\nlf",x\n1,2,3,4\n' });
    expect(await readCsvHeader(file('a.csv'), COMMA)).to.deep.equal(['id', 'two\nlines', 'cr\r\nlf', 'x']);
  });

  it('reads on past the first chunk until the record ends, and takes a header without a final line break', async () => {
    const long = 'n'.repeat(200_000);
    writeFiles(dir, { 'long.csv': `id,"${long}\n${long}"\n1,2\n`, 'bare.csv': 'a;\'b\nc\'' });
    expect(await readCsvHeader(file('long.csv'), COMMA)).to.deep.equal(['id', `${long}\n${long}`]);
    expect(await readCsvHeader(file('bare.csv'), { delimiter: ';', quote: "'" })).to.deep.equal(['a', 'b\nc']);
  });

  it('keeps a multi-byte character that straddles two chunks whole', async () => {
    const name = 'é'.repeat(40_000); // 80,000 bytes: the 64 KiB chunk boundary falls inside an é
    writeFiles(dir, { 'a.csv': `"${name}\n",b\n` });
    expect(await readCsvHeader(file('a.csv'), COMMA)).to.deep.equal([`${name}\n`, 'b']);
  });

  it('an empty file has no header', async () => {
    writeFiles(dir, { 'a.csv': '\n\n' });
    expect(await readCsvHeader(file('a.csv'), COMMA)).to.deep.equal([]);
  });

  it('a quote left open fails with the file and the line, in a small file and past the 1 MiB cap', async () => {
    writeFiles(dir, { 'small.csv': 'a,"b\n1,2\n', 'big.csv': 'a,"b\n' + 'x\n'.repeat(HEADER_LIMIT) });
    let small = '';
    await readCsvHeader(file('small.csv'), COMMA).catch((err: Error) => (small = err.message));
    expect(small).to.include(`${file('small.csv')}: reading its CSV header: unterminated quoted field starting on line 1`);
    let big = '';
    await readCsvHeader(file('big.csv'), COMMA).catch((err: Error) => (big = err.message));
    expect(big).to.include(`${file('big.csv')}: its first record, the CSV header, does not end within 1 MiB (a quote left open?)`);
  });
});

describe('appending to a CSV file whose header holds a quoted line break', function () {
  this.timeout(30_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('two runs give one header and every row, and the file parses back', async () => {
    writeFiles(dir, {
      'in.csv': 'id,"reading\n(celsius)",site\n1,30,"Paris, FR"\n2,5,Lisbon\n3,41,"multi\nline"\n',
      'c.yaml': `datasources:
  s: {type: csv, path: in.csv}
processing_rules:
  - {name: hot, threshold_field: "reading\\n(celsius)", threshold_type: greater_than, threshold_value: 20, realert: 0s, export_target: f}
export_targets:
  f: {type: file, path: out.csv, include_metadata: false}
`,
    });
    for (const run of [1, 2]) {
      const result = await runCli(['--config', 'c.yaml', '--log-level', 'warn'], { cwd: dir });
      expect(result.code, `run ${run}: ${result.stderr}`).to.equal(0);
    }
    const text = readFileSync(path.join(dir, 'out.csv'), 'utf8');
    expect(text.split('id,').length - 1, text).to.equal(1); // one header
    const rows = [
      { id: '1', 'reading\n(celsius)': '30', site: 'Paris, FR' },
      { id: '3', 'reading\n(celsius)': '41', site: 'multi\nline' },
    ];
    expect(parse(text, { columns: true })).to.deep.equal([...rows, ...rows]);
  });

  it('appending records of another shape widens the header it read and pads the old rows', async () => {
    writeFileSync(path.join(dir, 'out.csv'), 'id,"a\nb"\n0,1\n');
    writeFiles(dir, {
      'in.csv': 'id,c\n1,2\n',
      'c.yaml': `datasources:
  s: {type: csv, path: in.csv}
processing_rules:
  - {name: r, threshold_field: c, threshold_type: greater_than, threshold_value: 0, export_target: f}
export_targets:
  f: {type: file, path: out.csv, include_metadata: false}
`,
    });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir });
    expect(result.code, result.stderr).to.equal(0);
    expect(readFileSync(path.join(dir, 'out.csv'), 'utf8')).to.equal('id,"a\nb",c\n0,1,\n1,,2\n');
  });
});
