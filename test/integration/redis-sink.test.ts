/**
 * The Redis target against the machine's Redis (TEST_REDIS_URL) and against redis-servers of
 * the test's own: what each mode stores, read back with HGETALL / LRANGE / GET / XRANGE / TTL,
 * what a failing part of a pipeline costs, and how connection trouble is reported.
 */
import { expect } from 'chai';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { Redis } from 'ioredis';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { redisSink, type RedisSinkConfig } from '../../connectors/redis/redis-sink.js';
import type { MatchBatch, OperationContext, Sink } from '../../connectors/types.js';
import type { DeliveryPolicy } from '../../src/delivery/policy.js';
import { deliveryBatch, TargetQueue } from '../../src/delivery/target-queue.js';
import { describeError } from '../../src/errors.js';
import { ColumnLayout, OBJECT_LAYOUT } from '../../src/records/layout.js';
import { memoryLogger } from '../helpers.js';
import { freePort, keysUnder, removeKeysUnder, startOwnRedis, startRedisWithConfig, testClient, TEST_REDIS_URL, uniquePrefix } from '../support/redis-server.js';

const MATCHED_AT = '2026-11-24T12:00:00.000Z';

function objects(rows: Record<string, unknown>[], rule = 'hot'): MatchBatch {
  return { rule, datasource: 'sensors', runId: 'run-1', matchedAt: MATCHED_AT, layout: OBJECT_LAYOUT, rows };
}

const META = { _rule: 'hot', _datasource: 'sensors', _run_id: 'run-1', _matched_at: MATCHED_AT };

describe('redis export target (real Redis)', function () {
  this.timeout(20_000);
  let redis: Redis;
  let prefix: string;
  const sinks: Sink[] = [];

  before(() => {
    redis = testClient();
  });
  after(() => redis.disconnect());
  beforeEach(() => {
    prefix = uniquePrefix('sink');
  });
  afterEach(async () => {
    await Promise.all(sinks.splice(0).map((s) => s.close?.()));
    await removeKeysUnder(redis, prefix);
  });

  async function sink(config: Partial<RedisSinkConfig>, log = memoryLogger().log): Promise<Sink> {
    const s = await redisSink.create({ type: 'redis', url: TEST_REDIS_URL, key_prefix: prefix, ...config } as RedisSinkConfig, {
      name: 'alerts',
      configDir: '.',
      log,
      signal: new AbortController().signal,
    });
    sinks.push(s);
    return s;
  }

  const ctx = (signal = new AbortController().signal): OperationContext => ({ signal, log: memoryLogger().log });
  const write = (s: Sink, batch: MatchBatch, signal?: AbortSignal) => s.write(deliveryBatch('alerts', [batch]), ctx(signal));

  function queueOver(s: Sink, policy: Partial<DeliveryPolicy> = {}) {
    const counts = { exported: 0, failed: 0 };
    const { log, lines } = memoryLogger();
    const queue = new TargetQueue(
      'alerts',
      s,
      { batchSize: 100, batchBytes: 1 << 22, lingerMs: 0, maxInFlight: 1, retry: { maxAttempts: 3, initialBackoffMs: 5, maxBackoffMs: 50 }, ...policy },
      { signal: new AbortController().signal, log },
      { exported: (_r, n) => (counts.exported += n), failed: (_r, n) => (counts.failed += n) },
    );
    return { queue, counts, lines };
  }

  describe('modes', () => {
    it('hash: one hash per record; text as is, numbers and booleans as printed, nested values as JSON, null fields left out', async () => {
      const s = await sink({ mode: 'hash', key: 'alert:{_rule}:{id}' });
      await write(s, objects([
        { id: 7, host: 'db 1', value: 1500.5, ok: true, tags: ['a', 'b'], meta: { dc: 'par', n: null }, gone: null, empty: '' },
        { id: 8, host: 'db/2', value: -1, ok: false, tags: [], meta: {}, gone: null, empty: 'x' },
      ]));
      expect(await keysUnder(redis, prefix)).to.deep.equal([`${prefix}alert:hot:7`, `${prefix}alert:hot:8`]);
      expect(await redis.hgetall(`${prefix}alert:hot:7`)).to.deep.equal({
        id: '7', host: 'db 1', value: '1500.5', ok: 'true', tags: '["a","b"]', meta: '{"dc":"par","n":null}', empty: '', ...META,
      });
      expect(await redis.hgetall(`${prefix}alert:hot:8`)).to.deep.equal({
        id: '8', host: 'db/2', value: '-1', ok: 'false', tags: '[]', meta: '{}', empty: 'x', ...META,
      });
      expect(await redis.ttl(`${prefix}alert:hot:7`)).to.equal(-1);
    });

    it('hash with a dotted field and a default in the key; "/" and control characters in a value become "_"', async () => {
      const s = await sink({ mode: 'hash', key: '{meta.site}:{host:-unknown}:{id}', include_metadata: false });
      await write(s, objects([{ id: 1, meta: { site: 'par' }, host: 'a/b\nc' }, { id: 2, meta: { site: 'lis' } }]));
      expect(await keysUnder(redis, prefix)).to.deep.equal([`${prefix}lis:unknown:2`, `${prefix}par:a_b_c:1`]);
      expect(await redis.hgetall(`${prefix}lis:unknown:2`)).to.deep.equal({ id: '2', meta: '{"site":"lis"}' });
    });

    it('columnar rows (CSV) are typed as their columns say', async () => {
      const layout = new ColumnLayout(['id', 'value', 'seen', 'note'], { value: 'number', seen: 'timestamp' });
      const s = await sink({ mode: 'hash', key: 'r:{id}', include_metadata: false });
      await write(s, { ...objects([]), layout, rows: [['a1', '12.50', '2026-11-24T10:00:00Z', ''], ['a2', 'x', '', 'hi']] });
      expect(await redis.hgetall(`${prefix}r:a1`)).to.deep.equal({ id: 'a1', value: '12.5', seen: '2026-11-24T10:00:00.000Z' });
      expect(await redis.hgetall(`${prefix}r:a2`)).to.deep.equal({ id: 'a2', value: 'x', note: 'hi' });
    });

    it('list: RPUSH of each record\'s JSON, oldest first, one list per key', async () => {
      const s = await sink({ mode: 'list', key: 'alerts:{rule}' });
      await write(s, objects([{ id: 1, v: null }, { id: 2, nested: { a: [1] } }]));
      await write(s, objects([{ id: 3 }], 'cold'));
      await write(s, objects([{ id: 4 }]));
      const items = await redis.lrange(`${prefix}alerts:hot`, 0, -1);
      expect(items.map((i) => JSON.parse(i))).to.deep.equal([{ id: 1, v: null, ...META }, { id: 2, nested: { a: [1] }, ...META }, { id: 4, ...META }]);
      expect((await redis.lrange(`${prefix}alerts:cold`, 0, -1)).map((i) => JSON.parse(i).id)).to.deep.equal([3]);
    });

    it('list with push: left and max_length: newest first, trimmed to the newest N', async () => {
      const s = await sink({ mode: 'list', key: 'l', push: 'left', max_length: 3, include_metadata: false });
      await write(s, objects([{ id: 1 }, { id: 2 }]));
      await write(s, objects([{ id: 3 }, { id: 4 }, { id: 5 }]));
      expect((await redis.lrange(`${prefix}l`, 0, -1)).map((i) => JSON.parse(i).id)).to.deep.equal([5, 4, 3]);
    });

    it('list with max_length on the right: the newest N kept, in order, even within one batch larger than N', async () => {
      const s = await sink({ mode: 'list', key: 'l', max_length: 4, include_metadata: false });
      await write(s, objects(Array.from({ length: 10 }, (_, i) => ({ id: i }))));
      expect((await redis.lrange(`${prefix}l`, 0, -1)).map((i) => JSON.parse(i).id)).to.deep.equal([6, 7, 8, 9]);
      await write(s, objects([{ id: 10 }]));
      expect((await redis.lrange(`${prefix}l`, 0, -1)).map((i) => JSON.parse(i).id)).to.deep.equal([7, 8, 9, 10]);
    });

    it('a batch larger than one push chunk (1,000 values) keeps every record, in order', async () => {
      const s = await sink({ mode: 'list', key: 'l', include_metadata: false });
      await write(s, objects(Array.from({ length: 2500 }, (_, i) => ({ id: i }))));
      const ids = (await redis.lrange(`${prefix}l`, 0, -1)).map((i) => JSON.parse(i).id);
      expect(ids).to.deep.equal(Array.from({ length: 2500 }, (_, i) => i));
    });

    it('string: SET key to the record\'s JSON; a later record of the same key replaces it', async () => {
      const s = await sink({ mode: 'string', key: 'latest:{sensor}' });
      await write(s, objects([{ sensor: 's1', v: 1 }, { sensor: 's2', v: 2 }, { sensor: 's1', v: 3, big: 12345678901234567890n }]));
      expect(await redis.get(`${prefix}latest:s1`)).to.equal(`{"sensor":"s1","v":3,"big":12345678901234567890,"_rule":"hot","_datasource":"sensors","_run_id":"run-1","_matched_at":"${MATCHED_AT}"}`);
      expect(JSON.parse((await redis.get(`${prefix}latest:s2`))!)).to.deep.equal({ sensor: 's2', v: 2, ...META });
    });

    it('stream: XADD one entry per record, fields as in a hash, MAXLEN ~ N trims', async () => {
      const s = await sink({ mode: 'stream', key: 'events:{rule}', include_metadata: false });
      await write(s, objects([{ id: 1, v: 1.5, tags: ['x'], none: null }, { id: 2, v: 2 }]));
      const entries = await redis.xrange(`${prefix}events:hot`, '-', '+');
      expect(entries.map(([, fields]) => fields)).to.deep.equal([['id', '1', 'v', '1.5', 'tags', '["x"]'], ['id', '2', 'v', '2']]);
      expect(entries[0]![0]).to.match(/^\d+-\d+$/);

      const trimmed = await sink({ mode: 'stream', key: 'capped', max_length: 10, include_metadata: false });
      for (let k = 0; k < 5; k++) await write(trimmed, objects(Array.from({ length: 200 }, (_, i) => ({ id: k * 200 + i }))));
      const length = await redis.xlen(`${prefix}capped`);
      // "~" trims whole macro nodes (100 entries by default): at least 10 are kept, far fewer than the 1,000 added.
      expect(length).to.be.at.least(10).and.at.most(200);
      const last = await redis.xrevrange(`${prefix}capped`, '+', '-', 'COUNT', 1);
      expect(last[0]![1]).to.deep.equal(['id', '999']);
    });
  });

  describe('ttl', () => {
    it('hash, list and string keys expire after ttl seconds; a later write sets it again', async () => {
      const hash = await sink({ mode: 'hash', key: 'h:{id}', ttl: 300 });
      const list = await sink({ mode: 'list', key: 'l', ttl: 200, max_length: 2 });
      const str = await sink({ mode: 'string', key: 's:{id}', ttl: 100 });
      const batch = objects([{ id: 1 }, { id: 2 }, { id: 3 }]);
      await Promise.all([write(hash, batch), write(list, batch), write(str, batch)]);
      for (const id of [1, 2, 3]) {
        expect(await redis.ttl(`${prefix}h:${id}`)).to.be.within(295, 300);
        expect(await redis.ttl(`${prefix}s:${id}`)).to.be.within(95, 100);
      }
      expect(await redis.ttl(`${prefix}l`)).to.be.within(195, 200);
      expect(await redis.llen(`${prefix}l`)).to.equal(2);
      await redis.expire(`${prefix}h:1`, 10);
      await write(hash, objects([{ id: 1 }]));
      expect(await redis.ttl(`${prefix}h:1`)).to.be.within(295, 300);
    });

    it('a stream gets the ttl only with expire_streams: true', async () => {
      const plain = await sink({ mode: 'stream', key: 'x1', max_length: 100 });
      const expiring = await sink({ mode: 'stream', key: 'x2', ttl: 60, expire_streams: true });
      await write(plain, objects([{ id: 1 }]));
      await write(expiring, objects([{ id: 1 }]));
      expect(await redis.ttl(`${prefix}x1`)).to.equal(-1);
      expect(await redis.ttl(`${prefix}x2`)).to.be.within(55, 60);
      expect(redisSink.validate!({ type: 'redis', mode: 'stream', ttl: 60 }).map((i) => i.key)).to.deep.equal(['ttl']);
    });

    it('a key of another type is neither written nor given a TTL: the expiry runs only where the write succeeded', async () => {
      await redis.set(`${prefix}h:2`, 'someone else\'s string');
      const s = await sink({ mode: 'hash', key: 'h:{id}', ttl: 300 });
      const err = await write(s, objects([{ id: 1 }, { id: 2 }, { id: 3 }])).then(() => undefined, (e) => e);
      expect(describeError(err)).to.match(/WRONGTYPE/);
      expect(await redis.get(`${prefix}h:2`)).to.equal('someone else\'s string');
      expect(await redis.ttl(`${prefix}h:2`)).to.equal(-1);
      expect(await redis.ttl(`${prefix}h:3`)).to.be.within(295, 300);
    });
  });

  describe('part of a batch failing', () => {
    it('WRONGTYPE on one key: that record counts failed, the others are stored and count exported, and it is not retried', async () => {
      await redis.set(`${prefix}alert:3`, 'a string, not a hash');
      const s = await sink({ mode: 'hash', key: 'alert:{id}' });
      const { queue, counts, lines } = queueOver(s, { batchSize: 5 });
      await queue.add(objects(Array.from({ length: 8 }, (_, i) => ({ id: i + 1, v: i }))));
      await queue.finish();
      expect(counts).to.deep.equal({ exported: 7, failed: 1 });
      expect(await keysUnder(redis, prefix)).to.have.lengthOf(8);
      expect(await redis.hget(`${prefix}alert:5`, 'v')).to.equal('4');
      expect(await redis.get(`${prefix}alert:3`)).to.equal('a string, not a hash');
      const status = queue.status();
      expect(status.ok).to.equal(false);
      expect(status.records).to.equal(7);
      expect(status.error).to.include('1 of 5 records not stored').and.include(`key "${prefix}alert:3"`).and.include('WRONGTYPE');
      expect(lines().filter((l) => l.msg === 'export target failed')).to.have.lengthOf(1);
      expect(lines().some((l) => /trying again/.test(String(l.msg)))).to.equal(false);
    });

    it('a list key of another type fails the records pushed to it, the records of other keys are stored', async () => {
      await redis.hset(`${prefix}l:b`, 'x', '1');
      const s = await sink({ mode: 'list', key: 'l:{g}', max_length: 10, include_metadata: false });
      const { queue, counts } = queueOver(s);
      await queue.add(objects([{ g: 'a', n: 1 }, { g: 'b', n: 2 }, { g: 'a', n: 3 }, { g: 'b', n: 4 }]));
      await queue.finish();
      expect(counts).to.deep.equal({ exported: 2, failed: 2 });
      expect((await redis.lrange(`${prefix}l:a`, 0, -1)).map((i) => JSON.parse(i).n)).to.deep.equal([1, 3]);
      expect(await redis.hgetall(`${prefix}l:b`)).to.deep.equal({ x: '1' });
    });

    it('a key template naming a field the record lacks: that record fails with the field, the template and its position; the rest are stored', async () => {
      const s = await sink({ mode: 'hash', key: 'alert:{host}:{id}' });
      const { queue, counts } = queueOver(s);
      await queue.add(objects([{ id: 1, host: 'a' }, { id: 2 }, { id: 3, host: null }, { id: 4, host: 'b' }]));
      await queue.finish();
      expect(counts).to.deep.equal({ exported: 2, failed: 2 });
      expect(await keysUnder(redis, prefix)).to.deep.equal([`${prefix}alert:a:1`, `${prefix}alert:b:4`]);
      const { error } = queue.status();
      expect(error).to.include('2 of 4 records not stored');
      expect(error).to.include('record #2 of the batch (rule "hot", datasource "sensors")');
      expect(error).to.include('the record has no field "host"');
      expect(error).to.include('alert:{host}:{id}');
    });

    it('a record that cannot be written (a value whose JSON form throws), in the key or in a field, fails alone; the other records of its slices are stored', async () => {
      const hostile = { toJSON() { throw new Error('boom'); } };
      const s = await sink({ mode: 'hash', key: 'h:{k}', include_metadata: false });
      const { queue, counts } = queueOver(s, { batchSize: 1000 });
      await queue.add(objects(Array.from({ length: 1000 }, (_, i) => (i === 450 ? { k: hostile, v: i } : i === 650 ? { k: i, v: hostile } : { k: i, v: i }))));
      await queue.finish();
      expect(counts).to.deep.equal({ exported: 998, failed: 2 });
      const keys = await keysUnder(redis, prefix);
      expect(keys).to.have.lengthOf(998);
      expect(keys).to.not.include(`${prefix}h:650`);
      expect(await redis.hget(`${prefix}h:651`, 'v')).to.equal('651');
      const { error } = queue.status();
      expect(error).to.include('2 of 1000 records not stored').and.include('record #451 of the batch').and.include('boom');
    });

    it('two batches sharing a new connection, the first holding a record that cannot be written: the second is stored whole', async () => {
      const hostile = { toJSON() { throw new Error('boom'); } };
      const s = await sink({ mode: 'stream', key: 's:{g}', include_metadata: false });
      const { queue, counts } = queueOver(s, { batchSize: 600, maxInFlight: 2 });
      await queue.add(objects(Array.from({ length: 600 }, (_, i) => ({ g: i === 450 ? hostile : 'a', n: i }))));
      await queue.add(objects(Array.from({ length: 300 }, (_, i) => ({ g: 'b', n: i }))));
      await queue.finish();
      expect(counts).to.deep.equal({ exported: 899, failed: 1 });
      expect(await redis.xlen(`${prefix}s:a`)).to.equal(599);
      expect(await redis.xlen(`${prefix}s:b`)).to.equal(300);
    });

    it('every record missing the field: nothing is written and every record counts failed', async () => {
      const s = await sink({ mode: 'string', key: 'k:{host}' });
      const err = await write(s, objects([{ id: 1 }, { id: 2 }])).then(() => undefined, (e) => e);
      expect(err.code).to.equal('TEMPLATE_MISSING_FIELD');
      expect(describeError(err)).to.include('none of the 2 records was stored');
      expect(await keysUnder(redis, prefix)).to.deep.equal([]);
    });
  });

  describe('connection trouble', () => {
    it('nobody on the port: check and writes fail within connect_timeout, naming host and port, retryable', async () => {
      const port = await freePort();
      const s = await sink({ url: undefined, host: '127.0.0.1', port, connect_timeout: '1s' });
      const started = Date.now();
      const err = await s.check!(ctx()).then(() => undefined, (e) => e);
      expect(describeError(err)).to.include(`127.0.0.1:${port}`).and.include('ECONNREFUSED');
      expect(err.retryable).to.equal(true);
      const { queue, counts } = queueOver(s, { batchSize: 2 });
      await queue.add(objects([{ id: 1 }, { id: 2 }, { id: 3 }, { id: 4 }, { id: 5 }]));
      await queue.finish();
      expect(counts).to.deep.equal({ exported: 0, failed: 5 });
      expect(queue.status().error).to.include('gave up after 3 attempts').and.include(`127.0.0.1:${port}`);
      expect(Date.now() - started).to.be.below(5000);
    });

    it('a peer that accepts and never answers: connect_timeout bounds the handshake', async () => {
      const sockets: Socket[] = [];
      const silent: Server = createServer((socket) => sockets.push(socket));
      await new Promise<void>((resolve) => silent.listen(0, '127.0.0.1', resolve));
      try {
        const { port } = silent.address() as { port: number };
        const s = await sink({ url: undefined, host: '127.0.0.1', port, connect_timeout: '500ms' });
        const started = Date.now();
        const err = await s.check!(ctx()).then(() => undefined, (e) => e);
        expect(Date.now() - started).to.be.below(2500);
        expect(describeError(err)).to.include(`127.0.0.1:${port}`).and.match(/no answer within 0.5s/);
        expect(err.retryable).to.equal(true);
      } finally {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => silent.close(resolve));
      }
    });

    it('a cancelled write rejects with CANCELLED and sends nothing', async () => {
      const controller = new AbortController();
      controller.abort();
      const s = await sink({ mode: 'hash', key: 'h:{id}' });
      const err = await write(s, objects([{ id: 1 }]), controller.signal).then(() => undefined, (e) => e);
      expect(err.code).to.equal('CANCELLED');
      expect(await keysUnder(redis, prefix)).to.deep.equal([]);
    });
  });

  describe('passwords, Sentinel and Cluster (servers of the test\'s own)', function () {
    this.timeout(30_000);

    it('a wrong password fails check naming the server, never the password, in the error or the log', async () => {
      const server = await startOwnRedis(['--requirepass', 'right-pass-93']);
      try {
        const { log, lines } = memoryLogger('trace');
        const s = await sink({ url: `redis://:wrong-pass-71@127.0.0.1:${server.port}/0` }, log);
        const err = await s.check!({ signal: new AbortController().signal, log }).then(() => undefined, (e) => e);
        const message = describeError(err);
        expect(message).to.include(`127.0.0.1:${server.port}`).and.include('refused the username or password');
        expect(err.retryable).to.equal(false);
        expect(message + JSON.stringify(lines()) + JSON.stringify(err.details)).to.not.include('wrong-pass-71');

        const ok = await sink({ url: undefined, host: '127.0.0.1', port: server.port, password: 'right-pass-93' });
        expect(await ok.check!(ctx())).to.match(/^PONG in [\d.]+ ms; Redis \d/).and.not.include('right-pass-93');
      } finally {
        await server.remove();
      }
    });

    it('a username without a password is sent (AUTH user ""): a nopass ACL user writes only where its ACL allows, never as the default user', async () => {
      const server = await startOwnRedis();
      const admin = testClient(server.url);
      try {
        await admin.call('ACL', 'SETUSER', 'bob', 'on', 'nopass', '~allowed:*', '+@all');
        const allowed = await sink({ url: `redis://bob@127.0.0.1:${server.port}/0`, mode: 'hash', key: 'allowed:{id}', key_prefix: '' });
        await write(allowed, objects([{ id: 1 }]));
        expect(await admin.hget('allowed:1', 'id')).to.equal('1');
        const denied = await sink({ url: undefined, host: '127.0.0.1', port: server.port, username: 'bob', password: '', mode: 'hash', key: 'denied:{id}', key_prefix: '' });
        const err = await write(denied, objects([{ id: 2 }])).then(() => undefined, (e) => e);
        expect(err?.code).to.equal('NOPERM');
        expect(await admin.exists('denied:2')).to.equal(0);
      } finally {
        admin.disconnect();
        await server.remove();
      }
    });

    it('pointed at a Sentinel: a clear error saying to use the primary', async () => {
      const sentinel = await startRedisWithConfig('', ['--sentinel']);
      try {
        const s = await sink({ url: undefined, host: '127.0.0.1', port: sentinel.port });
        const err = await write(s, objects([{ id: 1 }])).then(() => undefined, (e) => e);
        expect(err.code).to.equal('REDIS_SENTINEL');
        expect(err.retryable).to.equal(false);
        expect(describeError(err)).to.include(`127.0.0.1:${sentinel.port} is a Redis Sentinel`).and.include('primary');
      } finally {
        await sentinel.remove();
      }
    });

    it('pointed at a Cluster node: a clear error saying this target writes to a single server', async () => {
      const node = await startRedisWithConfig('cluster-enabled yes\ncluster-config-file nodes.conf');
      try {
        const s = await sink({ url: undefined, host: '127.0.0.1', port: node.port });
        const err = await s.check!(ctx()).then(() => undefined, (e) => e);
        expect(err.code).to.equal('REDIS_CLUSTER');
        expect(describeError(err)).to.include('is a Redis Cluster node').and.include('single server');
      } finally {
        await node.remove();
      }
    });

    it('replies that do not come within timeout: the connection is dropped, the write retried, every record stored and counted once', async () => {
      const server = await startOwnRedis();
      const peer = testClient(server.url);
      try {
        const s = await sink({ url: server.url, mode: 'hash', key: 'h:{id}', timeout: '300ms', include_metadata: false });
        await s.check!(ctx());
        // Write commands of every client wait while the server is paused: the first attempt gets no reply in time.
        await peer.call('CLIENT', 'PAUSE', '1200', 'WRITE');
        const { queue, counts, lines } = queueOver(s, { retry: { maxAttempts: 10, initialBackoffMs: 200, maxBackoffMs: 400 } });
        await queue.add(objects([{ id: 1 }, { id: 2 }, { id: 3 }]));
        await queue.finish();
        expect(counts).to.deep.equal({ exported: 3, failed: 0 });
        const retries = lines().filter((l) => /trying again/.test(String(l.msg)));
        expect(retries.length).to.be.at.least(1);
        expect(JSON.stringify(retries[0])).to.include('no reply within 0.3s (timeout)');
        expect(await keysUnder(peer, prefix)).to.deep.equal([`${prefix}h:1`, `${prefix}h:2`, `${prefix}h:3`]);
        expect(await peer.hgetall(`${prefix}h:2`)).to.deep.equal({ id: '2' });
      } finally {
        peer.disconnect();
        await server.remove();
      }
    });

    /**
     * A proxy in front of the test Redis that, once it sees the batch (HSET) go by, lets through
     * only the first `replies` replies and then cuts both connections: the server ran every
     * command, the target heard back about some. `accept` says whether later connections are let in.
     */
    async function cuttingProxy(replies: number, accept: () => boolean): Promise<{ port: number; hsets: number[]; close(): Promise<void> }> {
      const upstream = new URL(TEST_REDIS_URL);
      const sockets = new Set<Socket>();
      let cutDone = false;
      const hsets: number[] = [];
      const proxy = createServer((client) => {
        if (!accept()) return client.destroy();
        const connection = hsets.push(0) - 1;
        const server = connect(Number(upstream.port || 6379), upstream.hostname);
        sockets.add(client).add(server);
        let watching = false;
        let allowed = replies * ':1\r\n'.length;
        client.on('data', (chunk: Buffer) => {
          hsets[connection]! += chunk.toString('latin1').split('HSET').length - 1;
          if (!cutDone && chunk.includes('HSET')) watching = true;
          server.write(chunk);
        });
        server.on('data', (chunk) => {
          if (!watching) return void client.write(chunk);
          const part = chunk.subarray(0, allowed);
          allowed -= part.length;
          client.write(part);
          if (allowed <= 0) {
            cutDone = true;
            watching = false;
            client.destroy();
            server.destroy();
          }
        });
        for (const s of [client, server]) s.on('error', () => {}).on('close', () => (client.destroy(), server.destroy()));
      });
      await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
      return {
        port: (proxy.address() as { port: number }).port,
        hsets,
        close: async () => {
          for (const socket of sockets) socket.destroy();
          await new Promise((resolve) => proxy.close(resolve));
        },
      };
    }

    it('the connection lost after 3 of 10 replies: the next attempt sends only the 7 unconfirmed records, and all count exported', async () => {
      const proxy = await cuttingProxy(3, () => true);
      try {
        const s = await sink({ url: undefined, host: '127.0.0.1', port: proxy.port, mode: 'hash', key: 'h:{id}', include_metadata: false });
        const { queue, counts, lines } = queueOver(s, { batchSize: 10 });
        await queue.add(objects(Array.from({ length: 10 }, (_, i) => ({ id: i }))));
        await queue.finish();
        expect(counts).to.deep.equal({ exported: 10, failed: 0 });
        expect(await keysUnder(redis, prefix)).to.have.lengthOf(10);
        const retry = lines().find((l) => /trying again/.test(String(l.msg)));
        expect(JSON.stringify(retry)).to.include('7 of 10 records not stored').and.include('(the other 3 were)');
        // The first connection carried the 10 commands; the second only the 7 whose replies were lost.
        expect(proxy.hsets).to.deep.equal([10, 7]);
      } finally {
        await proxy.close();
      }
    });

    it('a batch of 1,000 going out in slices, cut after 300 replies, with a key of another type and a record missing its key field further on: every other record stored once', async () => {
      await redis.set(`${prefix}h:449`, 'a string, not a hash');
      const proxy = await cuttingProxy(300, () => true);
      try {
        const s = await sink({ url: undefined, host: '127.0.0.1', port: proxy.port, mode: 'hash', key: 'h:{k}', include_metadata: false });
        const { queue, counts } = queueOver(s, { batchSize: 1000 });
        await queue.add(objects(Array.from({ length: 1000 }, (_, i) => (i === 699 ? { v: i } : { k: i, v: i }))));
        await queue.finish();
        expect(counts).to.deep.equal({ exported: 998, failed: 2 });
        const keys = await keysUnder(redis, prefix);
        expect(keys).to.have.lengthOf(999);
        expect(keys).to.not.include(`${prefix}h:699`);
        expect(await redis.get(`${prefix}h:449`)).to.equal('a string, not a hash');
        expect(await redis.hget(`${prefix}h:999`, 'v')).to.equal('999');
        // The second connection carried only the records whose replies were lost: 999 sent, 300 confirmed.
        expect(proxy.hsets[1]).to.equal(699);
        const { error } = queue.status();
        expect(error).to.include('2 of 1000 records not stored');
      } finally {
        await proxy.close();
      }
    });

    it('the connection lost after 3 of 10 replies and never back: 3 count exported, 7 failed (the server may hold more: never fewer)', async () => {
      let connections = 0;
      const proxy = await cuttingProxy(3, () => ++connections === 1);
      try {
        const s = await sink({ url: undefined, host: '127.0.0.1', port: proxy.port, mode: 'hash', key: 'h:{id}', include_metadata: false, connect_timeout: '1s' });
        const { queue, counts } = queueOver(s, { batchSize: 10 });
        await queue.add(objects(Array.from({ length: 10 }, (_, i) => ({ id: i }))));
        await queue.finish();
        expect(counts).to.deep.equal({ exported: 3, failed: 7 });
        expect(queue.status().records).to.equal(3);
        expect(queue.status().error).to.include('gave up after 3 attempts').and.include('7 of 10 records not stored');
        // Every command reached the server; only 3 replies reached the target. What counts exported is there.
        expect((await keysUnder(redis, prefix)).length).to.be.at.least(3);
      } finally {
        await proxy.close();
      }
    });

    it('a server killed and restarted between two writes: the next write reconnects', async () => {
      const server = await startOwnRedis();
      try {
        const s = await sink({ url: server.url, mode: 'hash', key: 'h:{id}' });
        await write(s, objects([{ id: 1 }]));
        await server.kill();
        await server.start();
        const { queue, counts } = queueOver(s, { retry: { maxAttempts: 5, initialBackoffMs: 20, maxBackoffMs: 200 } });
        await queue.add(objects([{ id: 2 }]));
        await queue.finish();
        expect(counts).to.deep.equal({ exported: 1, failed: 0 });
        const peer = testClient(server.url);
        try {
          expect(await keysUnder(peer, prefix)).to.deep.equal([`${prefix}h:1`, `${prefix}h:2`]);
        } finally {
          peer.disconnect();
        }
      } finally {
        await server.remove();
      }
    });
  });

  describe('TLS (a redis-server of the test\'s own with a self-signed certificate)', function () {
    this.timeout(30_000);
    let tlsDir: string;
    let port: number;
    let server: ChildProcess | undefined;

    before(async function () {
      tlsDir = mkdtempSync(path.join(tmpdir(), 'tp-redis-tls-'));
      const made = spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', 'key.pem', '-out', 'cert.pem', '-days', '2', '-subj', '/CN=localhost',
        '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1'], { cwd: tlsDir });
      if (made.status !== 0) throw new Error(`openssl could not make a certificate: ${made.stderr}`);
      port = await freePort();
      server = spawn('redis-server', ['--port', '0', '--tls-port', String(port), '--bind', '127.0.0.1', '--tls-cert-file', 'cert.pem', '--tls-key-file', 'key.pem',
        '--tls-auth-clients', 'no', '--save', '', '--dir', tlsDir], { cwd: tlsDir, stdio: 'ignore' });
      const deadline = Date.now() + 10_000;
      for (;;) {
        const probe = new Redis({ host: '127.0.0.1', port, tls: { ca: readFileSync(path.join(tlsDir, 'cert.pem')) }, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, protocol: 2 });
        probe.on('error', () => {});
        try {
          await probe.connect();
          probe.disconnect();
          break;
        } catch (err) {
          probe.disconnect();
          if (Date.now() > deadline) throw err;
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
      }
    });
    after(async () => {
      if (server && server.exitCode === null) {
        const exited = new Promise((resolve) => server!.once('exit', resolve));
        server.kill('SIGKILL');
        await exited;
      }
      rmSync(tlsDir, { recursive: true, force: true });
    });

    it('tls: {ca} writes over TLS, and check says so', async () => {
      const s = await sink({ url: undefined, host: '127.0.0.1', port, tls: { ca: path.join(tlsDir, 'cert.pem') }, mode: 'hash', key: 'h:{id}', include_metadata: false });
      expect(await s.check!(ctx())).to.include(`rediss://127.0.0.1:${port}/0`);
      await write(s, objects([{ id: 1, v: 'over tls' }]));
      const peer = new Redis({ host: '127.0.0.1', port, tls: { ca: readFileSync(path.join(tlsDir, 'cert.pem')) }, protocol: 2 });
      try {
        expect(await peer.hgetall(`${prefix}h:1`)).to.deep.equal({ id: '1', v: 'over tls' });
        await peer.del(`${prefix}h:1`);
      } finally {
        peer.disconnect();
      }
    });

    it('rediss:// to a server whose certificate is not trusted: a TLS error, not retried', async () => {
      const s = await sink({ url: `rediss://127.0.0.1:${port}/0` });
      const err = await s.check!(ctx()).then(() => undefined, (e) => e);
      expect(describeError(err)).to.include(`rediss://127.0.0.1:${port}/0`).and.include('TLS handshake failed');
      expect(err.retryable).to.equal(false);
    });

    it('tls: true against a server that does not speak TLS fails within connect_timeout, naming the server', async () => {
      const plain = new URL(TEST_REDIS_URL);
      const s = await sink({ url: undefined, host: plain.hostname, port: Number(plain.port || 6379), tls: true, connect_timeout: '1s' });
      const started = Date.now();
      const err = await s.check!(ctx()).then(() => undefined, (e) => e);
      expect(Date.now() - started).to.be.below(3000);
      expect(describeError(err)).to.include(`rediss://${plain.hostname}:${plain.port || 6379}/0`);
    });
  });

  describe('config checks', () => {
    const issues = (config: Partial<RedisSinkConfig>) => redisSink.validate!({ type: 'redis', ...config } as RedisSinkConfig).map((i) => `${i.key}: ${i.message}`);

    it('refuses what cannot work, naming the key', () => {
      expect(issues({ mode: 'hash' })[0]).to.match(/^key: hash mode stores one hash per record/);
      expect(issues({ url: 'http://x' })[0]).to.match(/^url: .*redis:\/\//);
      expect(issues({ url: 'redis://x:6379/abc' })[0]).to.match(/^url: .*database number/);
      expect(issues({ url: 'redis://x', host: 'y' })).to.deep.equal(['url: give either url or host/port, not both']);
      expect(issues({ url: 'redis://x:6379/0?db=2' })[0]).to.match(/^url: options after "\?" or "#" are not read/);
      expect(issues({ mode: 'list', data_type: 'list' })[0]).to.match(/^data_type: /);
      expect(issues({ mode: 'hash', key: 'a:{id}', push: 'left' })[0]).to.match(/^push: /);
      expect(issues({ mode: 'string', max_length: 3 })[0]).to.match(/^max_length: /);
      expect(issues({ key: 'a:{part}' })[0]).to.match(/^key: unknown placeholder \{part\}/);
      expect(issues({ key: 'a:{id' })[0]).to.match(/^key: /);
      expect(issues({ mode: 'list', key: 'a:{id}', max_length: 5, ttl: 10, push: 'left' })).to.deep.equal([]);
      expect(issues({ data_type: 'hash', key: 'a:{id}' })).to.deep.equal([]);
    });

    it('a URL with a password is never quoted in a config error', () => {
      expect(issues({ url: 'redis://:s3cret@host:6379/x' }).join()).to.not.include('s3cret');
    });
  });
});
