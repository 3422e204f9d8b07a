import { expect } from 'chai';
import { memoryLogger } from '../helpers.js';
import { PostgresStateBackend } from '../../src/state/postgres-state.js';
import { RedisStateBackend } from '../../src/state/redis-state.js';
import { emptyState, type ServiceState, StateInUseError, StateLockLostError } from '../../src/state/state-store.js';
import type { SpooledBatch } from '../../src/state/spool.js';
import { sql, TEST_DATABASE_URL, uniqueName } from '../support/postgres-db.js';
import { keysUnder, removeKeysUnder, testClient, TEST_REDIS_URL, uniquePrefix } from '../support/redis-server.js';

const batch = (ids: string[]): SpooledBatch => ({ rule: 'hot', datasource: 'feed', run_id: 'r1', matched_at: '2026-01-01T00:00:00.000Z', records: ids.map((id) => ({ id })) });

/** A state with something in every part: a watermark, dedup keys, two targets' spools. */
function sampleState(): ServiceState {
  const state = emptyState();
  state.watermarks.set('feed', { field: 'created_at', value: '2026-01-01T00:03:00Z', atValue: ['k5'] } as never);
  state.dedup.set('hot', new Map([['a', { seen: 1000, exported: 1000 }], ['b', { seen: 2000, exported: 1500 }]]));
  state.spool.set('out', [batch(['1']), batch(['2', '3'])]);
  state.spool.set('api/v1', [batch(['9'])]);
  return state;
}

function plain(state: ServiceState) {
  return {
    watermarks: Object.fromEntries(state.watermarks),
    dedup: Object.fromEntries([...state.dedup].map(([rule, table]) => [rule, [...table]])),
    spool: Object.fromEntries(state.spool),
  };
}

describe('state in PostgreSQL (real server)', function () {
  this.timeout(20_000);
  let table: string;
  const open: PostgresStateBackend[] = [];
  const backend = () => {
    const b = new PostgresStateBackend({ type: 'postgresql', url: TEST_DATABASE_URL, table }, '.');
    open.push(b);
    return b;
  };
  beforeEach(() => (table = uniqueName('tp_state')));
  afterEach(async () => {
    for (const b of open.splice(0)) await b.close();
    await sql(`DROP TABLE IF EXISTS "${table}"`);
  });

  it('commits every document in one transaction and loads them back after a restart; an emptied spool row is deleted', async () => {
    const first = backend();
    await first.open();
    expect(plain(await first.load())).to.deep.equal(plain(emptyState()));
    const state = sampleState();
    await first.commit(state, emptyState());
    const rows = await sql<{ name: string }>(`SELECT name FROM "${table}" ORDER BY name`);
    expect(rows.map((r) => r.name)).to.deep.equal(['dedup', 'spool/api/v1', 'spool/out', 'watermarks']);
    await first.close();

    const second = backend();
    await second.open();
    const loaded = await second.load();
    expect(plain(loaded)).to.deep.equal(plain(state));
    const next = { ...loaded, spool: new Map(loaded.spool) };
    next.spool.set('out', []);
    await second.commit(next, loaded);
    expect((await sql<{ name: string }>(`SELECT name FROM "${table}" ORDER BY name`)).map((r) => r.name)).to.deep.equal(['dedup', 'spool/api/v1', 'watermarks']);
  });

  it('a second process on the same table is refused, naming the holder; it may take it once the first closes', async () => {
    const first = backend();
    await first.open();
    const second = backend();
    const err = await second.open().then(() => undefined, (e: Error) => e);
    expect(err).to.be.instanceOf(StateInUseError);
    expect(err!.message).to.include(`table ${table}`).and.to.include(`threshold-processor pid ${process.pid}`).and.to.match(/server pid \d+/);
    await first.close();
    await second.open();
  });

  it('two processes starting at once on a table not yet created: one takes it, the other is told who holds it (no catalog error)', async () => {
    const tables: string[] = [];
    try {
      for (let i = 0; i < 10; i++) {
        const name = uniqueName('tp_state_race');
        tables.push(name);
        const [a, b] = [0, 1].map(() => new PostgresStateBackend({ type: 'postgresql', url: TEST_DATABASE_URL, table: name }, '.'));
        open.push(a!, b!);
        const outcomes = await Promise.allSettled([a!.open(), b!.open()]);
        const refused = outcomes.filter((o): o is PromiseRejectedResult => o.status === 'rejected').map((o) => o.reason as Error);
        expect(outcomes.filter((o) => o.status === 'fulfilled'), `round ${i}`).to.have.length(1);
        expect(refused, `round ${i}`).to.have.length(1);
        expect(refused[0], `round ${i}: ${refused[0]?.message}`).to.be.instanceOf(StateInUseError);
      }
    } finally {
      for (const b of open.splice(0)) await b.close();
      for (const name of tables) await sql(`DROP TABLE IF EXISTS "${name}"`);
    }
  });

  it('the same table named two ways (through the search path, and schema-qualified) is one lock', async () => {
    const first = backend();
    await first.open();
    const second = new PostgresStateBackend({ type: 'postgresql', url: TEST_DATABASE_URL, table: `public.${table}` }, '.');
    open.push(second);
    const err = await second.open().then(() => undefined, (e: Error) => e);
    expect(err).to.be.instanceOf(StateInUseError);
  });

  it('a lost session loses the lock: the commit fails clearly and writes nothing', async () => {
    const first = backend();
    await first.open();
    await first.commit(sampleState(), emptyState());
    const before = await sql(`SELECT name, body FROM "${table}" ORDER BY name`);
    await sql(`SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1`, [`threshold-processor pid ${process.pid} on ${(await import('node:os')).hostname()}`.slice(0, 63)]);
    await new Promise((r) => setTimeout(r, 200));
    const next = sampleState();
    next.watermarks.set('feed', { field: 'created_at', value: '2027-01-01T00:00:00Z' } as never);
    const err = await first.commit(next, sampleState()).then(() => undefined, (e: Error) => e);
    expect(err).to.be.instanceOf(StateLockLostError);
    expect(err!.message).to.match(/lost the session to PostgreSQL state table/);
    expect(await sql(`SELECT name, body FROM "${table}" ORDER BY name`)).to.deep.equal(before);
  });

  it('never puts the password in a message', async () => {
    const u = new URL(TEST_DATABASE_URL);
    u.password = 'pw-Sekrit-42';
    u.port = '1';
    const b = new PostgresStateBackend({ type: 'postgresql', url: u.toString(), table, connect_timeout: '2s' }, '.');
    const err = await b.open().then(() => undefined, (e: Error) => e);
    expect(err, 'a closed port must fail').to.be.instanceOf(Error);
    expect(err!.message).to.include('PostgreSQL state table').and.not.to.include('pw-Sekrit-42');
  });
});

describe('state in Redis (real server)', function () {
  this.timeout(20_000);
  let prefix: string;
  const redis = testClient();
  const open: RedisStateBackend[] = [];
  const backend = (extra: { lock_ttl?: string } = {}) => {
    const b = new RedisStateBackend({ type: 'redis', url: TEST_REDIS_URL, key_prefix: prefix, ...extra }, '.', memoryLogger().log);
    open.push(b);
    return b;
  };
  beforeEach(() => (prefix = uniquePrefix('state')));
  afterEach(async () => {
    for (const b of open.splice(0)) await b.close();
    await removeKeysUnder(redis, prefix);
  });
  after(() => redis.quit());

  it('commits the documents as keys and loads them back after a restart; an emptied spool key is deleted; close releases the lock', async () => {
    const first = backend();
    await first.open();
    const state = sampleState();
    await first.commit(state, emptyState());
    expect(await keysUnder(redis, prefix)).to.deep.equal(
      [`${prefix}doc:dedup`, `${prefix}doc:spool/api/v1`, `${prefix}doc:spool/out`, `${prefix}doc:watermarks`, `${prefix}docs`, `${prefix}lock`].sort(),
    );
    await first.close();
    expect(await redis.exists(`${prefix}lock`)).to.equal(0);

    const second = backend();
    await second.open();
    const loaded = await second.load();
    expect(plain(loaded)).to.deep.equal(plain(state));
    const next = { ...loaded, spool: new Map(loaded.spool) };
    next.spool.set('out', []);
    await second.commit(next, loaded);
    expect(await redis.exists(`${prefix}doc:spool/out`)).to.equal(0);
    expect((await redis.smembers(`${prefix}docs`)).sort()).to.deep.equal(['dedup', 'spool/api/v1', 'watermarks']);
  });

  it('a second process on the same prefix is refused, naming the holder', async () => {
    await backend().open();
    const err = await backend().open().then(() => undefined, (e: Error) => e);
    expect(err).to.be.instanceOf(StateInUseError);
    expect(err!.message).to.include(prefix).and.to.include(`threshold-processor pid ${process.pid}`);
  });

  it('keeps extending its lock; a process whose lock was taken writes nothing', async () => {
    const first = backend({ lock_ttl: '600ms' });
    await first.open();
    await first.commit(sampleState(), emptyState());
    await new Promise((r) => setTimeout(r, 1200));
    // Still held after twice its TTL: the timer extended it.
    expect(await redis.get(`${prefix}lock`)).to.include(`pid ${process.pid}`);
    const before = await redis.get(`${prefix}doc:watermarks`);
    await redis.set(`${prefix}lock`, 'another process', 'PX', 60_000);
    const next = sampleState();
    next.watermarks.set('feed', { field: 'created_at', value: '2027-01-01T00:00:00Z' } as never);
    const err = await first.commit(next, sampleState()).then(() => undefined, (e: Error) => e);
    expect(err).to.be.instanceOf(StateLockLostError);
    expect(await redis.get(`${prefix}doc:watermarks`)).to.equal(before);
  });
});
