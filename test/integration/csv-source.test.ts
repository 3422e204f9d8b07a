import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { writeFileSync } from 'node:fs';
import path from 'node:path';
import fc from 'fast-check';
import { csvSource, type CsvSourceConfig } from '../../connectors/csv/csv-source.js';
import { uniqueColumnNames } from '../../connectors/csv/csv-header.js';
import type { RecordBatch } from '../../src/records/layout.js';
import { freshDirPerTest, memoryLogger, runCli, writeFiles } from '../helpers.js';

async function readAll(config: Omit<CsvSourceConfig, 'type'>, dir: string, batchSize = 1000) {
  const { log, lines } = memoryLogger();
  const source = await csvSource.create({ type: 'csv', ...config }, { name: 'test', configDir: dir, log, signal: new AbortController().signal });
  const batches: RecordBatch[] = [];
  for await (const batch of source.read({ log, batchSize, signal: new AbortController().signal })) batches.push(batch);
  const records = batches.flatMap((b) => b.rows.map((r) => b.layout.toRecord(r)));
  return { batches, records, logs: lines() };
}

describe('csv datasource', () => {
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('reads a header and rows; empty cells are null, untyped values text', async () => {
    writeFiles(dir, { 'a.csv': 'id,name,value\n1,alpha,10.5\n2,,\n' });
    const { records } = await readAll({ path: 'a.csv' }, dir);
    expect(records).to.deep.equal([
      { id: '1', name: 'alpha', value: '10.5' },
      { id: '2', name: null, value: null },
    ]);
  });

  it('a wide file comes in batches of at most 100,000 values, whatever the batch size, every row in order', async () => {
    const width = 300;
    const header = Array.from({ length: width }, (_, c) => `c${c}`).join(',');
    const lines = Array.from({ length: 1_000 }, (_, r) => Array.from({ length: width }, (_, c) => String(r * width + c)).join(','));
    writeFiles(dir, { 'wide.csv': `${header}\n${lines.join('\n')}\n` });
    const { batches, records } = await readAll({ path: 'wide.csv' }, dir, 2_000);
    expect(batches.map((b) => b.rows.length)).to.deep.equal([334, 334, 332]);
    expect(records.map((r) => r.c0)).to.deep.equal(Array.from({ length: 1_000 }, (_, r) => String(r * width)));
    // Narrow rows keep the batch size.
    writeFiles(dir, { 'narrow.csv': 'a,b\n' + Array.from({ length: 5_000 }, (_, r) => `${r},x`).join('\n') + '\n' });
    expect((await readAll({ path: 'narrow.csv' }, dir, 2_000)).batches.map((b) => b.rows.length)).to.deep.equal([2_000, 2_000, 1_000]);
  });

  it('converts typed columns, keeping text that does not convert', async () => {
    writeFiles(dir, { 'a.csv': 'v,t,b,s\n1.5,2026-11-24 08:00:00,yes,007\nn/a,1732435200,0,x\n2,99999999999999999,maybe,y\n' });
    const { records } = await readAll({ path: 'a.csv', columns: { v: 'number', t: 'timestamp', b: 'boolean', s: 'string' } }, dir);
    expect(records).to.deep.equal([
      { v: 1.5, t: '2026-11-24T08:00:00.000Z', b: true, s: '007' },
      { v: 'n/a', t: '2024-11-24T08:00:00.000Z', b: false, s: 'x' },
      { v: 2, t: '99999999999999999', b: 'maybe', s: 'y' },
    ]);
  });

  it('renames repeated header names, with a warning, so no column is lost', async () => {
    writeFiles(dir, { 'a.csv': 'id,a,a,a\n1,x,y,z\n' });
    const { records, logs } = await readAll({ path: 'a.csv' }, dir);
    expect(records).to.deep.equal([{ id: '1', a: 'x', a_2: 'y', a_3: 'z' }]);
    expect(logs.find((l) => String(l.msg).includes('repeated column names'))?.renamed).to.deep.equal(['a -> a_2', 'a -> a_3']);
  });

  it('a rename never takes the name of a real column: with a,a,a_2 the second a becomes a_3', async () => {
    writeFiles(dir, { 'a.csv': 'a,a,a_2\nx,y,z\n' });
    const { records, logs } = await readAll({ path: 'a.csv' }, dir);
    expect(records).to.deep.equal([{ a: 'x', a_3: 'y', a_2: 'z' }]);
    expect(logs.find((l) => String(l.msg).includes('repeated column names'))?.renamed).to.deep.equal(['a -> a_3']);
  });

  it('strips a BOM and handles CRLF, quotes, embedded delimiters and newlines', async () => {
    writeFiles(dir, { 'a.csv': '\uFEFFid,msg\r\n1,"a, ""quoted""\r\nline"\r\n2,plain\r\n' });
    const { records } = await readAll({ path: 'a.csv' }, dir);
    expect(records).to.deep.equal([
      { id: '1', msg: 'a, "quoted"\r\nline' },
      { id: '2', msg: 'plain' },
    ]);
  });

  it('honours delimiter, quote and encoding', async () => {
    writeFileSync(path.join(dir, 'a.csv'), Buffer.from("ville;temp\n'Zürich; Nord';-3\n", 'latin1'));
    const { records } = await readAll({ path: 'a.csv', delimiter: ';', quote: "'", encoding: 'latin1' }, dir);
    expect(records).to.deep.equal([{ ville: 'Zürich; Nord', temp: '-3' }]);
  });

  it('reads utf-16le with its BOM', async () => {
    writeFileSync(path.join(dir, 'a.csv'), Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from('k,v\nä,1\n', 'utf16le')]));
    const { records } = await readAll({ path: 'a.csv', encoding: 'utf-16le' }, dir);
    expect(records).to.deep.equal([{ k: 'ä', v: '1' }]);
  });

  it('reads every file of a glob in name order, each with its own header', async () => {
    writeFiles(dir, { 'in/b.csv': 'x,y\n3,4\n', 'in/a.csv': 'y,x\n2,1\n', 'in/skip.txt': 'nope' });
    const { records, batches } = await readAll({ path: 'in/*.csv' }, dir);
    expect(records).to.deep.equal([{ y: '2', x: '1' }, { x: '3', y: '4' }]);
    expect(batches[0]!.layout.columns).to.deep.equal(['y', 'x']);
  });

  it('a file whose name holds glob characters is read as that file', async () => {
    writeFiles(dir, { 'ev[12].csv': 'k\nliteral\n', 'ev1.csv': 'k\nfrom-glob\n' });
    const { records } = await readAll({ path: 'ev[12].csv' }, dir);
    expect(records).to.deep.equal([{ k: 'literal' }]);
  });

  it('a glob matching nothing reads nothing and warns', async () => {
    const { records, logs } = await readAll({ path: 'none/*.csv' }, dir);
    expect(records).to.deep.equal([]);
    expect(logs.some((l) => String(l.msg).includes('no file matches'))).to.equal(true);
  });

  it('cuts rows into batches of the configured size', async () => {
    const rows = Array.from({ length: 25 }, (_, i) => `${i}`).join('\n');
    writeFiles(dir, { 'a.csv': `n\n${rows}\n` });
    const { batches } = await readAll({ path: 'a.csv' }, dir, 10);
    expect(batches.map((b) => b.rows.length)).to.deep.equal([10, 10, 5]);
  });

  it('streams a file larger than one read chunk across chunk boundaries', async () => {
    const line = (i: number) => `${i},"text with, comma and ""quote"" ${i}",${i % 7}\n`;
    let text = 'id,text,mod\n';
    for (let i = 0; i < 20000; i++) text += line(i);
    writeFiles(dir, { 'big.csv': text });
    const { records } = await readAll({ path: 'big.csv' }, dir);
    expect(records).to.have.length(20000);
    expect(records[12345]).to.deep.equal({ id: '12345', text: 'text with, comma and "quote" 12345', mod: String(12345 % 7) });
  });

  it('ragged rows: missing fields read as null, with one warning', async () => {
    writeFiles(dir, { 'a.csv': 'a,b,c\n1,2\n1,2,3,4\n' });
    const { records, logs } = await readAll({ path: 'a.csv' }, dir);
    expect(records).to.deep.equal([{ a: '1', b: '2', c: null }, { a: '1', b: '2', c: '3' }]);
    expect(logs.filter((l) => String(l.msg).includes('different number of fields'))).to.have.length(1);
  });

  it('a missing file fails with a message naming it', async () => {
    try {
      await readAll({ path: 'missing.csv' }, dir);
      expect.fail('should have thrown');
    } catch (err) {
      expect((err as Error).message).to.match(/cannot read .*missing\.csv: no such file/);
    }
  });

  it('an unterminated quote fails with the file and line', async () => {
    writeFiles(dir, { 'a.csv': 'a,b\n1,2\n3,"open\n4,5\n' });
    try {
      await readAll({ path: 'a.csv' }, dir);
      expect.fail('should have thrown');
    } catch (err) {
      expect((err as Error).message).to.match(/^a\.csv: .*line 3/);
    }
  });

  it('--validate refuses a dialect the tokenizer cannot work with, at its line and column, and says what to use', async () => {
    writeFiles(dir, {
      'd.csv': 'v\n1\n',
      'c.yaml': `datasources:
  same:  {type: csv, path: d.csv, delimiter: ";", quote: ";"}
  lf:    {type: csv, path: d.csv, delimiter: "\\n"}
  cr:    {type: csv, path: d.csv, quote: "\\r"}
  emoji: {type: csv, path: d.csv, delimiter: "\u{1F600}"}
  dq:    {type: csv, path: d.csv, delimiter: '"'}
  fine:  {type: csv, path: d.csv, delimiter: "\\t", quote: "'"}
export_targets:
  out: {type: console}
`,
    });
    const result = await runCli(['--config', 'c.yaml', '--validate'], { cwd: dir });
    expect(result.code, result.stderr).to.equal(2);
    const lines = result.stderr.trim().split('\n');
    expect(lines).to.deep.equal([
      'c.yaml:2:58: datasources.same.quote: is the same character as the delimiter (";"), so a field could not be told from a separator; use another quote, such as \'"\' or "\'"',
      'c.yaml:3:46: datasources.lf.delimiter: cannot be a line break ("\\n"): line breaks end rows; use a character such as ",", ";", "|" or "\\t" (tab)',
      'c.yaml:4:42: datasources.cr.quote: cannot be a line break ("\\r"): line breaks end rows; use a character such as \'"\' or "\'"',
      'c.yaml:5:46: datasources.emoji.delimiter: must be a single character; "\u{1F600}" is 2 UTF-16 units (an emoji or other character beyond U+FFFF is two); use one such as ",", ";", "|" or "\\t" (tab)',
      'c.yaml:6:46: datasources.dq.delimiter: is the default quote character ("); to split on it, also set quote to another character, such as "\'"',
      'c.yaml: 5 problems; nothing was run',
    ]);
  });

  describe('over HTTP', () => {
    let server: Server;
    let base: string;
    const seen: { url?: string; auth?: string }[] = [];
    before(async () => {
      server = createServer((req, res) => {
        seen.push({ url: req.url, auth: req.headers.authorization });
        if (req.url === '/data.csv') {
          res.writeHead(200, { 'content-type': 'text/csv' });
          res.write('id,value\n1,');
          setTimeout(() => res.end('5\n2,7\n'), 20);
        } else if (req.url === '/echo.csv') {
          res.writeHead(401).end('denied for token=SECRET123 with Authorization: Bearer TOPSECRET');
        } else {
          res.writeHead(404).end('no such export');
        }
      });
      await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
      base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    });
    after(() => new Promise<void>((r) => server.close(() => r())));

    it('streams a CSV from a URL, sending the configured headers', async () => {
      const { records } = await readAll({ path: `${base}/data.csv`, headers: { Authorization: 'Bearer abc' } }, dir);
      expect(records).to.deep.equal([{ id: '1', value: '5' }, { id: '2', value: '7' }]);
      expect(seen.at(-1)).to.deep.equal({ url: '/data.csv', auth: 'Bearer abc' });
    });

    it('an HTTP error names the status and the URL without credentials', async () => {
      const url = base.replace('http://', 'http://user:pw@') + '/gone.csv?token=xyz';
      try {
        await readAll({ path: url }, dir);
        expect.fail('should have thrown');
      } catch (err) {
        const message = (err as Error).message;
        expect(message).to.match(/answered HTTP 404: no such export/);
        expect(message).not.to.include('pw');
        expect(message).not.to.include('xyz');
      }
    });

    it('an error body that echoes credentials has them hidden', async () => {
      try {
        await readAll({ path: `${base}/echo.csv` }, dir);
        expect.fail('should have thrown');
      } catch (err) {
        const message = (err as Error).message;
        expect(message).to.match(/answered HTTP 401: denied for token=\*\*\* with Authorization: Bearer \*\*\*/);
        expect(message).not.to.match(/SECRET123|TOPSECRET/);
      }
    });
  });
});

describe('uniqueColumnNames', () => {
  // Names built from few pieces, so repeats and names that look like renames (a_2, a_2_2) are common.
  const name = fc.array(fc.constantFrom('a', 'b', '_', '2', '3', '_2', ''), { maxLength: 3 }).map((parts) => parts.join(''));

  it('for any header: names are unique, first occurrences keep theirs, renames collide with no name of the header', () => {
    fc.assert(
      fc.property(fc.array(fc.oneof(name, fc.string({ maxLength: 4 })), { maxLength: 12 }), (header) => {
        const { names, renamed } = uniqueColumnNames(header);
        expect(names).to.have.length(header.length);
        expect(new Set(names).size).to.equal(names.length);
        const original = new Set(header);
        const expectedRenames: string[] = [];
        header.forEach((h, i) => {
          if (header.indexOf(h) === i) {
            expect(names[i]).to.equal(h);
          } else {
            expect(original.has(names[i]!), `${names[i]} is a name in the header`).to.equal(false);
            expect(names[i]!.startsWith(`${h}_`)).to.equal(true);
            expectedRenames.push(`${h} -> ${names[i]}`);
          }
        });
        expect(renamed).to.deep.equal(expectedRenames);
      }),
      { numRuns: 2000 },
    );
  });

  it('numbers each repeat with the next free suffix', () => {
    expect(uniqueColumnNames(['a', 'a', 'a_2', 'a', 'a_4', 'a']).names).to.deep.equal(['a', 'a_3', 'a_2', 'a_5', 'a_4', 'a_6']);
    expect(uniqueColumnNames(['a_2', 'a', 'a', 'a_2']).names).to.deep.equal(['a_2', 'a', 'a_3', 'a_2_2']);
  });
});
