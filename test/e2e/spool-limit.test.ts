import { expect } from 'chai';
import { existsSync, mkdirSync, readFileSync, rmSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { SPOOL_KEEP_LIMIT } from '../../src/delivery/target-queue.js';
import { SPOOL_MAX_BYTES, SPOOL_MAX_RECORDS } from '../../src/state/spool.js';
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

describe('a per-write target down while a cycle matches more records than its spool may hold (built CLI)', function () {
  this.timeout(120_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  /** An HTTP receiver counting the records POSTed to it (a JSON array per request). */
  async function receiver(): Promise<{ server: Server; port: number; records: () => number }> {
    let records = 0;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown;
        records += Array.isArray(body) ? body.length : 1;
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, port: (server.address() as AddressInfo).port, records: () => records };
  }

  /** A port nothing listens on: the target is refused until a receiver listens again. */
  async function closedPort(): Promise<number> {
    const { server, port } = await receiver();
    await new Promise<void>((resolve) => server.close(() => resolve()));
    return port;
  }

  /** The next run, with a receiver listening, exits 0 and delivers every record. */
  async function runWithReceiverBack(config: (port: number) => string, rows: number): Promise<void> {
    const back = await receiver();
    try {
      writeFiles(dir, { 'c.yaml': config(back.port) });
      const second = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
      expect(second.code, second.stderr.slice(-2000)).to.equal(0);
      expect(back.records()).to.equal(rows);
    } finally {
      await new Promise<void>((resolve) => back.server.close(() => resolve()));
    }
  }

  it('spools none of them: the spool stays as it was, what feeds the target is not saved, and the next run sends every record', async () => {
    const rows = SPOOL_MAX_RECORDS + 5_000;
    const port = await closedPort();
    const config = (p: number) =>
      'datasources:\n  s: {type: csv, path: data.csv}\n  t: {type: csv, path: pages.csv}\n' +
      'processing_rules:\n  - {name: hot, datasource: s, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: api}\n' +
      '  - {name: page, datasource: t, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: pager}\n' +
      `export_targets:\n  api: {type: rest_api, url: "http://127.0.0.1:${p}/alerts", batch_size: 1000, retry: {max_attempts: 1}}\n` +
      '  pager: {type: file, path: pages.ndjson, mode: append, include_metadata: false}\n';
    writeFiles(dir, {
      'c.yaml': config(port),
      'data.csv': `id,v\n${Array.from({ length: rows }, (_, i) => `${i},1`).join('\n')}\n`,
      'pages.csv': 'id,v\np1,5\n',
    });
    const first = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(first.code, first.stderr.slice(-2000)).to.equal(1);
    const lines = logLines(first.stderr);
    expect(lines.find((l) => l.msg?.startsWith('the dead-letter spool of this target is full')), first.stderr.slice(-3000)).to.deep.include({ target: 'api', rules: ['hot'] });
    // One warning, with the spool's own limits: the atomic targets' keep limits do not concern it.
    expect(lines.find((l) => l.msg?.startsWith('too many records to spool')), first.stderr.slice(-3000)).to.equal(undefined);
    expect(lines.find((l) => l.msg === 'cannot save the state; this cycle\'s records will be read and sent again next cycle')).to.equal(undefined);
    expect(existsSync(path.join(dir, '.state', 'spool', 'api.ndjson'))).to.equal(false);

    await runWithReceiverBack(config, rows);
    // the healthy target's alert went out once: its rule's dedup memory was saved by the first run
    expect(parseNdjson(readFileSync(path.join(dir, 'pages.ndjson'), 'utf8'))).to.deep.equal([{ id: 'p1', v: '5' }]);
  });

  it('wide records: the spool is bounded by bytes too (SPOOL_MAX_BYTES), long before SPOOL_MAX_RECORDS, and the next run sends every record', async () => {
    // 1,000 records of 70,000 characters: far fewer records than the cap, more bytes than the spool may hold.
    const rows = 1_000;
    const pad = 'x'.repeat(Math.ceil((SPOOL_MAX_BYTES * 1.05) / rows));
    const port = await closedPort();
    const config = (p: number) =>
      'datasources:\n  s: {type: csv, path: data.csv}\n' +
      'processing_rules:\n  - {name: hot, datasource: s, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: api}\n' +
      `export_targets:\n  api: {type: rest_api, url: "http://127.0.0.1:${p}/alerts", batch_size: 10, retry: {max_attempts: 1}}\n`;
    writeFiles(dir, { 'c.yaml': config(port), 'data.csv': `id,v,pad\n${Array.from({ length: rows }, (_, i) => `${i},1,${pad}`).join('\n')}\n` });
    const first = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(first.code, first.stderr.slice(-2000)).to.equal(1);
    const full = logLines(first.stderr).find((l) => l.msg?.startsWith('the dead-letter spool of this target is full'));
    expect(full, first.stderr.slice(-3000)).to.include({ target: 'api', spool_max_bytes: SPOOL_MAX_BYTES });
    expect(existsSync(path.join(dir, '.state', 'spool', 'api.ndjson'))).to.equal(false);

    await runWithReceiverBack(config, rows);
  });
});

describe('a per-write target back after a cycle it was down in (built CLI)', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('receives the spooled records before the new ones, in order, also a partly filled batch of them (max_in_flight: 1, linger)', async () => {
    const ids: string[] = [];
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { id: string } | { id: string }[];
        for (const r of Array.isArray(body) ? body : [body]) ids.push(r.id);
        res.writeHead(200).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const port = (server.address() as AddressInfo).port;
    try {
      const config = (p: number) =>
        'datasources:\n  s: {type: csv, path: data.csv, incremental: {field: n}}\n' +
        'processing_rules:\n  - {name: hot, datasource: s, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: api}\n' +
        `export_targets:\n  api: {type: rest_api, url: "http://127.0.0.1:${p}/alerts", batch_size: 2, max_in_flight: 1, linger: 5s, retry: {max_attempts: 1}}\n`;
      // Down: a port nothing listens on.
      writeFiles(dir, { 'c.yaml': config(9), 'data.csv': 'id,n,v\nr1,1,1\nr2,2,1\nr3,3,1\n' });
      const first = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
      expect(first.code, first.stderr.slice(-2000)).to.equal(1);
      writeFiles(dir, { 'c.yaml': config(port), 'data.csv': 'id,n,v\nr1,1,1\nr2,2,1\nr3,3,1\nr4,4,1\nr5,5,1\nr6,6,1\nr7,7,1\n' });
      const second = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
      expect(second.code, second.stderr.slice(-2000)).to.equal(0);
      expect(ids).to.deep.equal(['r1', 'r2', 'r3', 'r4', 'r5', 'r6', 'r7']);
    } finally {
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  });
});
