import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { freshDirPerTest, parseNdjson, runCli, startCli, writeFiles, type RunningCli } from '../helpers.js';

const BASE =
  'datasources:\n  feed: {type: csv, path: feed.csv}\n' +
  'export_targets:\n  out: {type: file, path: "out/{rule}.ndjson", mode: append, include_metadata: false}\n' +
  'rules_dir: rules\n';
const HOT = '- {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 10, export_target: out}\n';
const COLD = '- {name: cold, threshold_field: v, threshold_type: less_than, threshold_value: 0, export_target: out}\n';

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

function linesOf(dir: string, rule: string): Record<string, unknown>[] {
  const file = path.join(dir, 'out', `${rule}.ndjson`);
  return existsSync(file) ? parseNdjson(readFileSync(file, 'utf8')) : [];
}

async function get(url: string): Promise<{ status: number; text: string }> {
  const res = await fetch(url);
  return { status: res.status, text: await res.text() };
}

describe('service reload (built CLI)', function () {
  this.timeout(60_000);
  // A test that fails half-way leaves its service running, which would keep mocha from exiting
  // (and write in the test's folder while it is removed: this hook runs first).
  const running: RunningCli[] = [];
  const start = (args: string[], options: { cwd: string }) => {
    const cli = startCli(args, options);
    running.push(cli);
    return cli;
  };
  afterEach(async () => {
    for (const cli of running) if (cli.child.exitCode === null && cli.child.signalCode === null) cli.child.kill('SIGKILL');
    await Promise.all(running.splice(0).map((cli) => cli.done));
  });
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('SIGHUP with a valid change makes a new rule take effect on the next cycle; a broken file is rejected and the old rules keep running', async () => {
    writeFiles(dir, { 'c.yaml': BASE, 'rules/r.yaml': HOT, 'feed.csv': 'id,v\n1,50\n2,-5\n' });
    const cli = start(['--config', 'c.yaml', '--continuous', '--interval', '0.5', '--log-format', 'json'], { cwd: dir });
    await cli.waitForStderr(/"msg":"run summary"/);
    expect(linesOf(dir, 'cold')).to.have.length(0);

    writeFileSync(path.join(dir, 'rules', 'r.yaml'), HOT + COLD);
    cli.child.kill('SIGHUP');
    await cli.waitForStderr(/config reloaded/);
    await cli.waitForStderr(/"cold"[^\n]*"msg":"run summary"/);
    expect(linesOf(dir, 'cold').map((r) => r.id)).to.deep.equal(['2']);

    writeFileSync(path.join(dir, 'rules', 'r.yaml'), HOT + COLD + '- {name: broken, threshold_field: v, threshold_type: greater_thn, threshold_value: 1, export_target: out}\n');
    cli.child.kill('SIGHUP');
    await cli.waitForStderr(/reload rejected; the previous config keeps running/);
    // A new record after the rejected reload: the old rules still run and export it.
    writeFileSync(path.join(dir, 'feed.csv'), 'id,v\n1,50\n2,-5\n3,-7\n');
    await cli.waitForStderr(/"cold":\{"read":3[^\n]*"msg":"run summary"/);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr.slice(-3000)).to.equal(0);
    expect(result.stderr).to.match(/reload rejected: rules\/r\.yaml:3:\d+: [^\n]*greater_thn/);
    expect(linesOf(dir, 'cold').map((r) => r.id)).to.deep.equal(['2', '3']);
    // Only the rules changed: the datasource and the target kept their connectors.
    expect(result.stderr).to.match(/"kept_connections":\["feed","out"\][^\n]*config reloaded/);
    // Every line of a cycle carries its run id.
    const cycleLines = result.stderr.split('\n').filter((l) => l.includes('"msg":"run summary"'));
    for (const line of cycleLines) expect(JSON.parse(line).run_id).to.match(/^\d{8}T\d{6}Z-[0-9a-f]{4}$/);
  });

  it('--watch reloads when a rule file changes on disk', async () => {
    writeFiles(dir, { 'c.yaml': BASE, 'rules/r.yaml': HOT, 'feed.csv': 'id,v\n1,50\n2,-5\n' });
    const cli = start(['--config', 'c.yaml', '--continuous', '--watch', '--interval', '0.5', '--log-format', 'json'], { cwd: dir });
    await cli.waitForStderr(/"msg":"run summary"/);
    writeFileSync(path.join(dir, 'rules', 'r.yaml'), HOT + COLD);
    await cli.waitForStderr(/"reason":"changed: [^"]*r\.yaml"[^\n]*reloading the config/);
    await cli.waitForStderr(/"cold"[^\n]*"msg":"run summary"/);
    cli.child.kill('SIGTERM');
    expect((await cli.done).code).to.equal(0);
    expect(linesOf(dir, 'cold').map((r) => r.id)).to.deep.equal(['2']);
  });

  it('--watch: a rules folder removed is not a reload to no rules (rejected, the old rules keep alerting), and once copied back it is watched and loaded', async () => {
    const base = BASE.replace('rules_dir: rules\n', ''); // the default rules folder, which a load may find missing
    writeFiles(dir, { 'c.yaml': base, 'rules/r.yaml': HOT, 'release/rules/r.yaml': HOT + COLD, 'feed.csv': 'id,v\n1,50\n2,-5\n' });
    const cli = start(['--config', 'c.yaml', '--continuous', '--watch', '--interval', '0.5', '--log-format', 'json'], { cwd: dir });
    await cli.waitForStderr(/"msg":"run summary"/);

    rmSync(path.join(dir, 'rules'), { recursive: true });
    await cli.waitForStderr(/reload rejected: [^\n]*no enabled rules[^\n]*; the previous config keeps running/);
    writeFileSync(path.join(dir, 'feed.csv'), 'id,v\n1,50\n2,-5\n3,60\n');
    await cli.waitForStderr(/"hot":\{"read":3[^\n]*"msg":"run summary"/);
    expect(linesOf(dir, 'hot').map((r) => r.id)).to.deep.equal(['1', '3']);

    cpSync(path.join(dir, 'release', 'rules'), path.join(dir, 'rules'), { recursive: true });
    await cli.waitForStderr(/"rules":2[^\n]*config reloaded/);
    await cli.waitForStderr(/"cold"[^\n]*"msg":"run summary"/);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr.slice(-3000)).to.equal(0);
    expect(result.stderr).to.match(/"reason":"removed: [^"]*rules\/r\.yaml"[^\n]*reloading the config/);
    // The running config is still the one loaded before the removal, so the copy reads as a change to it.
    expect(result.stderr).to.match(/"reason":"changed: [^"]*rules\/r\.yaml"[^\n]*reloading the config/);
    expect(linesOf(dir, 'cold').map((r) => r.id)).to.deep.equal(['2']);
  });

  it('--watch notices a Kubernetes ConfigMap update (its ..data symlink swapped) and the new threshold takes effect', async () => {
    // The layout the kubelet mounts: files in a dated folder, reached through ..data, which an update replaces in one rename.
    const config = (threshold: number) =>
      'datasources:\n  feed: {type: csv, path: ../feed.csv}\n' +
      'export_targets:\n  out: {type: file, path: "../out/{rule}.ndjson", mode: append, include_metadata: false}\n' +
      'settings: {state_dir: ../state}\n' +
      `processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: ${threshold}, export_target: out}\n`;
    const mount = path.join(dir, 'config');
    writeFiles(dir, { 'config/..2026_12_01/config.yaml': config(100), 'feed.csv': 'id,v\n1,50\n2,-5\n' });
    symlinkSync('..2026_12_01', path.join(mount, '..data'));
    symlinkSync('..data/config.yaml', path.join(mount, 'config.yaml'));
    const cli = start(['--config', 'config/config.yaml', '--continuous', '--watch', '--interval', '0.5', '--log-format', 'json'], { cwd: dir });
    await cli.waitForStderr(/"msg":"run summary"/);
    expect(linesOf(dir, 'hot')).to.have.length(0);

    writeFiles(mount, { '..2026_12_02/config.yaml': config(10) });
    symlinkSync('..2026_12_02', path.join(mount, '..data_tmp'));
    renameSync(path.join(mount, '..data_tmp'), path.join(mount, '..data'));
    rmSync(path.join(mount, '..2026_12_01'), { recursive: true });
    await cli.waitForStderr(/"reason":"changed: [^"]*config\/config\.yaml"[^\n]*reloading the config/);
    await cli.waitForStderr(/config reloaded/);
    await cli.waitForStderr(/"hot":\{"read":2,"matched":1[^\n]*"msg":"run summary"/);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr.slice(-3000)).to.equal(0);
    expect(linesOf(dir, 'hot').map((r) => r.id)).to.deep.equal(['1']);
  });

  it('a rules folder mounted from a ConfigMap loads each rule once (not through ..data and the dated folder too), and --watch sees its update', async () => {
    // The kubelet's layout: rules/..2026_12_01/hot.yaml, rules/..data -> ..2026_12_01, rules/hot.yaml -> ..data/hot.yaml.
    const rules = path.join(dir, 'rules');
    writeFiles(dir, { 'c.yaml': BASE, 'feed.csv': 'id,v\n1,50\n2,-5\n', 'rules/..2026_12_01/hot.yaml': HOT.replace('threshold_value: 10', 'threshold_value: 100') });
    symlinkSync('..2026_12_01', path.join(rules, '..data'));
    symlinkSync('..data/hot.yaml', path.join(rules, 'hot.yaml'));
    writeFileSync(path.join(rules, '.#hot.yaml'), 'an editor lock file, not a rule: {');
    const validated = await runCli(['--config', 'c.yaml', '--validate'], { cwd: dir });
    expect(validated.code, validated.stderr).to.equal(0);
    expect(validated.stdout + validated.stderr).to.include('1 rules (rule files: rules/hot.yaml)');

    const cli = start(['--config', 'c.yaml', '--continuous', '--watch', '--interval', '0.5', '--log-format', 'json'], { cwd: dir });
    await cli.waitForStderr(/"hot":\{"read":2,"matched":0[^\n]*"msg":"run summary"/);
    writeFiles(rules, { '..2026_12_02/hot.yaml': HOT });
    symlinkSync('..2026_12_02', path.join(rules, '..data_tmp'));
    renameSync(path.join(rules, '..data_tmp'), path.join(rules, '..data'));
    rmSync(path.join(rules, '..2026_12_01'), { recursive: true });
    await cli.waitForStderr(/config reloaded/);
    await cli.waitForStderr(/"hot":\{"read":2,"matched":1[^\n]*"msg":"run summary"/);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr.slice(-3000)).to.equal(0);
    expect(result.stderr).not.to.include('duplicate rule name');
    expect(linesOf(dir, 'hot').map((r) => r.id)).to.deep.equal(['1']);
  });

  it('--watch watches a custom rules_dir, its subfolders included, and reloads on a change of content only', async () => {
    const config = BASE.replace('rules_dir: rules\n', 'rules_dir: alerting\n') + 'processing_rules:\n' + HOT.replace(/^-/, '  -');
    writeFiles(dir, { 'c.yaml': config, 'feed.csv': 'id,v\n1,50\n2,-5\n' });
    mkdirSync(path.join(dir, 'alerting'));
    const cli = start(['--config', 'c.yaml', '--continuous', '--watch', '--interval', '0.5', '--log-format', 'json'], { cwd: dir });
    await cli.waitForStderr(/"msg":"run summary"/);

    // Saved unchanged, and a file that is no rule: nothing to reload.
    writeFileSync(path.join(dir, 'c.yaml'), config);
    writeFileSync(path.join(dir, 'alerting', 'README.txt'), 'team rules go in subfolders\n');
    await sleep(1000);
    writeFiles(dir, { 'alerting/team-b/cold.yaml': COLD });
    await cli.waitForStderr(/"cold"[^\n]*"msg":"run summary"/);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr.slice(-3000)).to.equal(0);
    const reloads = result.stderr.split('\n').filter((l) => l.includes('"msg":"reloading the config"'));
    expect(reloads, result.stderr.slice(-3000)).to.have.length(1);
    expect(reloads[0]).to.match(/"reason":"added: [^"]*alerting\/team-b\/cold\.yaml"/);
    expect(linesOf(dir, 'cold').map((r) => r.id)).to.deep.equal(['2']);
  });
});

/** Serves a CSV slowly: the header, then one row every `everyMs`. */
async function slowCsvServer(rows: number, everyMs: number): Promise<{ url: string; close: () => Promise<void> }> {
  const server: Server = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/csv' });
    res.write('id,v\n');
    let i = 0;
    const timer = setInterval(() => {
      if (i >= rows) {
        clearInterval(timer);
        res.end();
        return;
      }
      res.write(`${i},${50 + i}\n`);
      i++;
    }, everyMs);
    res.on('close', () => clearInterval(timer));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/feed.csv`,
    close: () => new Promise((r) => (server.closeAllConnections(), server.close(() => r()))),
  };
}

describe('service shutdown (built CLI)', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('SIGTERM during a slow cycle lets it complete: every record exported, state saved, exit 0', async () => {
    const server = await slowCsvServer(10, 200);
    try {
      writeFiles(dir, {
        'c.yaml':
          `datasources:\n  feed: {type: csv, path: "${server.url}"}\n` +
          'processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 10, export_target: out}\n' +
          'export_targets:\n  out: {type: file, path: out/hot.ndjson, include_metadata: false}\n',
      });
      const cli = startCli(['--config', 'c.yaml', '--continuous', '--interval', '60', '--log-format', 'json', '--log-level', 'debug'], { cwd: dir });
      await cli.waitForStderr(/cycle started/);
      await new Promise((r) => setTimeout(r, 500));
      cli.child.kill('SIGTERM');
      const result = await cli.done;
      expect(result.code, result.stderr.slice(-3000)).to.equal(0);
      expect(linesOf(dir, 'hot').map((r) => r.id)).to.deep.equal(['0', '1', '2', '3', '4', '5', '6', '7', '8', '9']);
      expect(JSON.parse(readFileSync(path.join(dir, '.state', 'dedup.json'), 'utf8')).rules.hot).to.not.deep.equal({});
    } finally {
      await server.close();
    }
  });

  it('SIGTERM during a hung target exits within --shutdown-timeout (which overrides the setting) plus the cancel grace', async function () {
    if (process.platform !== 'linux') this.skip();
    writeFiles(dir, {
      // A recursive mkdir under /proc never returns and cannot be aborted: a target that hangs.
      'c.yaml':
        'settings: {shutdown_timeout: 10m}\n' +
        'datasources:\n  s: {type: csv, path: data.csv}\n' +
        'processing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: stuck}\n' +
        'export_targets:\n  stuck: {type: file, path: "/proc/self/no/such/{rule}.ndjson"}\n',
      'data.csv': 'id,v\n1,5\n',
    });
    const cli = startCli(['--config', 'c.yaml', '--continuous', '--shutdown-timeout', '1s', '--log-format', 'json'], { cwd: dir });
    await new Promise((r) => setTimeout(r, 1500));
    const sent = Date.now();
    cli.child.kill('SIGTERM');
    await cli.waitForStderr(/did not finish within the shutdown timeout/, 5_000);
    expect(Date.now() - sent).to.be.within(800, 4_000);
    const result = await cli.done;
    // 130: the cycle had to be cancelled (it is not committed; its records are read again at the next start).
    expect(result.code, result.stderr.slice(-2000)).to.equal(130);
    expect(Date.now() - sent).to.be.below(15_000);
    expect(existsSync(path.join(dir, '.state', 'dedup.json'))).to.equal(false);
  });
});

describe('service observability (built CLI)', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  /** Starts the service and returns it with the metrics port it logged. */
  async function startWithMetrics(args: string[]): Promise<{ cli: ReturnType<typeof startCli>; base: string }> {
    const cli = startCli(args, { cwd: dir });
    let text = '';
    cli.child.stderr!.on('data', (d) => (text += d));
    await cli.waitForStderr(/serving metrics on http:\/\/127\.0\.0\.1:\d+/);
    const port = /serving metrics on http:\/\/127\.0\.0\.1:(\d+)/.exec(text)![1];
    return { cli, base: `http://127.0.0.1:${port}` };
  }

  it('/metrics counts what happened per rule, datasource and target; /healthz answers 200 after a good cycle', async () => {
    writeFiles(dir, {
      'c.yaml': BASE.replace('rules_dir: rules\n', '') + 'processing_rules:\n  ' + HOT + 'settings: {metrics: {port: 0}}\n',
      'feed.csv': 'id,v\n1,50\n2,5\n3,70\n',
    });
    const { cli, base } = await startWithMetrics(['--config', 'c.yaml', '--continuous', '--interval', '0.5', '--log-format', 'json']);
    try {
      await cli.waitForStderr(/("msg":"run summary"[\s\S]*){2}/);
      const metrics = (await get(`${base}/metrics`)).text;
      const cycles = Number(/^threshold_cycles_total\{outcome="ok"\} (\d+)$/m.exec(metrics)![1]);
      expect(cycles).to.be.at.least(2);
      // Each cycle reads 3 records; the 2 matches are exported once, then deduplicated every later cycle.
      expect(metrics).to.match(new RegExp(`^threshold_records_read_total\\{datasource="feed"\\} ${cycles * 3}$`, 'm'));
      expect(metrics).to.match(new RegExp(`^threshold_records_matched_total\\{rule="hot"\\} ${cycles * 2}$`, 'm'));
      expect(metrics).to.match(new RegExp(`^threshold_records_deduplicated_total\\{rule="hot"\\} ${(cycles - 1) * 2}$`, 'm'));
      expect(metrics).to.match(/^threshold_records_exported_total\{rule="hot",target="out"\} 2$/m);
      expect(metrics).to.match(new RegExp(`^threshold_cycle_duration_seconds_count ${cycles}$`, 'm'));
      expect(metrics).to.match(/^threshold_last_success_timestamp_seconds \d+(\.\d+)?$/m);
      const health = await get(`${base}/healthz`);
      expect(health.status).to.equal(200);
      expect(health.text).to.match(/^ok: last successful cycle/);
    } finally {
      cli.child.kill('SIGTERM');
      expect((await cli.done).code).to.equal(0);
    }
  });

  it('/healthz answers 503 while cycles fail, and the dead-letter size shows in /metrics; --metrics-port wins over the setting', async () => {
    writeFiles(dir, {
      'c.yaml': BASE.replace('rules_dir: rules\n', '') + 'processing_rules:\n  ' + HOT + 'settings: {metrics: {port: 1}}\n',
      'feed.csv': 'id,v\n1,50\n2,5\n3,70\n',
      out: 'a file where the target folder should be',
    });
    const { cli, base } = await startWithMetrics(['--config', 'c.yaml', '--continuous', '--interval', '0.3', '--metrics-port', '0', '--log-format', 'json']);
    try {
      await cli.waitForStderr(/("msg":"run summary"[\s\S]*){2}/);
      const health = await get(`${base}/healthz`);
      expect(health.status).to.equal(503);
      expect(health.text).to.match(/^unhealthy: no successful cycle yet \(last: failed\)/);
      const metrics = (await get(`${base}/metrics`)).text;
      expect(metrics).to.match(/^threshold_dead_letter_records\{target="out"\} 2$/m);
      expect(metrics).to.match(/^threshold_records_failed_total\{rule="hot",target="out"\} [1-9]\d*$/m);
      expect(metrics).to.match(/^threshold_cycles_total\{outcome="failed"\} [1-9]\d*$/m);
    } finally {
      cli.child.kill('SIGTERM');
      expect((await cli.done).code).to.equal(0);
    }
  });
});

describe('service flags (built CLI)', function () {
  this.timeout(30_000);

  for (const [args, message] of [
    [['--watch'], '--watch needs --continuous'],
    [['--continuous', '--metrics-port', 'http'], '--metrics-port needs a TCP port from 0 to 65535, got "http"'],
    [['--continuous', '--metrics-port', '70000'], '--metrics-port needs a TCP port'],
    [['--metrics-port', '9464'], '--metrics-port needs --continuous'],
    [['--continuous', '--shutdown-timeout', 'soon'], '--shutdown-timeout needs a duration such as 30s or 2m'],
    [['--replay-dead-letters', '--continuous'], '--replay-dead-letters is a single run of its own'],
  ] as const) {
    it(`${args.join(' ')}: exit 2, saying what is wrong`, async () => {
      const result = await runCli([...args]);
      expect(result.code).to.equal(2);
      expect(result.stderr).to.contain(message);
    });
  }
});
