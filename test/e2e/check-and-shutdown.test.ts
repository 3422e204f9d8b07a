import { expect } from 'chai';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { freshDirPerTest, runCli, startCli, writeFiles } from '../helpers.js';

const TOKEN = 'tok-3f9a1c77e2-secret';

/** A server that answers 401 and echoes the Authorization header it got, as careless servers do. */
async function echoingUnauthorizedServer(): Promise<{ url: string; hits: () => number; close: () => Promise<void> }> {
  let hits = 0;
  const server: Server = createServer((req, res) => {
    hits++;
    res.writeHead(401, { 'content-type': 'text/plain' });
    res.end(`unauthorized: ${req.headers.authorization ?? '(none)'}`);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/data.csv`, hits: () => hits, close: () => new Promise((r) => server.close(() => r())) };
}

describe('processor --check', function () {
  this.timeout(30_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('prints one ok row per datasource and target, and exits 0', async () => {
    writeFiles(dir, {
      'c.yaml':
        'datasources:\n  readings: {type: csv, path: data.csv}\n' +
        'processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: out}\n' +
        'export_targets:\n  out: {type: file, path: "out/{rule}.ndjson"}\n  screen: {type: console}\n',
      'data.csv': 'id,v\n1,5\n',
    });
    const result = await runCli(['--check', '--config', 'c.yaml'], { cwd: dir });
    expect(result.code, result.stderr).to.equal(0);
    const lines = result.stdout.trim().split('\n');
    expect(lines[0]).to.match(/^name\s+kind\s+type\s+status\s+latency\s+detail$/);
    expect(result.stdout).to.match(/^readings\s+datasource\s+csv\s+ok\s+\d+ ms/m);
    expect(result.stdout).to.match(/^out\s+target\s+file\s+ok\s+\d+ ms/m);
    // A target no rule uses is still checked.
    expect(result.stdout).to.match(/^screen\s+target\s+console\s+ok/m);
    expect(result.stdout).to.contain('all 3 checks passed');
    // A check writes nothing that stays.
    expect(await import('node:fs').then((fs) => fs.existsSync(`${dir}/out/hot.ndjson`))).to.equal(false);
  });

  it('names a datasource whose file is missing and exits 1; the other checks still run', async () => {
    writeFiles(dir, {
      'c.yaml':
        'datasources:\n  gone: {type: csv, path: nowhere/missing.csv}\n  here: {type: csv, path: data.csv}\n' +
        'processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: out}\n' +
        'export_targets:\n  out: {type: console}\n',
      'data.csv': 'id,v\n1,5\n',
    });
    const result = await runCli(['--check', '--config', 'c.yaml'], { cwd: dir });
    expect(result.code, result.stdout + result.stderr).to.equal(1);
    expect(result.stdout).to.match(/^gone\s+datasource\s+csv\s+FAILED\s+\d+ ms\s+.*missing\.csv/m);
    expect(result.stdout).to.match(/^here\s+datasource\s+csv\s+ok/m);
    expect(result.stdout).to.contain('1 of 3 checks failed');
  });

  it('never prints a secret from a header, even when the server echoes it back', async () => {
    const server = await echoingUnauthorizedServer();
    try {
      writeFiles(dir, {
        'c.yaml':
          `datasources:\n  remote:\n    type: csv\n    path: ${server.url}\n    headers: {Authorization: "Bearer \${API_TOKEN}"}\n` +
          'processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: out}\n' +
          'export_targets:\n  out: {type: console}\n',
      });
      const result = await runCli(['--check', '--config', 'c.yaml', '--log-level', 'debug'], { cwd: dir, env: { API_TOKEN: TOKEN } });
      expect(server.hits(), 'the check should have reached the server').to.be.greaterThan(0);
      expect(result.code, result.stdout + result.stderr).to.equal(1);
      expect(result.stdout).to.match(/^remote\s+datasource\s+csv\s+FAILED.*401/m);
      expect(result.stdout + result.stderr).not.to.contain(TOKEN);
      expect(result.stdout + result.stderr).not.to.contain(TOKEN.slice(4, 16));
    } finally {
      await server.close();
    }
  });
});

describe('processor: a signal ends the process in bounded time, whatever is stuck', function () {
  this.timeout(40_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  // A recursive mkdir under /proc never returns (Node's thread pool spins), and cannot be aborted.
  const stuckConfig =
    'datasources:\n  s: {type: csv, path: data.csv}\n' +
    'processing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: stuck}\n' +
    'export_targets:\n  stuck: {type: file, path: "/proc/self/no/such/{rule}.ndjson"}\n';

  it('a single run exits 130 within the cancel grace period after SIGTERM', async function () {
    if (process.platform !== 'linux') this.skip();
    writeFiles(dir, { 'c.yaml': stuckConfig, 'data.csv': 'id,v\n1,5\n2,7\n' });
    const cli = startCli(['--config', 'c.yaml', '--log-level', 'debug'], { cwd: dir });
    // Give the run time to reach the target's mkdir.
    await new Promise((r) => setTimeout(r, 1500));
    const sent = Date.now();
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    const waited = Date.now() - sent;
    expect(result.code, result.stderr.slice(-2000)).to.equal(130);
    // The stuck mkdir is left behind in the thread pool; the run stops waiting for it at once.
    expect(waited).to.be.below(15_000);
    expect(result.stderr).to.contain('interrupted');
  });

  it('--continuous: the first SIGTERM waits shutdown_timeout, then cancels, then exits within the grace period', async function () {
    if (process.platform !== 'linux') this.skip();
    writeFiles(dir, { 'c.yaml': `settings: {shutdown_timeout: 2s}\n${stuckConfig}`, 'data.csv': 'id,v\n1,5\n' });
    const cli = startCli(['--config', 'c.yaml', '--continuous', '--interval', '60'], { cwd: dir });
    await new Promise((r) => setTimeout(r, 1500));
    const sent = Date.now();
    cli.child.kill('SIGTERM');
    await cli.waitForStderr(/did not finish within the shutdown timeout/, 8_000);
    expect(Date.now() - sent).to.be.within(1_500, 6_000);
    const result = await cli.done;
    expect(result.code, result.stderr.slice(-2000)).to.equal(130);
    expect(Date.now() - sent).to.be.below(20_000);
  });
});

describe('processor --check against real servers (PostgreSQL, S3)', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('a row per PostgreSQL datasource and target and per S3 target, FAILED rows say why, no password or secret key printed', async () => {
    const { TEST_DATABASE_URL } = await import('../support/postgres-db.js');
    const { startS3Server } = await import('../support/s3-server.js');
    const s3 = await startS3Server();
    const url = new URL(TEST_DATABASE_URL);
    url.password = 'pg-pass-never-shown-5521';
    const wrongDb = new URL(url);
    wrongDb.pathname = '/tp_check_no_such_db';
    try {
      const bucket = `tp-check-${Date.now()}`;
      await s3.createBucket(bucket);
      writeFiles(dir, {
        'c.yaml':
          'datasources:\n' +
          `  orders: {type: postgresql, url: "${url.href}", query: "SELECT 1 AS v"}\n` +
          `  gone: {type: postgresql, url: "${wrongDb.href}", query: "SELECT 1 AS v"}\n` +
          'processing_rules:\n  - {name: hot, datasource: orders, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: lake}\n' +
          'export_targets:\n' +
          `  lake: {type: s3, bucket: ${bucket}, endpoint: "${s3.endpoint}", force_path_style: true, access_key_id: S3RVER, secret_access_key: "\${S3_SECRET}"}\n` +
          `  db: {type: postgresql, url: "${url.href}", table: tp_check_table, create_table: true}\n`,
      });
      const result = await runCli(['--check', '--config', 'c.yaml'], { cwd: dir, env: { S3_SECRET: 's3-secret-never-shown-7731' } });
      expect(result.code, result.stdout + result.stderr).to.equal(1);
      expect(result.stdout).to.match(/^orders\s+datasource\s+postgresql\s+ok\s+\d+ ms/m);
      expect(result.stdout).to.match(/^gone\s+datasource\s+postgresql\s+FAILED\s+\d+ ms\s+.*tp_check_no_such_db.*does not exist/m);
      expect(result.stdout).to.match(/^lake\s+target\s+s3\s+ok\s+\d+ ms\s+bucket s3:\/\//m);
      expect(result.stdout).to.match(/^db\s+target\s+postgresql\s+ok/m);
      expect(result.stdout).to.contain('1 of 4 checks failed');
      for (const secret of ['pg-pass-never-shown-5521', 's3-secret-never-shown-7731']) {
        expect(result.stdout + result.stderr).not.to.contain(secret);
      }
    } finally {
      await s3.stop();
    }
  });
});
