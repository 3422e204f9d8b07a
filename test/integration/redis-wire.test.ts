/**
 * The Redis target's own protocol code against the real server: text that is not ASCII, text
 * that looks like the protocol, replies that arrive a few bytes at a time, and large batches.
 */
import { expect } from 'chai';
import { connect, createServer, type Socket } from 'node:net';
import type { Redis } from 'ioredis';
import { redisSink, type RedisSinkConfig } from '../../connectors/redis/redis-sink.js';
import type { MatchBatch, OperationContext, Sink } from '../../connectors/types.js';
import { deliveryBatch } from '../../src/delivery/target-queue.js';
import { describeError } from '../../src/errors.js';
import { OBJECT_LAYOUT } from '../../src/records/layout.js';
import { memoryLogger } from '../helpers.js';
import { RespSocket } from '../../connectors/redis/redis-wire.js';
import { keysUnder, removeKeysUnder, testClient, TEST_REDIS_URL, uniquePrefix } from '../support/redis-server.js';

const MATCHED_AT = '2026-11-24T12:00:00.000Z';

function objects(rows: Record<string, unknown>[]): MatchBatch {
  return { rule: 'hot', datasource: 'sensors', runId: 'run-1', matchedAt: MATCHED_AT, layout: OBJECT_LAYOUT, rows };
}

describe('redis export target: the wire (real Redis)', function () {
  this.timeout(30_000);
  let redis: Redis;
  let prefix: string;
  const sinks: Sink[] = [];

  before(() => {
    redis = testClient();
  });
  after(() => redis.disconnect());
  beforeEach(() => {
    prefix = uniquePrefix('wire');
  });
  afterEach(async () => {
    await Promise.all(sinks.splice(0).map((s) => s.close?.()));
    await removeKeysUnder(redis, prefix);
  });

  async function sink(config: Partial<RedisSinkConfig>): Promise<Sink> {
    const s = await redisSink.create({ type: 'redis', url: TEST_REDIS_URL, key_prefix: prefix, include_metadata: false, ...config } as RedisSinkConfig, {
      name: 'alerts',
      configDir: '.',
      log: memoryLogger().log,
      signal: new AbortController().signal,
    });
    sinks.push(s);
    return s;
  }

  const ctx = (): OperationContext => ({ signal: new AbortController().signal, log: memoryLogger().log });
  const write = (s: Sink, batch: MatchBatch) => s.write(deliveryBatch('alerts', [batch]), ctx());

  it('multi-byte UTF-8 in keys and values, next to ASCII records in the same batch, lands as written', async () => {
    const s = await sink({ mode: 'hash', key: 'h:{id}' });
    await write(s, objects([
      { id: 'plain', note: 'ascii only' },
      { id: 'café', note: 'é is one unit and two bytes', city: 'Zürich' },
      { id: 'Жук-😀', note: '雪 ❄ 😀', 'champ-é': 'ключ' },
      { id: 'lone', note: 'a\uD800b' },
    ]));
    expect(await keysUnder(redis, prefix)).to.have.members([`${prefix}h:plain`, `${prefix}h:café`, `${prefix}h:Жук-😀`, `${prefix}h:lone`]);
    expect(await redis.hgetall(`${prefix}h:plain`)).to.deep.equal({ id: 'plain', note: 'ascii only' });
    expect(await redis.hgetall(`${prefix}h:café`)).to.deep.equal({ id: 'café', note: 'é is one unit and two bytes', city: 'Zürich' });
    expect(await redis.hgetall(`${prefix}h:Жук-😀`)).to.deep.equal({ id: 'Жук-😀', note: '雪 ❄ 😀', 'champ-é': 'ключ' });
    // A lone surrogate is not text UTF-8 can carry: it is stored as U+FFFD, not as broken bytes.
    expect(await redis.hgetallBuffer(`${prefix}h:lone`)).to.deep.equal({ id: Buffer.from('lone'), note: Buffer.from('a\uFFFDb') });
  });

  it('values holding CR LF and text that looks like the protocol are stored verbatim (hash and stream)', async () => {
    const tricky = { id: 1, crlf: 'line 1\r\nline 2\r\n', bulk: '$3\r\nfoo\r\n', array: '*2\r\n$4\r\nPING\r\n', error: '-ERR no\r\n', empty: '' };
    const hashes = await sink({ mode: 'hash', key: 'h:{id}' });
    await write(hashes, objects([tricky, { id: 2, after: 'still in step' }]));
    expect(await redis.hgetall(`${prefix}h:1`)).to.deep.equal({ ...tricky, id: '1' });
    expect(await redis.hgetall(`${prefix}h:2`)).to.deep.equal({ id: '2', after: 'still in step' });
    const streams = await sink({ mode: 'stream', key: 's' });
    await write(streams, objects([tricky]));
    const [[, fields]] = (await redis.xrange(`${prefix}s`, '-', '+')) as [string, string[]][];
    expect(fields).to.deep.equal(['id', '1', 'crlf', tricky.crlf, 'bulk', tricky.bulk, 'array', tricky.array, 'error', tricky.error, 'empty', '']);
  });

  /** A proxy that passes every reply to the target a few bytes at a time, each piece its own write after a pause. */
  async function tricklingProxy(pieceBytes: number): Promise<{ port: number; pieces: () => number; close(): Promise<void> }> {
    const upstream = new URL(TEST_REDIS_URL);
    const sockets = new Set<Socket>();
    let pieces = 0;
    const proxy = createServer((client) => {
      const server = connect(Number(upstream.port || 6379), upstream.hostname);
      sockets.add(client).add(server);
      let queue = Promise.resolve();
      client.on('data', (chunk) => server.write(chunk));
      server.on('data', (chunk: Buffer) => {
        queue = queue.then(async () => {
          for (let at = 0; at < chunk.length; at += pieceBytes) {
            client.write(chunk.subarray(at, at + pieceBytes));
            pieces++;
            await new Promise((resolve) => setImmediate(resolve));
          }
        });
      });
      for (const s of [client, server]) s.on('error', () => {}).on('close', () => (client.destroy(), server.destroy()));
    });
    await new Promise<void>((resolve) => proxy.listen(0, '127.0.0.1', resolve));
    return {
      port: (proxy.address() as { port: number }).port,
      pieces: () => pieces,
      close: async () => {
        for (const socket of sockets) socket.destroy();
        await new Promise((resolve) => proxy.close(resolve));
      },
    };
  }

  it('replies split across many TCP chunks (3 bytes each): handshake, PING, and a batch with an error reply in its middle are read right', async () => {
    await redis.set(`${prefix}h:5`, 'a string, not a hash');
    const proxy = await tricklingProxy(3);
    try {
      const s = await sink({ url: undefined, host: '127.0.0.1', port: proxy.port, mode: 'hash', key: 'h:{id}' });
      expect(await s.check!(ctx())).to.match(/^PONG in /);
      const err = await write(s, objects(Array.from({ length: 10 }, (_, i) => ({ id: i, text: `värde ${i}` })))).then(() => undefined, (e: unknown) => e);
      // The WRONGTYPE reply, arriving in pieces, fails only its record; the nine others are stored and counted.
      expect(err).to.have.property('delivered', 9);
      expect(describeError(err)).to.include('1 of 10 records not stored').and.include(`key "${prefix}h:5"`).and.include('WRONGTYPE');
      for (let i = 0; i < 10; i++) {
        if (i === 5) continue;
        expect(await redis.hgetall(`${prefix}h:${i}`)).to.deep.equal({ id: String(i), text: `värde ${i}` });
      }
      expect(await redis.get(`${prefix}h:5`)).to.equal('a string, not a hash');
      // The replies did go by in pieces: far more writes than replies.
      expect(proxy.pieces()).to.be.greaterThan(100);
    } finally {
      await proxy.close();
    }
  });

  it('a large batch: 20,000 records in one write, one of them a 1 MB multi-byte value, all stored', async () => {
    const s = await sink({ mode: 'hash', key: 'h:{id}' });
    const big = 'é'.repeat(512 * 1024) + '😀';
    const rows = Array.from({ length: 20_000 }, (_, i) => ({ id: i, sensor: `s-${i % 37}`, value: i * 1.5 }));
    rows[12_345] = { ...rows[12_345]!, blob: big } as (typeof rows)[number];
    await write(s, objects(rows));
    expect(await keysUnder(redis, prefix)).to.have.lengthOf(20_000);
    expect(await redis.hgetall(`${prefix}h:19999`)).to.deep.equal({ id: '19999', sensor: `s-${19_999 % 37}`, value: String(19_999 * 1.5) });
    expect(await redis.hstrlen(`${prefix}h:12345`, 'blob')).to.equal(Buffer.byteLength(big));
    expect(await redis.hget(`${prefix}h:12345`, 'blob')).to.equal(big);
  });

  it('a password given to a server that asks for none: the write still lands, and the password is shown nowhere', async () => {
    const { log, lines } = memoryLogger();
    const s = await redisSink.create({ type: 'redis', url: TEST_REDIS_URL, key_prefix: prefix, mode: 'string', key: 's:{id}', include_metadata: false, password: 'unneeded-pass-93' } as RedisSinkConfig, {
      name: 'alerts',
      configDir: '.',
      log,
      signal: new AbortController().signal,
    });
    sinks.push(s);
    const checked = await s.check!(ctx());
    await write(s, objects([{ id: 1 }]));
    expect(await redis.get(`${prefix}s:1`)).to.equal('{"id":1}');
    expect(checked + JSON.stringify(lines())).to.not.include('unneeded-pass-93');
  });

  it('a batch that sends no command (hash records of null fields only) returns at once, not after the timeout', async function () {
    this.timeout(5_000);
    const s = await sink({ mode: 'hash', key: 'h:{id:-none}', timeout: '60s' });
    await write(s, objects([{ id: 1, note: 'stored' }]));
    await write(s, objects([{ a: null }, { b: null }]));
    await write(s, objects([{ id: 4, note: 'stored after' }]));
    expect(await keysUnder(redis, prefix)).to.have.members([`${prefix}h:1`, `${prefix}h:4`]);
  });

  it('a batch whose making fails half-way: the error reaches the caller, what it wrote is sent and answered, and the connection stays in step for the others', async () => {
    const url = new URL(TEST_REDIS_URL);
    const socket = connect(Number(url.port || 6379), url.hostname);
    await new Promise((resolve) => socket.once('connect', resolve));
    const resp = new RespSocket(socket);
    try {
      const before = resp.send([['SELECT', Number(url.pathname.slice(1) || 0)], ['SET', `${prefix}a`, '1']]);
      expect(() =>
        resp.sendEach((write) => {
          write(['SET', `${prefix}b`, '2']);
          throw new Error('no key for record #2');
        }),
      ).to.throw('no key for record #2');
      expect(resp.open).to.equal(true);
      expect(await before).to.deep.equal({ replies: ['OK', 'OK'] });
      const after = await resp.send([['GET', `${prefix}b`], ['PING']]);
      expect(after).to.deep.equal({ replies: ['2', 'PONG'] });
    } finally {
      resp.destroy();
    }
  });

  it('on a connection already lost, a batch is still made (its commands are in doubt, not absent) and settles at once with the loss', async () => {
    const url = new URL(TEST_REDIS_URL);
    const socket = connect(Number(url.port || 6379), url.hostname);
    await new Promise((resolve) => socket.once('connect', resolve));
    const resp = new RespSocket(socket);
    resp.destroy();
    let made = 0;
    const result = await resp.sendEach((write) => {
      for (let i = 0; i < 3; i++, made++) write(['PING']);
    });
    expect(made).to.equal(3);
    expect(result.replies).to.deep.equal([]);
    expect(result.lost?.message).to.equal('Connection is closed.');
  });

  it('a reply nobody asked for (a server out of step) ends the connection with PROTOCOL_ERROR; the process does not crash', async () => {
    // Answers every chunk of commands with two replies.
    const server = createServer((client) => client.on('data', () => client.write('+OK\r\n+OK\r\n')).on('error', () => {}));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const socket = connect((server.address() as { port: number }).port, '127.0.0.1');
    await new Promise((resolve) => socket.once('connect', resolve));
    const resp = new RespSocket(socket);
    try {
      expect(await resp.send([['PING']])).to.deep.equal({ replies: ['OK'] });
      await new Promise((resolve) => setTimeout(resolve, 50));
      expect(resp.open).to.equal(false);
      const after = await resp.send([['PING']]);
      expect(after.lost?.code).to.equal('PROTOCOL_ERROR');
    } finally {
      resp.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('list and string modes: non-ASCII JSON lands exactly', async () => {
    const lists = await sink({ mode: 'list', key: 'l' });
    await write(lists, objects([{ id: 1, t: 'ñ' }, { id: 2, t: '😀\r\n' }]));
    expect(await redis.lrange(`${prefix}l`, 0, -1)).to.deep.equal(['{"id":1,"t":"ñ"}', '{"id":2,"t":"😀\\r\\n"}']);
    const strings = await sink({ mode: 'string', key: 's:{id}' });
    await write(strings, objects([{ id: 'ключ', t: 'ß' }]));
    expect(await redis.get(`${prefix}s:ключ`)).to.equal('{"id":"ключ","t":"ß"}');
  });
});
