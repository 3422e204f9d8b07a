import { expect } from 'chai';
import { appendFileSync, existsSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freshDirPerTest, parseNdjson, runCli, startCli, writeFiles } from '../helpers.js';

const HEADER = 'id,created_at,v\n';
const row = (id: number, at: string, v: number) => `${id},${at},${v}\n`;

/** Matches v > 10; ids and created_at order the feed; the matches are appended to one NDJSON file. */
function config(extra = ''): string {
  return (
    'datasources:\n  feed:\n    type: csv\n    path: feed.csv\n    incremental: {field: created_at}\n' +
    'processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 10, export_target: out}\n' +
    'export_targets:\n  out: {type: file, path: out/hot.ndjson, mode: append, include_metadata: false}\n' +
    extra
  );
}

function exportedIds(dir: string): string[] {
  const file = path.join(dir, 'out', 'hot.ndjson');
  return existsSync(file) ? parseNdjson(readFileSync(file, 'utf8')).map((r) => String(r.id)) : [];
}

function summaries(stderr: string): Record<string, any>[] {
  return stderr
    .split('\n')
    .filter((l) => l.includes('"run summary"'))
    .map((l) => JSON.parse(l));
}

function waitForSummaries(cli: ReturnType<typeof startCli>, count: number, timeoutMs = 15_000): Promise<void> {
  return cli.waitForStderr(new RegExp(`("msg":"run summary"[\\s\\S]*){${count}}`), timeoutMs);
}

describe('service state: exactly once across cycles and restarts (built CLI)', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('--state-dir keeps the state where it says, relative to the working directory, instead of beside the config', async () => {
    writeFiles(dir, { 'conf/c.yaml': config().replace('path: feed.csv', 'path: ../feed.csv').replace('path: out/hot.ndjson', 'path: ../out/hot.ndjson'), 'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50) });
    const first = await runCli(['--config', 'conf/c.yaml', '--state-dir', 'elsewhere/state', '--log-format', 'json'], { cwd: dir });
    expect(first.code, first.stderr).to.equal(0);
    expect(existsSync(path.join(dir, 'elsewhere', 'state', 'watermarks.json'))).to.equal(true);
    expect(existsSync(path.join(dir, 'conf', '.state'))).to.equal(false);
    // The same folder again: the watermark holds, nothing is exported twice.
    const again = await runCli(['--config', 'conf/c.yaml', '--state-dir', 'elsewhere/state', '--log-format', 'json'], { cwd: dir });
    expect(again.code, again.stderr).to.equal(0);
    expect(exportedIds(dir)).to.deep.equal(['1']);
  });

  it('three cycles with records appended between them export each match once; the watermark survives a restart', async () => {
    writeFiles(dir, { 'c.yaml': config(), 'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50) + row(2, '2026-01-01T00:01:00Z', 5) });
    const cli = startCli(['--config', 'c.yaml', '--continuous', '--interval', '0.4', '--log-format', 'json'], { cwd: dir });
    await waitForSummaries(cli, 1);
    // Same timestamp as the watermark, but a new record: the tie rule must let it through once.
    appendFileSync(path.join(dir, 'feed.csv'), row(3, '2026-01-01T00:01:00Z', 60) + row(4, '2026-01-01T00:02:00Z', 70));
    await waitForSummaries(cli, 3);
    appendFileSync(path.join(dir, 'feed.csv'), row(5, '2026-01-01T00:03:00Z', 80));
    await waitForSummaries(cli, 5);
    cli.child.kill('SIGTERM');
    const first = await cli.done;
    expect(first.code, first.stderr.slice(-3000)).to.equal(0);
    expect(exportedIds(dir)).to.deep.equal(['1', '3', '4', '5']);
    const marks = JSON.parse(readFileSync(path.join(dir, '.state', 'watermarks.json'), 'utf8'));
    expect(marks.datasources.feed).to.include({ field: 'created_at', value: '2026-01-01T00:03:00Z' });
    // Later cycles skipped what earlier ones processed, and said so.
    const last = summaries(first.stderr).at(-1)!;
    expect(last.datasources.feed).to.include({ ok: true, records: 5, skipped: 5 });

    // A restart reads the watermark back: nothing is exported again, the new record is.
    appendFileSync(path.join(dir, 'feed.csv'), row(6, '2026-01-01T00:04:00Z', 90) + row(7, '2025-12-31T00:00:00Z', 99));
    const again = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(again.code, again.stderr).to.equal(0);
    // Record 7 is older than the watermark: by the incremental contract it is skipped.
    expect(exportedIds(dir)).to.deep.equal(['1', '3', '4', '5', '6']);
    expect(summaries(again.stderr)[0]!.datasources.feed).to.include({ records: 7, skipped: 6 });
  });

  it('without incremental, the same records are not alerted again while they keep matching; a record that stopped matching alerts again', async () => {
    writeFiles(dir, {
      'c.yaml': config().replace('    incremental: {field: created_at}\n', ''),
      'feed.csv': HEADER + row(1, 'a', 50) + row(2, 'b', 60),
    });
    const run = () => runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect((await run()).code).to.equal(0);
    const second = await run();
    expect(summaries(second.stderr)[0]!.rules.hot).to.include({ matched: 2, deduplicated: 2, exported: 0 });
    expect(exportedIds(dir)).to.deep.equal(['1', '2']);
    // Record 2 stops matching for one run, then matches again: it alerts again. Record 1 never stopped.
    writeFileSync(path.join(dir, 'feed.csv'), HEADER + row(1, 'a', 50) + row(2, 'b', 6));
    await run();
    writeFileSync(path.join(dir, 'feed.csv'), HEADER + row(1, 'a', 50) + row(2, 'b', 60));
    await run();
    expect(exportedIds(dir)).to.deep.equal(['1', '2', '2']);
  });

  it('dedup_key names the alert by some fields; realert lets it alert again once the window has passed', async () => {
    writeFiles(dir, {
      'c.yaml': config()
        .replace('    incremental: {field: created_at}\n', '')
        .replace('export_target: out}', 'dedup_key: [id], realert: 1s, export_target: out}'),
      'feed.csv': HEADER + row(1, 'a', 50),
    });
    const run = () => runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    await run();
    // Another value, same id: the same alert by dedup_key, suppressed within the window.
    writeFileSync(path.join(dir, 'feed.csv'), HEADER + row(1, 'a', 51));
    const within = await run();
    expect(summaries(within.stderr)[0]!.rules.hot).to.include({ deduplicated: 1, exported: 0 });
    await new Promise((r) => setTimeout(r, 1100));
    const after = await run();
    expect(summaries(after.stderr)[0]!.rules.hot).to.include({ deduplicated: 0, exported: 1 });
    expect(exportedIds(dir)).to.deep.equal(['1', '1']);
  });
});

describe('dedup memory past its cap (built CLI)', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('a run matching more distinct records than a rule remembers exports all, warns with the rule and the count, and keeps the newest 100,000', async () => {
    const rows = 130_000;
    let csv = HEADER;
    for (let id = 1; id <= rows; id++) csv += row(id, '2026-01-01T00:00:00Z', 50);
    writeFiles(dir, { 'c.yaml': config().replace('    incremental: {field: created_at}\n', ''), 'feed.csv': csv });
    const first = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(first.code, first.stderr).to.equal(0);
    expect(summaries(first.stderr)[0]!.rules.hot).to.include({ matched: rows, exported: rows, deduplicated: 0 });
    const warning = first.stderr.split('\n').find((l) => l.includes('dedup memory holds'));
    expect(warning, first.stderr.slice(-2000)).to.be.a('string');
    expect(JSON.parse(warning!)).to.include({ level: 'warn', rule: 'hot', forgotten: rows - 100_000, max_keys: 100_000 });
    const remembered = JSON.parse(readFileSync(path.join(dir, '.state', 'dedup.json'), 'utf8')).rules.hot;
    expect(Object.keys(remembered)).to.have.length(100_000);
    // The same records again: the newest 100,000 are still suppressed, the forgotten ones alert again.
    const second = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(summaries(second.stderr)[0]!.rules.hot).to.include({ matched: rows, deduplicated: 100_000, exported: rows - 100_000 });
    const ids = exportedIds(dir).slice(rows);
    expect(ids[0]).to.equal('1');
    expect(ids.at(-1)).to.equal(String(rows - 100_000));
  });
});

describe('incremental reads: many records at the latest value (built CLI)', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('10,300 records sharing the latest value are exported once, even with dedup off; a warning says the field is coarse, once', async () => {
    let csv = HEADER + row(0, '2026-01-01T00:00:00Z', 50);
    for (let id = 1; id <= 10_300; id++) csv += row(id, '2026-01-02T00:00:00Z', 50);
    writeFiles(dir, { 'c.yaml': config().replace('export_target: out}', 'realert: 0s, export_target: out}'), 'feed.csv': csv });
    const first = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(first.code, first.stderr).to.equal(0);
    const warning = first.stderr.split('\n').find((l) => l.includes('share the incremental field'));
    expect(warning, first.stderr.slice(-2000)).to.be.a('string');
    expect(JSON.parse(warning!)).to.include({ level: 'warn', datasource: 'feed', field: 'created_at', value: '2026-01-02T00:00:00Z', listed: 10_300 });
    for (let run = 0; run < 2; run++) {
      const again = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
      expect(summaries(again.stderr)[0]!.rules.hot).to.include({ matched: 0, exported: 0 });
      expect(again.stderr, 'nothing was added to the list: no warning').not.to.include('share the incremental field');
    }
    appendFileSync(path.join(dir, 'feed.csv'), row(10_301, '2026-01-02T00:00:00Z', 50));
    const added = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(summaries(added.stderr)[0]!.rules.hot).to.include({ matched: 1, exported: 1 });
    expect(exportedIds(dir)).to.have.length(10_302);
    expect(new Set(exportedIds(dir)).size).to.equal(10_302);
  });
});

describe('the bundled default config in --continuous mode (built CLI)', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('prints its 8 console alerts once, not again every interval', async () => {
    const { cpSync } = await import('node:fs');
    const { repoRoot } = await import('../helpers.js');
    cpSync(path.join(repoRoot, 'config.yaml'), path.join(dir, 'config.yaml'));
    cpSync(path.join(repoRoot, 'rules'), path.join(dir, 'rules'), { recursive: true });
    cpSync(path.join(repoRoot, 'examples', 'data'), path.join(dir, 'examples', 'data'), { recursive: true });
    const cli = startCli(['--config', 'config.yaml', '--continuous', '--interval', '0.3', '--log-format', 'json'], { cwd: dir });
    await waitForSummaries(cli, 4);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr.slice(-2000)).to.equal(0);
    expect(parseNdjson(result.stdout)).to.have.length(8);
    const later = summaries(result.stderr).slice(1);
    expect(later.length).to.be.at.least(3);
    for (const s of later) for (const rule of Object.values(s.rules) as { exported: number }[]) expect(rule.exported).to.equal(0);
  });
});

describe('service state: nothing lost (built CLI)', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('a target that fails two cycles and then recovers gets every match, in order, and the spool ends empty', async () => {
    // A file where the target's folder should be: the target cannot write until it is removed.
    writeFiles(dir, { 'c.yaml': config(), 'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50), out: 'in the way' });
    const run = () => runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    const spoolFile = path.join(dir, '.state', 'spool', 'out.ndjson');

    const first = await run();
    expect(first.code, first.stderr).to.equal(1);
    expect(summaries(first.stderr)[0]!.spool).to.deep.equal({ out: 1 });
    appendFileSync(path.join(dir, 'feed.csv'), row(2, '2026-01-01T00:01:00Z', 60) + row(3, '2026-01-01T00:02:00Z', 70));
    const second = await run();
    expect(second.code).to.equal(1);
    expect(summaries(second.stderr)[0]!.spool).to.deep.equal({ out: 3 });
    expect(parseNdjson(readFileSync(spoolFile, 'utf8')).flatMap((b) => (b.records as { id: string }[]).map((r) => r.id))).to.deep.equal(['1', '2', '3']);

    rmSync(path.join(dir, 'out'));
    appendFileSync(path.join(dir, 'feed.csv'), row(4, '2026-01-01T00:03:00Z', 80));
    const third = await run();
    expect(third.code, third.stderr).to.equal(0);
    expect(exportedIds(dir)).to.deep.equal(['1', '2', '3', '4']);
    expect(existsSync(spoolFile)).to.equal(false);
    expect(summaries(third.stderr)[0]!.spool).to.deep.equal({});
  });

  it('--replay-dead-letters sends the spool and reads nothing; exit 0 once it is empty', async () => {
    writeFiles(dir, { 'c.yaml': config(), 'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50), out: 'in the way' });
    await runCli(['--config', 'c.yaml'], { cwd: dir });
    const stillDown = await runCli(['--config', 'c.yaml', '--replay-dead-letters', '--log-format', 'json'], { cwd: dir });
    expect(stillDown.code).to.equal(1);
    expect(summaries(stillDown.stderr)[0]!.spool).to.deep.equal({ out: 1 });
    rmSync(path.join(dir, 'out'));
    appendFileSync(path.join(dir, 'feed.csv'), row(2, '2026-01-01T00:01:00Z', 60));
    const replay = await runCli(['--config', 'c.yaml', '--replay-dead-letters', '--log-format', 'json'], { cwd: dir });
    expect(replay.code, replay.stderr).to.equal(0);
    // Only the spooled record: the feed was not read.
    expect(exportedIds(dir)).to.deep.equal(['1']);
    expect(summaries(replay.stderr)[0]!.datasources).to.deep.equal({});
  });

  it('a rule disabled while its target was down: the target is still created to send its spool, and the spool empties', async () => {
    writeFiles(dir, { 'c.yaml': config(), 'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50), out: 'in the way' });
    await runCli(['--config', 'c.yaml'], { cwd: dir });
    writeFileSync(path.join(dir, 'c.yaml'), config().replace('{name: hot,', '{name: hot, enabled: false,'));
    rmSync(path.join(dir, 'out'));
    const replay = await runCli(['--config', 'c.yaml', '--replay-dead-letters', '--log-format', 'json'], { cwd: dir });
    expect(replay.code, replay.stderr).to.equal(0);
    expect(exportedIds(dir)).to.deep.equal(['1']);
    expect(summaries(replay.stderr)[0]!.spool).to.deep.equal({});
  });

  it('kill -9 between delivery and the state commit loses nothing: the restart sends the cycle again', async () => {
    writeFiles(dir, { 'c.yaml': config(), 'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50) });
    await runCli(['--config', 'c.yaml'], { cwd: dir });
    appendFileSync(path.join(dir, 'feed.csv'), row(2, '2026-01-01T00:01:00Z', 60) + row(3, '2026-01-01T00:02:00Z', 70));
    const cli = startCli(['--config', 'c.yaml', '--log-format', 'json'], {
      cwd: dir,
      env: { THRESHOLD_PROCESSOR_TEST_PAUSE_BEFORE_COMMIT_MS: '20000' },
    });
    await cli.waitForStderr(/test hook: pausing before the state commit/);
    // Delivered (the file target published), not yet remembered.
    expect(exportedIds(dir)).to.deep.equal(['1', '2', '3']);
    cli.child.kill('SIGKILL');
    await cli.done;
    const restart = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(restart.code, restart.stderr).to.equal(0);
    // At least once: 2 and 3 again (sent twice), 1 not (its commit happened); none missing.
    expect(exportedIds(dir)).to.deep.equal(['1', '2', '3', '2', '3']);
    const marks = JSON.parse(readFileSync(path.join(dir, '.state', 'watermarks.json'), 'utf8'));
    expect(marks.datasources.feed.value).to.equal('2026-01-01T00:02:00Z');
    expect(readdirSync(path.join(dir, '.state')).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
  });

  it('a state folder that cannot be written stops the service with a clear message; a single run goes on without state', async () => {
    writeFiles(dir, { 'c.yaml': config('settings: {state_dir: blocked/state}\n'), 'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50), blocked: 'a file' });
    const service = await runCli(['--config', 'c.yaml', '--continuous', '--log-format', 'json'], { cwd: dir });
    expect(service.code).to.equal(1);
    expect(service.stderr).to.contain('cannot use the state folder; set settings.state_dir to a folder this user can write');
    const single = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(single.code, single.stderr).to.equal(0);
    expect(single.stderr).to.contain('running without state');
    expect(exportedIds(dir)).to.deep.equal(['1']);
  });

  it('two processes never share a state folder; a lock left by a killed process is taken over', async () => {
    writeFiles(dir, { 'c.yaml': config(), 'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50) });
    const service = startCli(['--config', 'c.yaml', '--continuous', '--interval', '60', '--log-format', 'json'], { cwd: dir });
    await service.waitForStderr(/"msg":"run summary"/);
    const second = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(second.code).to.equal(1);
    expect(second.stderr).to.contain(`is in use by process ${service.child.pid}`);
    service.child.kill('SIGKILL');
    await service.done;
    // The lock names a process that is gone: the next run takes the folder.
    expect(readFileSync(path.join(dir, '.state', 'lock'), 'utf8').split(' ')[0]).to.equal(String(service.child.pid));
    appendFileSync(path.join(dir, 'feed.csv'), row(2, '2026-01-01T00:01:00Z', 60));
    const after = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    expect(after.code, after.stderr).to.equal(0);
    expect(exportedIds(dir)).to.deep.equal(['1', '2']);
    // A run that ends gives the folder back.
    expect(existsSync(path.join(dir, '.state', 'lock'))).to.equal(false);
  });
});
