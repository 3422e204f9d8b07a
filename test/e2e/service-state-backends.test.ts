import { expect } from 'chai';
import { appendFileSync, existsSync, readFileSync, rmSync } from 'node:fs';
import { hostname } from 'node:os';
import path from 'node:path';
import { freshDirPerTest, parseNdjson, runCli, startCli, writeFiles } from '../helpers.js';
import { sql, TEST_DATABASE_URL, uniqueName } from '../support/postgres-db.js';
import { removeKeysUnder, startOwnRedis, testClient, TEST_REDIS_URL, uniquePrefix } from '../support/redis-server.js';

const HEADER = 'id,created_at,v\n';
const row = (id: number, at: string, v: number) => `${id},${at},${v}\n`;
const SECRET = 'pw-Sekrit-7781';

/** The test servers' URLs with a password in the environment, as a user would write them. */
function postgresUrl(): string {
  const u = new URL(TEST_DATABASE_URL);
  if (!u.username) u.username = 'postgres';
  u.password = 'PASSWORD_PLACEHOLDER';
  return u.toString().replace('PASSWORD_PLACEHOLDER', '${STATE_PASSWORD}');
}

interface Backend {
  readonly name: string;
  /** The settings.state block for this test's own table or prefix. */
  settings(): string;
  /** Words the in-use error must contain. */
  where(): string;
  setUp(): void;
  tearDown(): Promise<void>;
}

let table = '';
let prefix = '';
const redis = testClient();

const BACKENDS: Backend[] = [
  {
    name: 'PostgreSQL',
    settings: () => `  state: {type: postgresql, url: "${postgresUrl()}", table: ${table}}\n`,
    where: () => `table ${table}`,
    setUp: () => (table = uniqueName('tp_state')),
    tearDown: async () => void (await sql(`DROP TABLE IF EXISTS "${table}"`)),
  },
  {
    name: 'Redis',
    // A server without a password accepts any for the default user: the secret is still sent, and must not be shown.
    settings: () => `  state: {type: redis, url: "${TEST_REDIS_URL}", username: default, password: "\${STATE_PASSWORD}", key_prefix: "${prefix}"}\n`,
    where: () => prefix,
    setUp: () => (prefix = uniquePrefix('state-e2e')),
    tearDown: () => removeKeysUnder(redis, prefix),
  },
];

function config(backend: Backend): string {
  return (
    'datasources:\n  feed:\n    type: csv\n    path: feed.csv\n    incremental: {field: created_at}\n' +
    'processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 10, export_target: out}\n' +
    'export_targets:\n  out: {type: file, path: out/hot.ndjson, mode: append, include_metadata: false}\n' +
    'settings:\n' +
    backend.settings()
  );
}

function exportedIds(dir: string): string[] {
  const file = path.join(dir, 'out', 'hot.ndjson');
  return existsSync(file) ? parseNdjson(readFileSync(file, 'utf8')).map((r) => String(r.id)) : [];
}

function summary(stderr: string): Record<string, any> {
  return JSON.parse(stderr.split('\n').find((l) => l.includes('"run summary"'))!);
}

const env = { STATE_PASSWORD: SECRET };

for (const backend of BACKENDS) {
  describe(`service state in ${backend.name} (built CLI)`, function () {
    this.timeout(60_000);
    let dir: string;
    freshDirPerTest((d) => (dir = d));
    beforeEach(() => backend.setUp());
    afterEach(() => backend.tearDown());
    if (backend.name === 'Redis') after(() => redis.quit());

    const run = (...extra: string[]) => runCli(['--config', 'c.yaml', '--log-format', 'json', '--log-level', 'debug', ...extra], { cwd: dir, env });

    it('survives a restart: the watermark holds, a spooled batch is sent on the next run, and no state folder is written', async () => {
      // A file where the target's folder should be: the target cannot write until it is removed.
      writeFiles(dir, { 'c.yaml': config(backend), 'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50), out: 'in the way' });
      const first = await run();
      expect(first.code, first.stderr).to.equal(1);
      expect(summary(first.stderr).spool).to.deep.equal({ out: 1 });

      rmSync(path.join(dir, 'out'));
      appendFileSync(path.join(dir, 'feed.csv'), row(2, '2026-01-01T00:01:00Z', 60));
      const second = await run();
      expect(second.code, second.stderr).to.equal(0);
      expect(exportedIds(dir)).to.deep.equal(['1', '2']);
      expect(summary(second.stderr).spool).to.deep.equal({});

      // Nothing new: nothing exported again.
      const third = await run();
      expect(third.code, third.stderr).to.equal(0);
      expect(exportedIds(dir)).to.deep.equal(['1', '2']);
      expect(summary(third.stderr).datasources.feed).to.include({ records: 2, skipped: 2 });
      expect(existsSync(path.join(dir, '.state'))).to.equal(false);
      for (const r of [first, second, third]) expect(r.stderr + r.stdout).not.to.include(SECRET);
    });

    it('a dry run before any real one finds no state and creates nothing', async () => {
      writeFiles(dir, { 'c.yaml': config(backend), 'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50) });
      const dry = await run('--dry-run');
      expect(dry.code, dry.stderr).to.equal(0);
      expect(dry.stderr).not.to.include('running without state');
      expect(exportedIds(dir)).to.deep.equal([]);
      if (backend.name === 'PostgreSQL') expect(await sql(`SELECT to_regclass($1) AS t`, [table])).to.deep.equal([{ t: null }]);
      else expect(await redis.exists(`${prefix}lock`, `${prefix}docs`)).to.equal(0);
    });

    it('a second process on the same state exits 1 naming where and who holds it; the secret is never printed', async () => {
      writeFiles(dir, { 'c.yaml': config(backend), 'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50) });
      const service = startCli(['--config', 'c.yaml', '--continuous', '--interval', '0.3', '--log-format', 'json'], { cwd: dir, env });
      await service.waitForStderr(/"msg":"run summary"/, 15_000);
      // A dry run only reads the state: it takes no lock, and runs while the service holds it.
      const dry = await run('--dry-run');
      expect(dry.code, dry.stderr).to.equal(0);
      expect(dry.stdout).to.include('nothing was exported');
      const second = await run();
      expect(second.code).to.equal(1);
      expect(second.stderr).to.include('is in use by').and.to.include(backend.where()).and.to.include(`threshold-processor pid ${service.child.pid}`);
      expect(second.stderr + second.stdout).not.to.include(SECRET);
      service.child.kill('SIGTERM');
      const first = await service.done;
      expect(first.code, first.stderr.slice(-2000)).to.equal(0);
      expect(first.stderr + first.stdout).not.to.include(SECRET);
      // Once it stopped, the state is free again, and remembers what it exported.
      const after = await run();
      expect(after.code, after.stderr).to.equal(0);
      expect(exportedIds(dir)).to.deep.equal(['1']);
    });
  });
}

describe('service state in PostgreSQL whose session is ended under the service (built CLI)', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));
  const backend = BACKENDS[0]!;
  beforeEach(() => backend.setUp());
  afterEach(() => backend.tearDown());

  it('the service stops with exit 1 (for Restart=on-failure) instead of sending every record again each cycle', async () => {
    writeFiles(dir, { 'c.yaml': config(backend), 'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50) });
    const service = startCli(['--config', 'c.yaml', '--continuous', '--interval', '0.3', '--log-format', 'json'], { cwd: dir, env });
    await service.waitForStderr(/"msg":"run summary"/, 15_000);
    await sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [`threshold-processor pid ${service.child.pid} on ${hostname()}`.slice(0, 63)]);
    appendFileSync(path.join(dir, 'feed.csv'), row(2, '2026-01-01T00:01:00Z', 60));
    const result = await service.done;
    expect(result.code, result.stderr.slice(-2000)).to.equal(1);
    expect(result.stderr).to.include('the state lock was lost: stopping');
    // record 2 went out at most once before the stop, never cycle after cycle
    expect(exportedIds(dir).filter((id) => id === '2').length).to.be.at.most(1);
    expect(result.stderr + result.stdout).not.to.include(SECRET);
  });
});

describe('service state on a server that is down (built CLI)', function () {
  this.timeout(30_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('the service refuses to start, names the server, and never prints the password', async () => {
    for (const state of [
      '{type: postgresql, url: "postgres://u:${STATE_PASSWORD}@127.0.0.1:1/db", connect_timeout: 2s}',
      '{type: redis, url: "redis://u:${STATE_PASSWORD}@127.0.0.1:1/0", connect_timeout: 2s}',
    ]) {
      writeFiles(dir, {
        'c.yaml':
          'datasources:\n  feed: {type: csv, path: feed.csv}\n' +
          'processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 10, export_target: out}\n' +
          'export_targets:\n  out: {type: file, path: out/hot.ndjson}\n' +
          `settings:\n  state: ${state}\n`,
        'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50),
      });
      const result = await runCli(['--config', 'c.yaml', '--continuous', '--log-format', 'json', '--log-level', 'debug'], { cwd: dir, env });
      expect(result.code, result.stderr).to.equal(1);
      expect(result.stderr).to.include('cannot use the state; check settings.state').and.to.include('127.0.0.1:1');
      expect(result.stderr + result.stdout).not.to.include(SECRET);
    }
  });
});

describe('service state in a Redis that goes down and comes back (built CLI, a redis-server of its own)', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('a cycle whose commit fails is not committed: its records are sent again once the server is back (at least once, none lost)', async () => {
    const own = await startOwnRedis();
    try {
      writeFiles(dir, {
        'c.yaml':
          'datasources:\n  feed:\n    type: csv\n    path: feed.csv\n    incremental: {field: created_at}\n' +
          'processing_rules:\n  - {name: hot, threshold_field: v, threshold_type: greater_than, threshold_value: 10, export_target: out}\n' +
          'export_targets:\n  out: {type: file, path: out/hot.ndjson, mode: append, include_metadata: false}\n' +
          `settings:\n  state: {type: redis, url: "${own.url}", key_prefix: "tp:", connect_timeout: 1s, lock_ttl: 60s}\n`,
        'feed.csv': HEADER + row(1, '2026-01-01T00:00:00Z', 50),
      });
      const cli = startCli(['--config', 'c.yaml', '--continuous', '--interval', '0.3', '--log-format', 'json'], { cwd: dir });
      let stderr = '';
      cli.child.stderr!.on('data', (d) => (stderr += d));
      await cli.waitForStderr(/"msg":"run summary"/, 15_000);
      await own.kill();
      appendFileSync(path.join(dir, 'feed.csv'), row(2, '2026-01-01T00:01:00Z', 60));
      await cli.waitForStderr(/"state_error"[\s\S]*"state_error"/, 20_000);
      // Delivered while the state could not be saved: sent, but not remembered.
      expect(exportedIds(dir).filter((id) => id === '2').length).to.be.at.least(1);
      await own.start();
      const saved = stderr.length;
      // Wait (bounded) for a cycle after the restart that saved its state.
      const deadline = Date.now() + 20_000;
      const savedAgain = () =>
        stderr
          .slice(saved)
          .split('\n')
          .filter((l) => l.includes('"run summary"'))
          .some((l) => JSON.parse(l).state_error === undefined);
      while (!savedAgain()) {
        if (Date.now() > deadline) {
          cli.child.kill('SIGKILL');
          throw new Error(`no cycle saved its state after the server came back:\n${stderr.slice(-3000)}`);
        }
        await new Promise((r) => setTimeout(r, 200));
      }
      cli.child.kill('SIGTERM');
      const result = await cli.done;
      expect(result.code, result.stderr.slice(-3000)).to.equal(0);
      expect(result.stderr).to.include('cannot save the state');
      const ids = exportedIds(dir);
      // 1 once (its commit happened before the server went down); 2 at least once, and not again once saved.
      expect(ids.filter((id) => id === '1')).to.deep.equal(['1']);
      expect(ids.filter((id) => id === '2').length).to.be.at.least(1);
      expect(ids.every((id) => id === '1' || id === '2')).to.equal(true);
      const after = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
      expect(after.code, after.stderr).to.equal(0);
      expect(exportedIds(dir)).to.deep.equal(ids);
    } finally {
      await own.remove();
    }
  });
});
