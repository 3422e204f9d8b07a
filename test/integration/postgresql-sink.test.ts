import { expect } from 'chai';
import { postgresSink } from '../../connectors/postgres/postgres-sink.js';
import type { MatchBatch, Sink } from '../../connectors/types.js';
import { TargetQueue } from '../../src/delivery/target-queue.js';
import { describeError } from '../../src/errors.js';
import { OBJECT_LAYOUT } from '../../src/records/layout.js';
import { PostgresRowLayout } from '../../connectors/postgres/postgres-types.js';
import { drive, memoryLogger } from '../helpers.js';
import { freshSchemaPerTest, sql, TEST_DATABASE_URL, uniqueName, withClient } from '../support/postgres-db.js';

function batch(rule: string, ids: number[]): MatchBatch {
  return {
    rule,
    datasource: 'src',
    runId: 'run-1',
    matchedAt: '2026-11-24T12:00:00.000Z',
    layout: OBJECT_LAYOUT,
    rows: ids.map((id) => ({ id, tags: ['a', 'b,c', 'd"e'], doc: { n: id } })),
  };
}

/** One cycle of a sink: a write, then the commit. */
async function cycle(sink: Sink, records: MatchBatch): Promise<void> {
  const io = drive(sink);
  await io.write(records);
  await io.flush();
}

async function failureOf(work: Promise<unknown>): Promise<unknown> {
  try {
    await work;
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure');
}

/** Ends the server sessions of one application_name, as an administrator or a failover would. */
const terminate = (app: string) => sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [app]);

describe('postgresql export target against the real server', function () {
  this.timeout(30_000);
  let schema: string;
  freshSchemaPerTest((s) => (schema = s));

  const create = (app: string, extra: Record<string, unknown> = {}) =>
    postgresSink.create(
      { type: 'postgresql', url: TEST_DATABASE_URL, table: `${schema}.out`, create_table: true, application_name: app, include_metadata: false, ...extra },
      { name: 'out', configDir: process.cwd(), log: memoryLogger().log, signal: new AbortController().signal },
    );

  it('a connection lost mid-cycle fails the cycle for good: nothing of it is published, and the next cycle works', async () => {
    const app = uniqueName('tp_lost');
    const sink = await create(app);
    const io = drive(sink);
    await io.write(batch('r', [1, 2]));
    await terminate(app);
    const err = await failureOf(io.write(batch('r', [3])));
    expect(describeError(err)).to.match(/export target "out" \(postgresql, table .*the connection failed mid-cycle/);
    expect((err as { code: string; retryable: boolean }).code).to.equal('TRANSACTION_LOST');
    expect((err as { retryable: boolean }).retryable).to.equal(false);
    await failureOf(io.flush());
    await io.abort();
    expect(await sql(`SELECT to_regclass('"${schema}".out') AS t`)).to.deep.equal([{ t: null }]);
    // The next cycle starts a fresh transaction on a fresh connection.
    await io.write(batch('r', [4]));
    await io.flush();
    expect(await sql(`SELECT id FROM "${schema}".out`)).to.deep.equal([{ id: '4' }]);
    await sink.close!();
  });

  it('a pooled connection ended between cycles is replaced: the next cycle retries its first write and delivers', async () => {
    const app = uniqueName('tp_idle');
    const sink = await create(app);
    const io = drive(sink);
    await io.write(batch('r', [1]));
    await io.flush();
    await terminate(app);
    const counts = { exported: 0, failed: 0 };
    const queue = new TargetQueue('out', sink, { batchSize: 10, batchBytes: 1 << 20, lingerMs: 0, maxInFlight: 1, retry: { maxAttempts: 3, initialBackoffMs: 5, maxBackoffMs: 20 } }, { signal: new AbortController().signal, log: memoryLogger().log }, {
      exported: (_r, n) => (counts.exported += n),
      failed: (_r, n) => (counts.failed += n),
    });
    await queue.add(batch('r', [2, 3]));
    await queue.finish();
    expect(counts).to.deep.equal({ exported: 2, failed: 0 });
    expect((await sql<{ id: string }>(`SELECT id FROM "${schema}".out ORDER BY id`)).map((r) => r.id)).to.deep.equal(['1', '2', '3']);
    await sink.close!();
  });

  it('a deadlock mid-cycle is undone to the write\'s savepoint and retried: the cycle commits whole', async () => {
    await sql(`CREATE TABLE "${schema}".out (id int PRIMARY KEY, v int)`);
    await sql(`INSERT INTO "${schema}".out VALUES (1, 0), (5, 0)`);
    const sink = await create(uniqueName('tp_deadlock'), { create_table: false, mode: 'upsert', conflict_columns: ['id'], columns: ['id', 'v'] });
    const { log, lines } = memoryLogger();
    const counts = { exported: 0, failed: 0 };
    const queue = new TargetQueue('out', sink, { batchSize: 1, batchBytes: 1 << 20, lingerMs: 0, maxInFlight: 1, retry: { maxAttempts: 6, initialBackoffMs: 200, maxBackoffMs: 1000 } }, { signal: new AbortController().signal, log }, {
      exported: (_r, n) => (counts.exported += n),
      failed: (_r, n) => (counts.failed += n),
    });
    const rows = (id: number) => ({ ...batch('r', []), rows: [{ id, v: id * 10 }] });
    await withClient(async (other) => {
      // Another session locks row 1, the cycle locks row 5, then each waits for the other's row.
      await other.query('BEGIN');
      await other.query(`SET LOCAL lock_timeout = '4s'`);
      await other.query(`UPDATE "${schema}".out SET v = -1 WHERE id = 1`);
      await queue.add(rows(5));
      const blocked = queue.add(rows(1));
      await new Promise((r) => setTimeout(r, 100));
      const otherWaits = other.query(`UPDATE "${schema}".out SET v = -1 WHERE id = 5`).then(
        () => 'updated',
        (err: { code?: string }) => err.code,
      );
      await blocked;
      // The other session gives up (lock timeout, or chosen as the deadlock's victim) and rolls back; the cycle's retry then gets row 1.
      expect(await otherWaits).to.be.oneOf(['55P03', '40P01']);
      await other.query('ROLLBACK');
    });
    await queue.finish();
    expect(counts, JSON.stringify(lines().filter((l) => Number(l.level) >= 40).map((l) => [l.msg, (l.err as { message?: string })?.message]))).to.deep.equal({ exported: 2, failed: 0 });
    expect(await sql(`SELECT id, v FROM "${schema}".out ORDER BY id`)).to.deep.equal([
      { id: 1, v: 10 },
      { id: 5, v: 50 },
    ]);
    const retried = lines().filter((l) => String(l.msg).includes('trying again'));
    expect(retried.map((l) => (l.err as { code?: string }).code)).to.include('40P01');
    await sink.close!();
  });

  it('two processes creating the same new table at once: both cycles commit and every row lands', async () => {
    const sinks = await Promise.all([create(uniqueName('tp_first')), create(uniqueName('tp_second'))]);
    try {
      // Each cycle writes then commits; the second to create the table waits for the first to commit, then finds it.
      const outcomes = await Promise.allSettled(sinks.map((sink, i) => cycle(sink, batch('r', [i * 10 + 1, i * 10 + 2]))));
      expect(outcomes.map((o) => (o.status === 'rejected' ? describeError(o.reason) : 'committed'))).to.deep.equal(['committed', 'committed']);
      expect((await sql<{ id: string }>(`SELECT id FROM "${schema}".out ORDER BY id`)).map((r) => r.id)).to.deep.equal(['1', '2', '11', '12']);
    } finally {
      for (const sink of sinks) await sink.close!();
    }
  });

  it('two processes adding the same new column at once: both cycles commit and every value lands', async () => {
    await sql(`CREATE TABLE "${schema}".out (id bigint)`);
    const sinks = await Promise.all([create(uniqueName('tp_first')), create(uniqueName('tp_second'))]);
    try {
      const outcomes = await Promise.allSettled(sinks.map((sink, i) => cycle(sink, { ...batch('r', []), rows: [{ id: i + 1, level: `level ${i + 1}` }] })));
      expect(outcomes.map((o) => (o.status === 'rejected' ? describeError(o.reason) : 'committed'))).to.deep.equal(['committed', 'committed']);
      expect(await sql(`SELECT id::int, level FROM "${schema}".out ORDER BY id`)).to.deep.equal([
        { id: 1, level: 'level 1' },
        { id: 2, level: 'level 2' },
      ]);
    } finally {
      for (const sink of sinks) await sink.close!();
    }
  });

  it('a list goes into an array column as a PostgreSQL array, and into a jsonb column as JSON', async () => {
    await sql(`CREATE TABLE "${schema}".out (id int, tags text[], doc jsonb)`);
    const sink = await create(uniqueName('tp_arr'), { create_table: false });
    const io = drive(sink);
    await io.write(batch('r', [1]));
    await io.flush();
    expect(await sql(`SELECT id, tags, doc FROM "${schema}".out`)).to.deep.equal([{ id: 1, tags: ['a', 'b,c', 'd"e'], doc: { n: 1 } }]);
    await sink.close!();
  });

  it('upsert within one batch: the last record of a key wins, without the server refusing the batch', async () => {
    const sink = await create(uniqueName('tp_up'), { mode: 'upsert', conflict_columns: ['id'], columns: { id: 'id', n: 'doc.n' } });
    const io = drive(sink);
    const rows = [{ id: 1, doc: { n: 10 } }, { id: 1, doc: { n: 11 } }, { id: 2, doc: { n: 20 } }];
    await io.write({ ...batch('r', []), rows });
    await io.write({ ...batch('r', []), rows: [{ id: 2, doc: { n: 21 } }] });
    await io.flush();
    expect(await sql(`SELECT id::int, n::int FROM "${schema}".out ORDER BY id`)).to.deep.equal([
      { id: 1, n: 11 },
      { id: 2, n: 21 },
    ]);
    await sink.close!();
  });

  it('upsert: records whose key holds a null are each inserted (the unique index lets them all in), whatever the batching', async () => {
    await sql(`CREATE TABLE "${schema}".out (k int UNIQUE, v text)`);
    const sink = await create(uniqueName('tp_upnull'), { mode: 'upsert', conflict_columns: ['k'], create_table: false, columns: ['k', 'v'] });
    const io = drive(sink);
    await io.write({ ...batch('r', []), rows: [{ k: null, v: 'a' }, { k: null, v: 'b' }, { k: 1, v: 'c' }, { k: 1, v: 'd' }] });
    await io.flush();
    expect(await sql(`SELECT k, v FROM "${schema}".out ORDER BY v`)).to.deep.equal([
      { k: null, v: 'a' },
      { k: null, v: 'b' },
      { k: 1, v: 'd' },
    ]);
    await sink.close!();
  });

  it('a json field goes into a jsonb column as JSON: a JSON string stays a string, distinct from the object it spells', async () => {
    await sql(`CREATE TABLE "${schema}".out (id int, doc jsonb)`);
    const sink = await create(uniqueName('tp_jsonb'), { create_table: false });
    const io = drive(sink);
    const fields = [
      { name: 'id', type: 'integer', nullable: false },
      { name: 'doc', type: 'json', nullable: true },
    ] as const;
    const docs = ['just text', '{"k":1}', { k: 1 }, 42, true, null, [1, 'two']];
    // as the PostgreSQL source hands over a jsonb column: parsed values, described as json
    await io.write({ ...batch('r', []), layout: new PostgresRowLayout(fields), fields, rows: docs.map((doc, i) => [i, doc]) });
    await io.flush();
    const rows = await sql<{ doc: unknown; kind: string | null }>(`SELECT doc, jsonb_typeof(doc) AS kind FROM "${schema}".out ORDER BY id`);
    expect(rows.map((r) => r.doc)).to.deep.equal(docs);
    expect(rows.map((r) => r.kind)).to.deep.equal(['string', 'string', 'object', 'number', 'boolean', null, 'array']);
    await sink.close!();
  });

  it('check: an upsert target needs INSERT, UPDATE and SELECT, each asked on its own', async () => {
    const role = uniqueName('tp_writer');
    await sql(`CREATE TABLE "${schema}".out (id int UNIQUE, v text)`);
    await sql(`CREATE ROLE "${role}" LOGIN`);
    try {
      await sql(`GRANT USAGE ON SCHEMA "${schema}" TO "${role}"`);
      await sql(`GRANT INSERT, SELECT ON "${schema}".out TO "${role}"`);
      const url = new URL(TEST_DATABASE_URL);
      url.username = role;
      const sink = await create(uniqueName('tp_priv'), { url: url.toString(), mode: 'upsert', conflict_columns: ['id'], create_table: false, columns: ['id', 'v'] });
      const err = await failureOf(drive(sink).check()!);
      expect(describeError(err)).to.match(/the role may not update on table .*; grant UPDATE on it/);
      await sink.close!();
    } finally {
      await sql(`DROP OWNED BY "${role}"`);
      await sql(`DROP ROLE "${role}"`);
    }
  });

  it('a batch the table refuses (a CHECK): the cycle is rolled back whole, and that batch alone is handed to the spool as refused', async () => {
    await sql(`CREATE TABLE "${schema}".out (id int CHECK (id < 100))`);
    const sink = await create(uniqueName('tp_poison'), { create_table: false, columns: ['id'] });
    const spooled: { ids: unknown[]; refused: string | undefined }[] = [];
    const counts = { exported: 0, failed: 0 };
    const queue = new TargetQueue('out', sink, { batchSize: 2, batchBytes: 1 << 20, lingerMs: 0, maxInFlight: 1, retry: { maxAttempts: 2, initialBackoffMs: 5, maxBackoffMs: 20 } }, { signal: new AbortController().signal, log: memoryLogger().log }, {
      exported: (_r, n) => (counts.exported += n),
      failed: (_r, n) => (counts.failed += n),
      undelivered: (b, refused) => spooled.push({ ids: b.rows.map((r) => (r as { id: number }).id), refused }),
    });
    await queue.add({ ...batch('r', []), rows: [{ id: 1 }, { id: 2 }, { id: 500 }, { id: 3 }, { id: 4 }, { id: 5 }] });
    await queue.finish();
    expect(await sql(`SELECT id FROM "${schema}".out`)).to.deep.equal([]);
    expect(counts).to.deep.equal({ exported: 0, failed: 6 });
    expect(spooled.map((b) => b.ids)).to.deep.equal([[1, 2], [500, 3], [4, 5]]);
    expect(spooled.map((b) => b.refused === undefined)).to.deep.equal([true, false, true]);
    expect(spooled[1]!.refused).to.match(/violates check constraint/);
    await sink.close!();
  });

  it('a failure that is not the records\' fault (the table is missing) hands every batch back as it is', async () => {
    const sink = await create(uniqueName('tp_notfault'), { create_table: false, columns: ['id'] });
    const spooled: (string | undefined)[] = [];
    const queue = new TargetQueue('out', sink, { batchSize: 2, batchBytes: 1 << 20, lingerMs: 0, maxInFlight: 1, retry: { maxAttempts: 1, initialBackoffMs: 5, maxBackoffMs: 20 } }, { signal: new AbortController().signal, log: memoryLogger().log }, {
      exported: () => {},
      failed: () => {},
      undelivered: (_b, refused) => spooled.push(refused),
    });
    await queue.add({ ...batch('r', []), rows: [{ id: 1 }, { id: 2 }, { id: 3 }] });
    await queue.finish();
    expect(spooled).to.deep.equal([undefined, undefined]);
    await sink.close!();
  });

  it('upsert without a unique index on conflict_columns says so', async () => {
    await sql(`CREATE TABLE "${schema}".out (id int, tags jsonb, doc jsonb)`);
    const sink = await create(uniqueName('tp_noidx'), { mode: 'upsert', conflict_columns: ['id'], create_table: false });
    const err = await failureOf(drive(sink).write(batch('r', [1])));
    expect(describeError(err)).to.match(/no unique or exclusion constraint matching the ON CONFLICT specification \(SQLSTATE 42P10\)/);
    await drive(sink).abort();
    await sink.close!();
  });

  it('a value of the wrong type names the record, the column and what the server said', async () => {
    await sql(`CREATE TABLE "${schema}".out (id int, tags jsonb, doc jsonb, code varchar(3))`);
    const sink = await create(uniqueName('tp_type'), { create_table: false, columns: ['id', 'code'] });
    const io = drive(sink);
    const err = await failureOf(io.write({ ...batch('r', []), rows: [{ id: 1, code: 'ok' }, { id: 2, code: 'too long' }] }));
    expect(describeError(err)).to.match(/\(record 2 of the batch\): the server said: value too long for type character varying\(3\) \(SQLSTATE 22001\)/);
    expect((err as { details: Record<string, unknown> }).details.where).to.match(/column code/);
    await io.abort();
    await sink.close!();
  });
});
