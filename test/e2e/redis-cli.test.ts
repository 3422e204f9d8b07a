/**
 * The Redis target through the built CLI, as a user runs it: a CSV file, rules, `type: redis`
 * targets on the machine's Redis (TEST_REDIS_URL), and what landed read back with HGETALL,
 * LRANGE, GET, XRANGE and TTL. A redis-server of the test's own is killed and started again in
 * the middle of a run.
 */
import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { Redis } from 'ioredis';
import { freshDirPerTest, parseNdjson, repoRoot, runCli, startCli, writeFiles, type CliResult } from '../helpers.js';
import { freePort, keysUnder, removeKeysUnder, startOwnRedis, testClient, TEST_REDIS_URL, uniquePrefix } from '../support/redis-server.js';

const CSV = 'id,sensor,value,site\n1,s1,5,par\n2,s2,1500,lis\n3,s3,2500,\n4,s1,3000,par\n';

/** The run summary's figures for one rule, from the JSON log on stderr. */
function summaryOf(result: CliResult, rule = 'hot'): { matched: number; exported: number; failed: number; targets: Record<string, { ok: boolean; records: number; error?: string }> } {
  const line = result.stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l) as Record<string, any>)
    .find((l) => l.msg === 'run summary');
  expect(line, result.stderr).to.not.equal(undefined);
  return { ...line!.rules[rule], targets: line!.targets };
}

describe('redis export target through the CLI', function () {
  this.timeout(60_000);
  let dir: string;
  let redis: Redis;
  let prefix: string;
  freshDirPerTest((d) => (dir = d));
  before(() => {
    redis = testClient();
  });
  after(() => redis.disconnect());
  beforeEach(() => {
    prefix = uniquePrefix('cli');
  });
  afterEach(() => removeKeysUnder(redis, prefix));

  const config = (targets: string, ruleTargets: string[], csv = 'data.csv') =>
    `datasources:\n  sensors: {type: csv, path: ${csv}, columns: {value: number}}\n` +
    `processing_rules:\n  - {name: hot, threshold_field: value, threshold_type: greater_than, threshold_value: 1000, export_targets: [${ruleTargets.join(', ')}]}\n` +
    `export_targets:\n${targets}`;

  const run = (yaml: string, args: string[] = [], env: Record<string, string> = {}) => {
    writeFiles(dir, { 'c.yaml': yaml, 'data.csv': CSV });
    return runCli(['--config', 'c.yaml', '--log-format', 'json', ...args], { cwd: dir, env: { TEST_REDIS_URL, ...env } });
  };

  it('each mode stores exactly the matches: HGETALL, LRANGE, GET, XRANGE and TTL read them back', async () => {
    const common = `url: "\${TEST_REDIS_URL}", key_prefix: "${prefix}"`;
    const result = await run(
      config(
        `  h: {type: redis, ${common}, mode: hash, key: "alert:{_rule}:{id}", ttl: 600}\n` +
          `  l: {type: redis, ${common}, mode: list, key: "list:{rule}", ttl: 300, include_metadata: false}\n` +
          `  s: {type: redis, ${common}, mode: string, key: "latest:{sensor}", include_metadata: false}\n` +
          `  x: {type: redis, ${common}, mode: stream, key: "events:{datasource}", max_length: 1000, include_metadata: false}\n`,
        ['h', 'l', 's', 'x'],
      ),
    );
    expect(result.code, result.stderr).to.equal(0);
    const summary = summaryOf(result);
    expect(summary).to.include({ matched: 3, exported: 12, failed: 0 });

    const hash = await redis.hgetall(`${prefix}alert:hot:2`);
    expect(hash).to.include({ id: '2', sensor: 's2', value: '1500', site: 'lis', _rule: 'hot', _datasource: 'sensors' });
    expect(hash._run_id).to.match(/^\d{8}T\d{6}Z-/);
    expect(new Date(hash._matched_at!).toISOString()).to.equal(hash._matched_at);
    // An empty CSV cell is null, and a hash leaves null fields out.
    expect(await redis.hgetall(`${prefix}alert:hot:3`)).to.not.have.property('site');
    expect(await redis.ttl(`${prefix}alert:hot:4`)).to.be.within(590, 600);

    expect((await redis.lrange(`${prefix}list:hot`, 0, -1)).map((i) => JSON.parse(i))).to.deep.equal([
      { id: '2', sensor: 's2', value: 1500, site: 'lis' },
      { id: '3', sensor: 's3', value: 2500, site: null },
      { id: '4', sensor: 's1', value: 3000, site: 'par' },
    ]);
    expect(await redis.ttl(`${prefix}list:hot`)).to.be.within(290, 300);

    expect(JSON.parse((await redis.get(`${prefix}latest:s1`))!)).to.deep.equal({ id: '4', sensor: 's1', value: 3000, site: 'par' });
    expect(await redis.get(`${prefix}latest:s2`)).to.equal('{"id":"2","sensor":"s2","value":1500,"site":"lis"}');
    expect(await redis.ttl(`${prefix}latest:s2`)).to.equal(-1);

    const entries = await redis.xrange(`${prefix}events:sensors`, '-', '+');
    expect(entries.map(([, fields]) => fields)).to.deep.equal([
      ['id', '2', 'sensor', 's2', 'value', '1500', 'site', 'lis'],
      ['id', '3', 'sensor', 's3', 'value', '2500'],
      ['id', '4', 'sensor', 's1', 'value', '3000', 'site', 'par'],
    ]);
    expect(await redis.ttl(`${prefix}events:sensors`)).to.equal(-1);
    expect(await keysUnder(redis, prefix)).to.have.lengthOf(3 + 1 + 3 + 1);
  });

  it('max_length trims a list across runs; the older data_type key still works', async () => {
    const yaml = config(`  l: {type: redis, url: "\${TEST_REDIS_URL}", key_prefix: "${prefix}", data_type: list, key: "recent", max_length: 4, include_metadata: false}\n`, ['l'])
      // The same records are exported on each run: no dedup memory between them.
      .replace('export_targets: [l]}', 'export_targets: [l], realert: 0s}');
    for (let i = 0; i < 2; i++) expect((await run(yaml)).code).to.equal(0);
    expect((await redis.lrange(`${prefix}recent`, 0, -1)).map((i) => JSON.parse(i).id)).to.deep.equal(['4', '2', '3', '4']);
  });

  it('a key template naming a field some records lack: those records fail, named; the rest are stored; exit 1', async () => {
    const result = await run(config(`  h: {type: redis, url: "\${TEST_REDIS_URL}", key_prefix: "${prefix}", mode: hash, key: "by-site:{site}:{id}"}\n`, ['h']));
    expect(result.code).to.equal(1);
    expect(summaryOf(result)).to.include({ matched: 3, exported: 2, failed: 1 });
    expect(await keysUnder(redis, prefix)).to.deep.equal([`${prefix}by-site:lis:2`, `${prefix}by-site:par:4`]);
    expect(result.stderr).to.include('"target":"h"').and.include('the record has no field \\"site\\"').and.include('record #2 of the batch');
  });

  it('a record failing in the middle of a batch (WRONGTYPE): the spool keeps that record as refused, not the next one; it waits for --replay-dead-letters', async () => {
    await redis.set(`${prefix}h:3`, 'a string, not a hash');
    const yaml = config(`  h: {type: redis, url: "\${TEST_REDIS_URL}", key_prefix: "${prefix}", mode: hash, key: "h:{id}"}\n`, ['h']);
    const first = await run(yaml);
    expect(first.code).to.equal(1);
    expect(summaryOf(first)).to.include({ matched: 3, exported: 2, failed: 1 });
    const spoolFile = path.join(dir, '.state', 'spool', 'h.ndjson');
    const spooled = parseNdjson(readFileSync(spoolFile, 'utf8'));
    expect(spooled.flatMap((b) => (b.records as { id: string }[]).map((r) => r.id))).to.deep.equal(['3']);
    // the target took the other records: this one is at fault, and is not sent again every run
    expect(spooled[0]!.refused).to.match(/WRONGTYPE/);
    await redis.del(`${prefix}h:3`);
    writeFiles(dir, { 'data.csv': 'id,sensor,value,site\n' });
    const second = await runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir, env: { TEST_REDIS_URL } });
    expect(second.code, second.stderr).to.equal(0);
    expect(second.stderr).to.include('refused batches wait in the dead-letter spool');
    expect(await redis.exists(`${prefix}h:3`)).to.equal(0);
    const replay = await runCli(['--config', 'c.yaml', '--replay-dead-letters', '--log-format', 'json'], { cwd: dir, env: { TEST_REDIS_URL } });
    expect(replay.code, replay.stderr).to.equal(0);
    expect(await redis.hget(`${prefix}h:3`, 'sensor')).to.equal('s3');
    expect(await keysUnder(redis, prefix)).to.deep.equal([`${prefix}h:2`, `${prefix}h:3`, `${prefix}h:4`]);
    expect(existsSync(spoolFile)).to.equal(false);
  });

  it('Redis not reachable: an error naming the target and the server, exit 1, and the file target still delivers', async () => {
    const port = await freePort();
    const result = await run(
      config(
        `  alerts: {type: redis, host: 127.0.0.1, port: ${port}, password: "\${REDIS_PASSWORD}", mode: hash, key: "a:{id}", connect_timeout: 1s, retry: {max_attempts: 2, initial_backoff: 10ms}}\n` +
          `  archive: {type: file, path: "out/{rule}.ndjson"}\n`,
        ['alerts', 'archive'],
      ),
      [],
      { REDIS_PASSWORD: 'pw-never-shown-5521' },
    );
    expect(result.code).to.equal(1);
    const summary = summaryOf(result);
    expect(summary).to.include({ matched: 3, exported: 3, failed: 3 });
    expect(summary.targets.alerts!.ok).to.equal(false);
    expect(summary.targets.alerts!.error).to.include(`127.0.0.1:${port}`).and.include('ECONNREFUSED');
    expect(summary.targets.archive).to.deep.equal({ ok: true, records: 3 });
    expect(result.stderr).to.match(/"target":"alerts".*"msg":"export target failed"/);
    const archived = readFileSync(path.join(dir, 'out', 'hot.ndjson'), 'utf8').trim().split('\n').map((l) => JSON.parse(l).id);
    expect(archived).to.deep.equal(['2', '3', '4']);
    expect(result.stdout + result.stderr).to.not.include('pw-never-shown-5521');
  });

  it('--check pings each Redis target: a row with PONG and its latency, a FAILED row naming the server, no password shown', async () => {
    const port = await freePort();
    writeFiles(dir, {
      'c.yaml': config(
        `  up: {type: redis, url: "\${TEST_REDIS_URL}", key_prefix: "${prefix}", mode: hash, key: "a:{id}"}\n` +
          `  down: {type: redis, url: "redis://:\${REDIS_PASSWORD}@127.0.0.1:${port}/3", connect_timeout: 1s}\n`,
        ['up'],
      ),
      'data.csv': CSV,
    });
    const result = await runCli(['--check', '--config', 'c.yaml'], { cwd: dir, env: { TEST_REDIS_URL, REDIS_PASSWORD: 'pw-never-shown-8812' } });
    expect(result.code, result.stdout + result.stderr).to.equal(1);
    expect(result.stdout).to.match(/^up\s+target\s+redis\s+ok\s+\d+ ms\s+PONG in [\d.]+ ms; Redis \d+\.\d+\.\d+ standalone at 127\.0\.0\.1:6379\/0, hash mode$/m);
    expect(result.stdout).to.match(new RegExp(`^down\\s+target\\s+redis\\s+FAILED\\s+\\d+ ms\\s+connecting to Redis at 127\\.0\\.0\\.1:${port}/3: .*ECONNREFUSED`, 'm'));
    expect(result.stdout).to.contain('1 of 3 checks failed');
    expect(result.stdout + result.stderr).to.not.include('pw-never-shown-8812');
    expect(await keysUnder(redis, prefix)).to.deep.equal([]);
  });

  it('examples/redis-alerts.yaml runs as its comments say', async () => {
    // The example's dedup memory goes to this test's folder, not to examples/.state.
    const result = await runCli(['--config', 'examples/redis-alerts.yaml', '--log-format', 'json', '--state-dir', path.join(dir, 'state')], {
      cwd: repoRoot,
      env: { REDIS_URL: TEST_REDIS_URL, REDIS_KEY_PREFIX: prefix },
    });
    expect(result.code, result.stderr).to.equal(0);
    const matched = summaryOf(result, 'above_range').matched;
    expect(matched).to.be.greaterThan(0);
    const sensors = (await keysUnder(redis, `${prefix}state:`)).map((k) => k.slice(`${prefix}state:`.length));
    expect(sensors.length).to.be.greaterThan(0);
    const state = await redis.hgetall(`${prefix}state:${sensors[0]}`);
    expect(state).to.include({ sensor: sensors[0], _rule: 'above_range' });
    expect(Number(state.value)).to.be.greaterThan(1000);
    expect(await redis.ttl(`${prefix}state:${sensors[0]}`)).to.be.within(86_300, 86_400);
    const alerts = (await redis.lrange(`${prefix}alerts:above_range`, 0, -1)).map((i) => JSON.parse(i));
    expect(alerts).to.have.lengthOf(matched);
    // push: left puts the newest first: the CSV's last match leads.
    expect(Number(alerts[0].id)).to.be.greaterThan(Number(alerts[alerts.length - 1].id));
    expect(await redis.xlen(`${prefix}events:sensors`)).to.equal(matched);
  });

  it('a Redis killed and restarted in the middle of a run loses nothing reported as exported', async function () {
    this.timeout(120_000);
    const server = await startOwnRedis();
    const peer = testClient(server.url);
    try {
      const rows = 150_000;
      let csv = 'id,value\n';
      for (let i = 0; i < rows; i++) csv += `${i},${i % 2 ? 2000 : 5}\n`;
      writeFiles(dir, {
        'c.yaml': config(
          `  alerts: {type: redis, url: "${server.url}", mode: hash, key: "a:{id}", batch_size: 200, include_metadata: false, ` +
            'retry: {max_attempts: 20, initial_backoff: 50ms, max_backoff: 500ms}}\n',
          ['alerts'],
          'big.csv',
        ),
        'big.csv': csv,
      });
      const cli = startCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
      // Wait until writes are under way, then take the server away under them.
      const started = Date.now();
      while ((await peer.dbsize()) < 5_000) {
        if (Date.now() - started > 60_000) throw new Error('the run never got going');
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      peer.disconnect();
      await server.kill();
      await new Promise((resolve) => setTimeout(resolve, 300));
      await server.start();
      const result = await cli.done;
      const after = testClient(server.url);
      try {
        const keys = await after.dbsize();
        const summary = summaryOf(result);
        expect(summary.matched).to.equal(rows / 2);
        expect(summary.exported + summary.failed).to.equal(rows / 2);
        // Each record is its own key: every record counted exported is there (a record sent twice is still one key).
        expect(keys).to.be.at.least(summary.exported);
        expect(keys).to.be.at.most(rows / 2);
        // The retries bridged the restart: nothing was given up.
        expect(summary.failed, result.stderr.slice(-2000)).to.equal(0);
        expect(result.code).to.equal(0);
        expect(result.stderr).to.match(/failed; trying again/);
        expect(await after.hgetall(`a:${rows - 1}`)).to.deep.equal({ id: String(rows - 1), value: '2000' });
      } finally {
        after.disconnect();
      }
    } finally {
      peer.disconnect();
      await server.remove();
    }
  });
});
