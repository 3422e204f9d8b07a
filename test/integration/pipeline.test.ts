import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { readFileSync } from 'node:fs';
import { loadConfig } from '../../src/config/load-config.js';
import { runCycle } from '../../src/pipeline/run-cycle.js';
import { openRuntime, closeRuntime } from '../../src/pipeline/runtime.js';
import { summaryTable } from '../../src/pipeline/summary.js';
import { freshDirPerTest, memoryLogger, parseNdjson, writeFiles } from '../helpers.js';

describe('pipeline (one cycle, real connectors)', () => {
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  async function cycle(yaml: string, files: Record<string, string> = {}, options: { now?: number } = {}) {
    writeFiles(dir, { 'config.yaml': yaml, ...files });
    const config = await loadConfig(path.join(dir, 'config.yaml'), { env: {} });
    const { log, lines } = memoryLogger('debug');
    const runtime = await openRuntime(config, log);
    const report = await runCycle(runtime, options);
    await closeRuntime(runtime);
    return { report, logs: lines() };
  }

  it('reads datasources in parallel, never more at once than settings.concurrency', async () => {
    let inFlight = 0;
    let maxInFlight = 0;
    const server: Server = createServer((req, res) => {
      inFlight++;
      maxInFlight = Math.max(maxInFlight, inFlight);
      setTimeout(() => {
        inFlight--;
        res.end('v\n5\n');
      }, 150);
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
    try {
      const sources = [1, 2, 3, 4, 5].map((i) => `  s${i}: {type: csv, path: "${base}/${i}.csv"}`).join('\n');
      const yaml = (concurrency: number) => `datasources:\n${sources}\nprocessing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: f}\nexport_targets:\n  f: {type: file, path: out.ndjson}\nsettings: {concurrency: ${concurrency}}\n`;
      const { report } = await cycle(yaml(2));
      expect(maxInFlight).to.equal(2);
      expect([...report.datasources.values()].every((s) => s.ok && s.records === 1)).to.equal(true);
      maxInFlight = 0;
      await cycle(yaml(5));
      expect(maxInFlight).to.equal(5);
    } finally {
      await new Promise<void>((r) => server.close(() => r()));
    }
  });

  it('counts undecidable records per rule and logs a few at debug with the field and value', async () => {
    const rows = ['v,s', '5,a', 'n/a,b', ',c', 'oops,d', '7,e', 'x1,f', 'x2,g', 'x3,h', 'x4,i'].join('\n');
    const { report, logs } = await cycle(
      `datasources:\n  d: {type: csv, path: d.csv}\nprocessing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 6, export_target: f}\nexport_targets:\n  f: {type: file, path: out.ndjson}\n`,
      { 'd.csv': rows + '\n' },
    );
    expect(report.rules.get('r')).to.deep.equal({ read: 9, matched: 1, invalid: 7, exported: 1, failed: 0, deduplicated: 0 });
    const samples = logs.filter((l) => l.rule === 'r' && l.level === 20);
    expect(samples).to.have.length(5);
    expect(samples[0]).to.include({ datasource: 'd', field: 'v', operator: 'greater_than', value: 'n/a', msg: 'value cannot be compared; not matched' });
    expect(samples[1]).to.include({ field: 'v', msg: 'record lacks a field the rule needs; not matched' });
  });

  it('a fixed "now" drives the time windows', async () => {
    const { report } = await cycle(
      `datasources:\n  d: {type: csv, path: d.csv}\nprocessing_rules:\n  - {name: recent, conditions: [{field: t, operator: within, value: 1h}], export_target: f}\nexport_targets:\n  f: {type: file, path: out.ndjson}\n`,
      { 'd.csv': 't\n2026-11-24T11:30:00Z\n2026-11-24T10:30:00Z\n2026-11-24 11:59:59\n' },
      { now: Date.parse('2026-11-24T12:00:00Z') },
    );
    expect(report.rules.get('recent')!.matched).to.equal(2);
    expect(parseNdjson(readFileSync(path.join(dir, 'out.ndjson'), 'utf8')).map((r) => r.t)).to.deep.equal(['2026-11-24T11:30:00Z', '2026-11-24 11:59:59']);
  });

  it('a disabled rule is not run, and a datasource no enabled rule uses is not read', async () => {
    const { report, logs } = await cycle(
      `datasources:\n  used: {type: csv, path: a.csv}\n  unused: {type: csv, path: missing.csv}\nprocessing_rules:\n  - {name: on, datasource: used, threshold_field: v, threshold_type: is_not_null, export_target: f}\n  - {name: off, enabled: false, datasource: unused, threshold_field: v, threshold_type: is_not_null, export_target: f}\nexport_targets:\n  f: {type: file, path: out.ndjson}\n`,
      { 'a.csv': 'v\n1\n' },
    );
    expect([...report.rules.keys()]).to.deep.equal(['on']);
    expect([...report.datasources.keys()]).to.deep.equal(['used']);
    expect(logs.some((l) => l.datasource === 'unused' && /not read/.test(String(l.msg)))).to.equal(true);
  });

  it('one rule with several datasources and several targets sends every match to every target', async () => {
    const { report } = await cycle(
      `datasources:\n  a: {type: csv, path: a.csv}\n  b: {type: csv, path: b.csv}\nprocessing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_targets: [x, y]}\nexport_targets:\n  x: {type: file, path: "x-{datasource}.ndjson"}\n  y: {type: file, path: y.csv}\n`,
      { 'a.csv': 'v\n2\n0\n', 'b.csv': 'v\n3\n' },
    );
    expect(report.rules.get('r')).to.deep.equal({ read: 3, matched: 2, invalid: 0, exported: 4, failed: 0, deduplicated: 0 });
    expect(parseNdjson(readFileSync(path.join(dir, 'x-a.ndjson'), 'utf8')).map((r) => r.v)).to.deep.equal(['2']);
    expect(parseNdjson(readFileSync(path.join(dir, 'x-b.ndjson'), 'utf8')).map((r) => r.v)).to.deep.equal(['3']);
    const csv = readFileSync(path.join(dir, 'y.csv'), 'utf8').trim().split('\n');
    expect(csv[0]).to.equal('v,_rule,_datasource,_run_id,_matched_at');
    expect(csv.slice(1).map((l) => l.split(',').slice(0, 3).join(',')).sort()).to.deep.equal(['2,r,a', '3,r,b']);
  });

  it('the summary table shows each rule and names what failed', async () => {
    const { report } = await cycle(
      `datasources:\n  gone: {type: csv, path: gone.csv}\nprocessing_rules:\n  - {name: high_value, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: f}\nexport_targets:\n  f: {type: file, path: out.ndjson}\n`,
    );
    const table = summaryTable(report);
    expect(table).to.match(/^run \d{8}T\d{6}Z-[0-9a-f]{4} finished in \d+\.\d\ds\n/);
    expect(table).to.include('rule        read  matched  invalid  deduplicated  exported  failed\nhigh_value     0        0        0             0         0       0\n');
    expect(table).to.match(/datasource "gone" FAILED: cannot read .*gone\.csv: no such file/);
  });

  it('the summary table counts skipped and spooled records in words that agree with the number', () => {
    const report = {
      runId: 'r',
      startedAt: '2026-11-24T12:00:00.000Z',
      durationMs: 10,
      cancelled: false,
      rules: new Map(),
      datasources: new Map([
        ['one', { ok: true, records: 3, skipped: 1 }],
        ['two', { ok: true, records: 3, skipped: 2 }],
      ]),
      targets: new Map(),
      spool: new Map([
        ['a', 1],
        ['b', 2],
      ]),
    };
    const table = summaryTable(report);
    expect(table).to.include('datasource "one": 1 record skipped as already processed (incremental)\n');
    expect(table).to.include('datasource "two": 2 records skipped as already processed (incremental)\n');
    expect(table).to.include('target "a": 1 record in the dead-letter spool');
    expect(table).to.include('target "b": 2 records in the dead-letter spool');
  });
});
