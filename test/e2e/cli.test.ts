import { expect } from 'chai';
import { cpSync, existsSync, readFileSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { spawn } from 'node:child_process';
import { cliPath, freshDirPerTest, makeTempDir, parseNdjson, repoRoot, runCli, startCli, writeFiles, logLines } from '../helpers.js';

/** The structured log lines a run wrote on stderr. */
function summaryOf(stderr: string): Record<string, any> {
  const line = logLines(stderr).find((l) => l.msg === 'run summary');
  if (!line) throw new Error(`no run summary in:\n${stderr}`);
  return line;
}

const TWO_SOURCES = `datasources:
  good:
    type: csv
    path: good.csv
  broken:
    type: csv
    path: missing.csv
processing_rules:
  - name: big
    threshold_field: v
    threshold_type: greater_than
    threshold_value: 5
    export_targets: [file, unwritable]
export_targets:
  file:
    type: file
    path: out/{rule}.ndjson
  unwritable:
    type: file
    path: blocker/x.ndjson
`;

describe('processor CLI (built, as a child process)', function () {
  this.timeout(30_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  function copyDefaultConfig(): void {
    cpSync(path.join(repoRoot, 'config.yaml'), path.join(dir, 'config.yaml'));
    cpSync(path.join(repoRoot, 'rules'), path.join(dir, 'rules'), { recursive: true });
    cpSync(path.join(repoRoot, 'examples', 'data'), path.join(dir, 'examples', 'data'), { recursive: true });
  }

  it('runs the bundled default config: writes each rule\'s matches and exits 0', async () => {
    copyDefaultConfig();
    const result = await runCli(['--config', 'config.yaml'], { cwd: dir });
    expect(result.code, result.stderr).to.equal(0);
    const out = (rule: string) => parseNdjson(readFileSync(path.join(dir, 'out', `${rule}.ndjson`), 'utf8'));
    expect(out('high_value_alerts').map((r) => r.id)).to.deep.equal(['2', '4', '8', '10']);
    expect(out('low_battery').map((r) => r.id)).to.deep.equal(['3', '6']);
    expect(out('sensor_faults').map((r) => r.id)).to.deep.equal(['4', '8']);
    expect(out('southern_sites_high').map((r) => r.id)).to.deep.equal(['3', '4', '10']);
    const first = out('high_value_alerts')[0]!;
    expect(first).to.include({ sensor: 'temp-02', value: 1043.2, recorded_at: '2026-11-24T08:00:05.000Z', _rule: 'high_value_alerts', _datasource: 'sensors' });
    expect(first._run_id).to.match(/^\d{8}T\d{6}Z-[0-9a-f]{4}$/);
    expect(Date.parse(first._matched_at as string)).to.be.closeTo(Date.now(), 60_000);

    // Not a terminal: the console target writes NDJSON on stdout, the summary is a log line.
    const printed = parseNdjson(result.stdout);
    expect(printed.filter((r) => r._rule === 'high_value_alerts')).to.have.length(4);
    expect(printed.filter((r) => r._rule === 'southern_sites_high')).to.have.length(0);
    const summary = summaryOf(result.stderr);
    expect(summary.rules.high_value_alerts).to.deep.equal({ read: 12, matched: 4, invalid: 2, exported: 8, failed: 0, deduplicated: 0 });
    expect(summary.rules.southern_sites_high).to.deep.equal({ read: 12, matched: 3, invalid: 0, exported: 3, failed: 0, deduplicated: 0 });
    expect(summary.datasources.sensors).to.deep.equal({ ok: true, records: 12 });
  });

  it('--dry-run shows what would be exported and writes nothing', async () => {
    copyDefaultConfig();
    const result = await runCli(['--config', 'config.yaml', '--dry-run'], { cwd: dir });
    expect(result.code, result.stderr).to.equal(0);
    expect(existsSync(path.join(dir, 'out'))).to.equal(false);
    expect(result.stdout).to.include('dry run: nothing was exported');
    expect(result.stdout).to.include('would export 11 records to "alerts_file" (file)');
    expect(result.stdout).to.include('high_value_alerts: 4');
    expect(result.stdout).to.include('"sensor":"temp-02"');
  });

  it('--validate on the default config exits 0 and names the rule files', async () => {
    const result = await runCli(['--config', 'config.yaml', '--validate']);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.match(/config\.yaml: valid: 1 datasources, 4 rules \(rule files: rules\/sensors\.yaml, rules\/sites\.yaml\), 2 export targets/);
  });

  it('--validate on a broken config exits 2 with file:line:col for each problem', async () => {
    writeFiles(dir, {
      'bad.yaml': `datasources:
  s: {type: csv, path: a.csv}
processing_rules:
  - name: r
    threshold_field: v
    threshold_type: greater_thn
    threshold_value: 1
    export_target: out
export_targets:
  out: {type: file, path: o.ndjson, formt: csv}
`,
    });
    const result = await runCli(['--config', 'bad.yaml', '--validate'], { cwd: dir });
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include('bad.yaml:6:21: processing_rules[0].threshold_type: unknown operator "greater_thn"; did you mean "greater_than"?');
    expect(result.stderr).to.include('bad.yaml:10:37: export_targets.out.formt: unknown key "formt"; did you mean "format"?');
    expect(result.stderr).to.include('bad.yaml: 2 problems; nothing was run');
    expect(result.stdout).to.equal('');
  });

  it("the older tool's config validates, and running a connector not in this build fails clearly with exit 1", async () => {
    writeFiles(dir, {
      'legacy.yaml': `datasources:
  my_database: { type: "postgresql", host: "localhost", port: 5432, database: "analytics", username: "user", password: "\${DB_PASSWORD}", query: "SELECT * FROM metrics" }
processing_rules:
  - name: "high_value_alerts"
    description: "Alert on high value records"
    threshold_field: "value"
    threshold_type: "greater_than"
    threshold_value: 1000
    export_target: "alert_api"
export_targets:
  alert_api: { type: "rest_api", url: "https://alerts.example.com/api/alerts", method: "POST", headers: { Authorization: "Bearer token" } }
`,
    });
    const env = { DB_PASSWORD: 'sup3r-s3cret' };
    const validated = await runCli(['--config', 'legacy.yaml', '--validate'], { cwd: dir, env });
    expect(validated.code, validated.stderr).to.equal(0);
    const result = await runCli(['--config', 'legacy.yaml'], { cwd: dir, env });
    expect(result.code).to.equal(1);
    const errors = logLines(result.stderr).filter((l) => l.level === 'error');
    expect(errors.find((l) => l.datasource === 'my_database')?.err.message).to.match(/datasource "my_database" \(postgresql, localhost:5432\/analytics as user\)/);
    // The rest_api target is part of this build: it is created, and has nothing to send.
    expect(errors.filter((l) => l.target === 'alert_api')).to.deep.equal([]);
    expect(result.stderr).not.to.include('sup3r-s3cret');
  });

  it('a failing datasource and a failing target name themselves; the others still run; exit 1', async () => {
    writeFiles(dir, { 'c.yaml': TWO_SOURCES, 'good.csv': 'id,v\n1,3\n2,8\n', blocker: 'a file where a folder should be' });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir });
    expect(result.code).to.equal(1);
    expect(parseNdjson(readFileSync(path.join(dir, 'out', 'big.ndjson'), 'utf8')).map((r) => r.id)).to.deep.equal(['2']);
    const errors = logLines(result.stderr).filter((l) => l.level === 'error');
    expect(errors.find((l) => l.datasource === 'broken')?.err.message).to.match(/missing\.csv: no such file/);
    expect(errors.some((l) => l.target === 'unwritable')).to.equal(true);
    const summary = summaryOf(result.stderr);
    expect(summary.datasources.broken.ok).to.equal(false);
    expect(summary.targets.file).to.deep.equal({ ok: true, records: 1 });
    expect(summary.targets.unwritable.ok).to.equal(false);
    expect(summary.rules.big).to.deep.equal({ read: 2, matched: 1, invalid: 0, exported: 1, failed: 1, deduplicated: 0 });
    expect(readdirSync(dir).filter((f) => f.endsWith('.tmp'))).to.deep.equal([]);
  });

  it('--continuous runs a cycle per interval and stops after the current cycle on SIGTERM with exit 0', async () => {
    writeFiles(dir, {
      'c.yaml': `datasources:\n  s: {type: csv, path: d.csv}\nprocessing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, realert: 0s, export_target: f}\nexport_targets:\n  f: {type: file, path: "out/{run_id}.ndjson"}\n`,
      'd.csv': 'v\n5\n',
    });
    const cli = startCli(['--config', 'c.yaml', '--continuous', '--interval', '0.3'], { cwd: dir });
    await cli.waitForStderr(/run summary[\s\S]*run summary/);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr).to.equal(0);
    const summaries = logLines(result.stderr).filter((l) => l.msg === 'run summary');
    expect(summaries.length).to.be.at.least(2);
    expect(readdirSync(path.join(dir, 'out'))).to.have.length(summaries.length);
    expect(logLines(result.stderr).some((l) => l.msg === 'stopping after the current cycle' && l.signal === 'SIGTERM')).to.equal(true);
  });

  it('--help and --version exit 0; an unknown flag exits 2', async () => {
    const help = await runCli(['--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.include('--dry-run');
    const version = await runCli(['--version']);
    expect(version.stdout.trim()).to.equal(JSON.parse(readFileSync(path.join(repoRoot, 'package.json'), 'utf8')).version);
    const bad = await runCli(['--frobnicate']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.match(/Unknown option '--frobnicate'/);
    const badInterval = await runCli(['--interval', 'soon']);
    expect(badInterval.code).to.equal(2);
  });

  it('a missing config file exits 2 naming it', async () => {
    const result = await runCli(['--config', 'nope.yaml'], { cwd: dir });
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include('nope.yaml:1:1: cannot read config: no such file');
  });
});

describe('processor CLI in continuous mode', function () {
  this.timeout(30_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  const CONFIG = `datasources:\n  s: {type: csv, path: d.csv}\nprocessing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, realert: 0s, export_target: f}\nexport_targets:\n  f: {type: file, path: out.ndjson}\n`;

  it('warns when a cycle overruns the interval and starts the next one right after, never overlapping', async () => {
    writeFiles(dir, { 'c.yaml': CONFIG, 'd.csv': 'v\n' + '5\n'.repeat(20000) });
    const cli = startCli(['--config', 'c.yaml', '--continuous', '--interval', '0.001'], { cwd: dir });
    await cli.waitForStderr(/longer than the interval[\s\S]*run summary[\s\S]*run summary/);
    cli.child.kill('SIGINT');
    const result = await cli.done;
    expect(result.code, result.stderr).to.equal(0);
    const lines = result.stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    const summaries = lines.filter((l) => l.msg === 'run summary');
    // Cycles never overlap: each starts after the previous one's summary was written.
    const times = summaries.map((s) => Date.parse(s.time));
    for (let i = 1; i < summaries.length; i++) {
      expect(times[i]! - times[i - 1]!).to.be.at.least(summaries[i]!.duration_ms - 5);
    }
    expect(lines.some((l) => l.level === 'warn' && l.msg.includes('longer than the interval'))).to.equal(true);
    // append mode: every finished cycle added its 20,000 matches
    const written = readFileSync(path.join(dir, 'out.ndjson'), 'utf8').split('\n').filter(Boolean).length;
    expect(written).to.equal(20000 * summaries.length);
  });
});

describe('processor CLI, one run interrupted', function () {
  this.timeout(30_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('SIGINT cancels the run: exit 130, no output file and no temp file left', async () => {
    const rows = Array.from({ length: 400_000 }, (_, i) => `${i},${i % 10}`).join('\n');
    writeFiles(dir, {
      'c.yaml': `datasources:\n  s: {type: csv, path: big.csv}\nprocessing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, realert: 0s, export_target: f}\nexport_targets:\n  f: {type: file, path: out/r.ndjson}\nsettings: {log_level: debug}\n`,
      'big.csv': `id,v\n${rows}\n`.repeat(3),
    });
    const cli = startCli(['--config', 'c.yaml'], { cwd: dir });
    await cli.waitForStderr(/"datasource":"s"/);
    cli.child.kill('SIGINT');
    const result = await cli.done;
    expect(result.code, result.stderr).to.equal(130);
    expect(result.stderr).to.include('interrupted: stopping; output not yet made visible is discarded');
    const summary = summaryOf(result.stderr);
    expect(summary.rules.r.exported).to.equal(0);
    expect(summary.rules.r.failed).to.equal(summary.rules.r.matched);
    const left = existsSync(path.join(dir, 'out')) ? readdirSync(path.join(dir, 'out')) : [];
    expect(left).to.deep.equal([]);
  });
});

describe('processor CLI, a target that cannot write', function () {
  this.timeout(30_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('a write error (file size limit) fails the target by name, exits 1 with a summary, and leaves no temp file', async () => {
    const rows = (tag: string) => 'id,v,pad\n' + Array.from({ length: 20_000 }, (_, i) => `${tag}${i},${i % 10},${'x'.repeat(40)}`).join('\n') + '\n';
    writeFiles(dir, {
      'c.yaml': `datasources:\n  a: {type: csv, path: a.csv}\n  b: {type: csv, path: b.csv}\nprocessing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: f}\nexport_targets:\n  f: {type: file, path: out/all.ndjson}\n`,
      'a.csv': rows('a'),
      'b.csv': rows('b'),
    });
    // A real EFBIG from the kernel: files are limited to 256 KiB, and SIGXFSZ is ignored so the write fails instead.
    const child = spawn('bash', ['-c', 'trap "" XFSZ; ulimit -f 256; exec "$0" "$@"', process.execPath, cliPath, '--config', 'c.yaml'], {
      cwd: dir,
      env: { PATH: process.env.PATH ?? '' },
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.stdout.resume();
    const code = await new Promise<number | null>((resolve) => child.on('close', resolve));
    expect(code, stderr).to.equal(1);
    const summary = summaryOf(stderr);
    expect(summary.targets.f.ok).to.equal(false);
    expect(summary.targets.f.error).to.match(/EFBIG|too large/i);
    expect(summary.rules.r.exported).to.equal(0);
    expect(summary.rules.r.failed).to.equal(summary.rules.r.matched);
    expect(existsSync(path.join(dir, 'out')) ? readdirSync(path.join(dir, 'out')) : []).to.deep.equal([]);
  });
});

describe('processor CLI in continuous mode, signals during a cycle', function () {
  this.timeout(30_000);
  let dir: string;
  let cleanup: () => void;
  beforeEach(() => {
    ({ dir, cleanup } = makeTempDir());
    const rows = Array.from({ length: 300_000 }, (_, i) => `${i},${i % 10}`).join('\n');
    writeFiles(dir, {
      'c.yaml': `datasources:\n  s: {type: csv, path: big.csv}\nprocessing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, realert: 0s, export_target: f}\nexport_targets:\n  f: {type: file, path: out/r.ndjson}\n`,
      'big.csv': `id,v\n${rows}\n${rows}\n`,
    });
  });
  afterEach(() => cleanup());

  it('SIGTERM during a cycle lets it finish and publish, then exits 0', async () => {
    const cli = startCli(['--config', 'c.yaml', '--continuous', '--interval', '60', '--log-level', 'debug'], { cwd: dir });
    await cli.waitForStderr(/cycle started/);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr).to.equal(0);
    const summary = summaryOf(result.stderr);
    expect(summary.rules.r.matched).to.equal(480_000);
    const lines = readFileSync(path.join(dir, 'out', 'r.ndjson'), 'utf8').split('\n').filter(Boolean).length;
    expect(lines).to.equal(480_000);
    expect(result.stderr.indexOf('stopping after the current cycle')).to.be.below(result.stderr.indexOf('run summary'));
  });

  it('a second signal aborts the cycle: exit 130 and nothing published', async () => {
    const cli = startCli(['--config', 'c.yaml', '--continuous', '--interval', '60', '--log-level', 'debug'], { cwd: dir });
    await cli.waitForStderr(/cycle started/);
    cli.child.kill('SIGTERM');
    await cli.waitForStderr(/stopping after the current cycle/);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr).to.equal(130);
    expect(result.stderr).to.include('second signal: aborting the current cycle');
    expect(existsSync(path.join(dir, 'out')) ? readdirSync(path.join(dir, 'out')) : []).to.deep.equal([]);
  });
});
