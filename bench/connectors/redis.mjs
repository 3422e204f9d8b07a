// Redis export target, each mode against redis-benchmark's pipelined figure for the same command
// shape, measured in the same run on the same server (the floor: what a C client that does
// nothing else gets out of this Redis):
// - the target alone (TargetQueue + RedisSink, batches of 1,000 records of 5 CSV columns plus
//   the 4 metadata fields), per mode: records/s against `redis-benchmark -P 500 -n N -r N` of
//   the same command with the same fields (HSET, RPUSH, SET, XADD);
// - hash mode again with max_in_flight: 2 (two batches on the connection at once);
// - the processor CLI end to end, CSV -> rule (50 % matching) -> hash mode, 100,000 matches;
// - round trips of that export, counted on the CLI's socket by a preloaded counter (a write
//   after a reply came in starts one), and the commands the server ran (INFO commandstats
//   before and after).
// Each timed case runs in a child process of its own, median of BENCH_REDIS_RUNS (default 3): run
// in the bench's process after the ioredis case, the target measured 0.7x what it does alone
// (the heap the other case left behind, not the target, set the pace).
// Server: TEST_REDIS_URL (default redis://127.0.0.1:6379/0). Records: BENCH_REDIS_RECORDS (default 100,000).
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

export const name = 'redis';

const URL_ = process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379/0';
const RECORDS = Number(process.env.BENCH_REDIS_RECORDS ?? 100_000);
const BATCH = 1000;
const RUNS = Number(process.env.BENCH_REDIS_RUNS ?? 3);
const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist', 'processor.js');
const dist = (p) => pathToFileURL(join(root, 'dist', p)).href;

const MATCHED_AT = '2026-11-24T12:00:00.000Z';
const META = { _rule: 'hot', _datasource: 'sensors', _run_id: '20261124T120000Z-bench', _matched_at: MATCHED_AT };

/** The record every case writes (the CLI's are built alike from the CSV), as hash fields and as JSON. */
function sampleRecord(i) {
  return { id: String(i), sensor: `s-${i % 500}`, value: 1500 + (i % 1000), status: 'active', created_at: '2026-11-24T11:59:00.000Z', ...META };
}

export async function run({ progress }) {
  const { Redis } = await import('ioredis');
  const url = new URL(URL_);
  const host = url.hostname || '127.0.0.1';
  const port = Number(url.port || 6379);
  const db = Number(url.pathname.slice(1) || 0);
  const redis = new Redis(URL_, { lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, protocol: 2 });
  redis.on('error', () => {});
  try {
    await redis.connect();
  } catch (err) {
    progress(`redis: ${URL_} not reachable (${err.message}); skipped`);
    return { rows: [{ case: 'skipped', note: `Redis at ${host}:${port} not reachable` }] };
  }
  const prefix = `tp-bench:${randomBytes(4).toString('hex')}:`;
  const rows = [];
  try {
    const floors = {};
    for (const mode of ['hash', 'list', 'string', 'stream']) {
      progress(`redis: redis-benchmark floor, ${mode}`);
      floors[mode] = redisBenchmark(host, port, db, floorCommand(mode, `${prefix}floor:`));
      await removeKeys(redis, `${prefix}floor:`);
    }

    for (const mode of ['hash', 'list', 'string', 'stream']) {
      progress(`redis: bare ioredis pipelines, ${mode}`);
      const bare = RECORDS / (await medianInChildren({ case: 'bare', mode, keyPrefix: `${prefix}bare:` }, () => removeKeys(redis, `${prefix}bare:`)));
      await removeKeys(redis, `${prefix}bare:`);
      progress(`redis: the target alone, ${mode} mode, ${RECORDS.toLocaleString('en-US')} records`);
      const seconds = await medianInChildren({ case: 'target', mode, keyPrefix: `${prefix}${mode}:` }, () => removeKeys(redis, `${prefix}${mode}:`));
      const rate = RECORDS / seconds;
      rows.push({
        case: `target alone, ${mode} mode (batches of ${BATCH})`,
        figure: Math.round(rate),
        unit: 'records/s',
        floor: Math.round(floors[mode]),
        ratio: rate / floors[mode],
        note:
          `floor: redis-benchmark -P 500, ${floorLabel(mode)}, same fields; ` +
          `bare ioredis pipelines of ${BATCH} prepared commands: ${Math.round(bare).toLocaleString('en-US')}/s (target ${(rate / bare).toFixed(2)}x that)`,
      });
      await removeKeys(redis, `${prefix}${mode}:`);
    }

    progress('redis: the target alone, hash mode, max_in_flight 2');
    {
      const rate = RECORDS / (await medianInChildren({ case: 'target', mode: 'hash', keyPrefix: `${prefix}hash2:`, maxInFlight: 2 }, () => removeKeys(redis, `${prefix}hash2:`)));
      rows.push({
        case: `target alone, hash mode, max_in_flight: 2 (batches of ${BATCH})`,
        figure: Math.round(rate),
        unit: 'records/s',
        floor: Math.round(floors.hash),
        ratio: rate / floors.hash,
        note: 'two batches on the connection at once: the next is prepared while the server runs the last (not the default: see docs/redis.md)',
      });
      await removeKeys(redis, `${prefix}hash2:`);
    }

    progress(`redis: the CLI, CSV -> hash mode, ${RECORDS.toLocaleString('en-US')} matches`);
    const dir = mkdtempSync(join(tmpdir(), 'tp-bench-redis-'));
    try {
      writeCsvAndConfig(dir, `${prefix}cli:`);
      const before = await commandStats(redis);
      const cliRun = await runCli(dir, port);
      const after = await commandStats(redis);
      const stored = (await keysUnder(redis, `${prefix}cli:`)).length;
      if (cliRun.summary.exported !== RECORDS || stored !== RECORDS) throw new Error(`CLI run exported ${cliRun.summary.exported} and Redis holds ${stored} keys; expected ${RECORDS}`);
      const rate = RECORDS / cliRun.seconds;
      rows.push({
        case: `processor CLI, ${(RECORDS * 2).toLocaleString('en-US')} CSV rows, 50 % matching -> hash mode`,
        figure: Math.round(rate),
        unit: 'matches/s',
        floor: Math.round(floors.hash),
        ratio: rate / floors.hash,
        note: `${cliRun.seconds.toFixed(2)} s wall, CSV read and rules included; floor: redis-benchmark HSET`,
      });
      const hset = (after.hset ?? 0) - (before.hset ?? 0);
      const bound = Math.ceil(RECORDS / BATCH);
      rows.push({
        case: `round trips of a ${RECORDS.toLocaleString('en-US')}-match export (batch_size ${BATCH})`,
        figure: cliRun.roundTrips.roundTrips,
        unit: 'round trips',
        floor: bound,
        ratio: cliRun.roundTrips.roundTrips / bound,
        note:
          `counted on the CLI's socket (${cliRun.roundTrips.writes} writes: a batch goes out in slices of 200 commands, one round trip); ` +
          `the handshake (AUTH, SELECT, CLIENT SETNAME, INFO in one) and QUIT are one each; ` +
          `server ran ${hset.toLocaleString('en-US')} HSET (${(hset / RECORDS).toFixed(2)} per record); bound ceil(matches / batch_size) + 2 per connection`,
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
      await removeKeys(redis, `${prefix}cli:`);
    }
  } finally {
    await removeKeys(redis, prefix);
    redis.disconnect();
  }
  return { rows };
}

/** One record's worth of the mode's command, for redis-benchmark; __rand_int__ spreads keys as one key per record does. */
function floorCommand(mode, keyPrefix) {
  const record = sampleRecord(7);
  const fields = Object.entries(record).flatMap(([k, v]) => [k, String(v)]);
  switch (mode) {
    case 'hash':
      return ['HSET', `${keyPrefix}h:__rand_int__`, ...fields];
    case 'list':
      return ['RPUSH', `${keyPrefix}l`, JSON.stringify(record)];
    case 'string':
      return ['SET', `${keyPrefix}s:__rand_int__`, JSON.stringify(record)];
    case 'stream':
      return ['XADD', `${keyPrefix}x`, '*', ...fields];
  }
}

function floorLabel(mode) {
  return { hash: 'HSET key 9 fields', list: 'RPUSH key json', string: 'SET key json', stream: 'XADD key * 9 fields' }[mode];
}

/**
 * The client library alone: the same commands, prepared in advance, sent in pipelines of BATCH
 * with nothing else done (no records, no keys to fill in, no replies to sort out). What any
 * connector on ioredis could reach at best.
 */
async function bareIoredis(mode, keyPrefix) {
  const { Redis } = await import('ioredis');
  const client = new Redis(URL_, { protocol: 2, maxRetriesPerRequest: 0, disableClientInfo: true });
  await client.ping();
  const commands = [];
  for (let i = 0; i < RECORDS; i++) {
    const [name, key, ...args] = floorCommand(mode, keyPrefix);
    commands.push([name, key.replace('__rand_int__', String(i)), ...args]);
  }
  const started = process.hrtime.bigint();
  for (let from = 0; from < RECORDS; from += BATCH) {
    const pipeline = client.pipeline();
    for (let i = from; i < Math.min(RECORDS, from + BATCH); i++) pipeline.call(...commands[i]);
    await pipeline.exec();
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  client.disconnect();
  return seconds;
}

/** redis-benchmark's requests/s for the command, pipelined 500 deep, as many requests as the target writes records. */
function redisBenchmark(host, port, db, command) {
  const result = spawnSync('redis-benchmark', ['-h', host, '-p', String(port), '--dbnum', String(db), '-P', '500', '-n', String(RECORDS), '-r', String(RECORDS), '-q', ...command], {
    encoding: 'utf8',
  });
  if (result.error) throw new Error(`redis-benchmark: ${result.error.message} (is it installed?)`);
  const figures = [...result.stdout.matchAll(/([\d.]+) requests per second/g)];
  if (figures.length === 0) throw new Error(`redis-benchmark printed no figure: ${result.stdout}${result.stderr}`);
  return Number(figures[figures.length - 1][1]);
}

/** The sink behind the queue the cycle uses, fed batches of 2,000 CSV rows; seconds until the last write returned. maxInFlight 1 is the target's default. */
async function targetAlone(mode, keyPrefix, maxInFlight = 1) {
  const { redisSink } = await import(dist('connectors/redis/redis-sink.js'));
  const { TargetQueue } = await import(dist('src/delivery/target-queue.js'));
  const { ColumnLayout } = await import(dist('src/records/layout.js'));
  const { pino } = await import('pino');
  const log = pino({ level: 'silent' });
  const key = mode === 'hash' || mode === 'string' ? 'alert:{_rule}:{id}' : 'alerts:{rule}';
  const sink = await redisSink.create({ type: 'redis', url: URL_, mode, key, key_prefix: keyPrefix }, { name: 'bench', configDir: '.', log, signal: new AbortController().signal });
  const layout = new ColumnLayout(['id', 'sensor', 'value', 'status', 'created_at'], { value: 'number', created_at: 'timestamp' });
  const batches = [];
  for (let from = 0; from < RECORDS; from += 2000) {
    const rowsOf = [];
    for (let i = from; i < Math.min(RECORDS, from + 2000); i++) rowsOf.push([String(i), `s-${i % 500}`, String(1500 + (i % 1000)), 'active', '2026-11-24T11:59:00Z']);
    batches.push({ rule: 'hot', datasource: 'sensors', runId: META._run_id, matchedAt: MATCHED_AT, layout, rows: rowsOf });
  }
  let exported = 0;
  let failed = 0;
  const queue = new TargetQueue(
    'bench',
    sink,
    { batchSize: BATCH, batchBytes: 4 * 1024 * 1024, lingerMs: 100, maxInFlight, retry: { maxAttempts: 1, initialBackoffMs: 1, maxBackoffMs: 1 } },
    { signal: new AbortController().signal, log },
    { exported: (_r, n) => (exported += n), failed: (_r, n) => (failed += n) },
  );
  await sink.check({ signal: new AbortController().signal, log }); // connected before the clock starts
  const started = process.hrtime.bigint();
  for (const batch of batches) await queue.add(batch);
  await queue.finish();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await sink.close();
  if (exported !== RECORDS || failed !== 0) throw new Error(`${mode}: exported ${exported}, failed ${failed}; expected ${RECORDS} exported`);
  return seconds;
}

function writeCsvAndConfig(dir, keyPrefix) {
  let csv = 'id,sensor,value,status,created_at\n';
  for (let i = 0; i < RECORDS * 2; i++) csv += `${i},s-${i % 500},${i % 2 ? 1500 + (i % 1000) : 5},active,2026-11-24T11:59:00Z\n`;
  writeFileSync(join(dir, 'data.csv'), csv);
  writeFileSync(
    join(dir, 'c.yaml'),
    'datasources:\n  sensors: {type: csv, path: data.csv, columns: {value: number, created_at: timestamp}}\n' +
      'processing_rules:\n  - {name: hot, threshold_field: value, threshold_type: greater_than, threshold_value: 1000, export_target: alerts}\n' +
      `export_targets:\n  alerts: {type: redis, url: "${URL_}", mode: hash, key: "alert:{_rule}:{id}", key_prefix: "${keyPrefix}", batch_size: ${BATCH}}\n`,
  );
}

/**
 * Preloaded into the CLI: counts round trips on its sockets to the Redis port. A round trip
 * starts with the first write after a reply came in (a batch written in several slices, with
 * no reply read in between, is one); lone commands (the handshake, QUIT) count one each.
 */
const COUNTER = (port) => `import net from 'node:net'; import { writeFileSync } from 'node:fs';
const counts = { roundTrips: 0, writes: 0 };
const ours = (s) => s.remotePort === ${port};
const write = net.Socket.prototype.write;
net.Socket.prototype.write = function (...a) { if (ours(this)) { counts.writes++; if (this.__tpReplied !== false) { counts.roundTrips++; this.__tpReplied = false; } } return write.apply(this, a); };
const emit = net.Socket.prototype.emit;
net.Socket.prototype.emit = function (event, ...a) { if (event === 'data' && ours(this)) this.__tpReplied = true; return emit.call(this, event, ...a); };
process.on('exit', () => writeFileSync(process.env.BENCH_RT_FILE, JSON.stringify(counts)));`;

function runCli(dir, port) {
  const rtFile = join(dir, 'round-trips.json');
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const child = spawn(process.execPath, [`--import=data:text/javascript,${encodeURIComponent(COUNTER(port))}`, cli, '--config', 'c.yaml', '--log-format', 'json'], {
      cwd: dir,
      env: { PATH: process.env.PATH, BENCH_RT_FILE: rtFile },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('error', reject);
    child.on('close', (code) => {
      const seconds = Number(process.hrtime.bigint() - started) / 1e9;
      if (code !== 0) return reject(new Error(`CLI exited ${code}: ${stderr.slice(-1000)}`));
      const summary = stderr.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).find((l) => l.msg === 'run summary');
      resolve({ seconds, summary: summary.rules.hot, roundTrips: JSON.parse(readFileSync(rtFile, 'utf8')) });
    });
  });
}

/** Seconds of one case, each run in a fresh process; the keys it wrote are removed between runs. */
async function medianInChildren(params, cleanUp) {
  const runs = [];
  for (let i = 0; i < RUNS; i++) {
    runs.push(await new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [fileURLToPath(import.meta.url), '--child', JSON.stringify(params)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.on('error', reject);
      child.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop()).seconds) : reject(new Error(`${params.case} ${params.mode}: child exited ${code}`))));
    }));
    await cleanUp();
  }
  return [...runs].sort((a, b) => a - b)[Math.floor(runs.length / 2)];
}

if (process.argv[2] === '--child') {
  const params = JSON.parse(process.argv[3]);
  const seconds = params.case === 'bare' ? await bareIoredis(params.mode, params.keyPrefix) : await targetAlone(params.mode, params.keyPrefix, params.maxInFlight ?? 1);
  process.stdout.write(JSON.stringify({ seconds }) + '\n');
}

/** calls per command, from INFO commandstats. */
async function commandStats(redis) {
  const text = await redis.info('commandstats');
  const out = {};
  for (const m of text.matchAll(/^cmdstat_([\w|]+):calls=(\d+)/gm)) out[m[1]] = Number(m[2]);
  return out;
}

async function keysUnder(redis, prefix) {
  const keys = [];
  let cursor = '0';
  do {
    const [next, batch] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5000);
    keys.push(...batch);
    cursor = next;
  } while (cursor !== '0');
  return [...new Set(keys)];
}

async function removeKeys(redis, prefix) {
  const keys = await keysUnder(redis, prefix);
  for (let i = 0; i < keys.length; i += 1000) await redis.unlink(...keys.slice(i, i + 1000));
}
