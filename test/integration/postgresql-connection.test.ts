import { expect } from 'chai';
import path from 'node:path';
import { openPoolCount } from '../../connectors/postgres/postgres-connection.js';
import { postgresSink } from '../../connectors/postgres/postgres-sink.js';
import { postgresSource } from '../../connectors/postgres/postgres-source.js';
import type { CreateContext, Source } from '../../connectors/types.js';
import { loadConfig } from '../../src/config/load-config.js';
import { describeError, serializeError } from '../../src/errors.js';
import { checkConnections, checkTable } from '../../src/pipeline/check.js';
import type { RecordBatch } from '../../src/records/layout.js';
import { freshDirPerTest, memoryLogger, writeFiles } from '../helpers.js';
import { freshSchemaPerTest, sql, testServer, TEST_DATABASE_URL, uniqueName } from '../support/postgres-db.js';

function createContext(name = 'db'): CreateContext & { lines: () => Record<string, unknown>[] } {
  const { log, lines } = memoryLogger();
  return { name, configDir: process.cwd(), log, signal: new AbortController().signal, lines };
}

async function readAll(source: Source, signal = new AbortController().signal, batchSize = 100): Promise<RecordBatch[]> {
  const batches: RecordBatch[] = [];
  for await (const batch of source.read({ signal, batchSize, log: memoryLogger().log })) batches.push(batch);
  return batches;
}

async function failureOf(work: Promise<unknown>): Promise<unknown> {
  try {
    await work;
  } catch (err) {
    return err;
  }
  throw new Error('expected a failure');
}

describe('postgresql connection, pool and checks (real server)', function () {
  this.timeout(30_000);
  let schema: string;
  freshSchemaPerTest((s) => (schema = s));

  it('datasources and targets with the same connection share one pool; it ends when the last closes', async () => {
    // An application_name of its own keeps this test's connection apart from pools other tests left open.
    const app = uniqueName('tp_shared');
    const before = openPoolCount();
    const a = await postgresSource.create({ type: 'postgresql', url: TEST_DATABASE_URL, application_name: app, query: 'SELECT 1 AS v' }, createContext('a'));
    const b = await postgresSource.create({ type: 'postgresql', url: TEST_DATABASE_URL, application_name: app, query: 'SELECT 2 AS v' }, createContext('b'));
    const c = await postgresSink.create({ type: 'postgresql', url: TEST_DATABASE_URL, application_name: app, table: `${schema}.t`, create_table: true }, createContext('c'));
    expect(openPoolCount()).to.equal(before + 1);
    const other = await postgresSource.create({ type: 'postgresql', url: TEST_DATABASE_URL, query: 'SELECT 3', application_name: `${app}_other` }, createContext('d'));
    expect(openPoolCount()).to.equal(before + 2);
    expect((await readAll(a))[0]!.rows).to.deep.equal([[1]]);
    expect((await readAll(b))[0]!.rows).to.deep.equal([[2]]);
    await Promise.all([a.close!(), b.close!(), other.close!()]);
    expect(openPoolCount()).to.equal(before + 1);
    await c.close!();
    expect(openPoolCount()).to.equal(before);
  });

  it('a wide result comes in batches of at most 100,000 values, through COPY and through a cursor, every row in order', async () => {
    const columns = Array.from({ length: 300 }, (_, c) => `g * 1000 + ${c} AS c${c}`).join(', ');
    const query = `SELECT ${columns} FROM generate_series(1, 1000) AS g ORDER BY g`;
    const cases: [string, { query: string; params?: number[] }][] = [
      ['COPY', { query }],
      ['cursor', { query: query.replace('generate_series(1, 1000)', 'generate_series(1, $1::int)'), params: [1000] }],
    ];
    for (const [how, config] of cases) {
      const source = await postgresSource.create({ type: 'postgresql', url: TEST_DATABASE_URL, ...config }, createContext());
      try {
        const batches = await readAll(source, undefined, 2_000);
        expect(Math.max(...batches.map((b) => b.rows.length)), how).to.be.at.most(333);
        const rows = batches.flatMap((b) => b.rows as unknown[][]);
        expect(rows.map((r) => r[0]), how).to.deep.equal(Array.from({ length: 1000 }, (_, i) => (i + 1) * 1000));
        expect(rows[999]![299], how).to.equal(1000 * 1000 + 299);
      } finally {
        await source.close!();
      }
    }
    // Narrow results keep the batch size.
    const narrow = await postgresSource.create({ type: 'postgresql', url: TEST_DATABASE_URL, query: 'SELECT g FROM generate_series(1, 5000) AS g' }, createContext());
    expect((await readAll(narrow, undefined, 2_000)).map((b) => b.rows.length)).to.deep.equal([2_000, 2_000, 1_000]);
    await narrow.close!();
  });

  it('connects lazily: creating against a closed port succeeds, reading fails with ECONNREFUSED after its retries', async () => {
    const source = await postgresSource.create(
      { type: 'postgresql', host: '127.0.0.1', port: 1, database: 'x', query: 'SELECT 1', retry: { max_attempts: 3, initial_backoff: '5ms' } },
      createContext(),
    );
    const err = await failureOf(readAll(source));
    expect(describeError(err)).to.match(/reading datasource "db" \(postgresql, 127\.0\.0\.1:1\/x\): gave up after 3 attempts: .*ECONNREFUSED/);
    await source.close!();
  });

  it('reports the session under application_name, and statement_timeout stops a long query with the server\'s code', async () => {
    const name = uniqueName('tp_app');
    const source = await postgresSource.create(
      { type: 'postgresql', url: TEST_DATABASE_URL, application_name: name, statement_timeout: '200ms', query: 'SELECT application_name AS app, pg_sleep($1) FROM pg_stat_activity WHERE pid = pg_backend_pid()', params: [0] },
      createContext(),
    );
    expect((await readAll(source))[0]!.rows[0]).to.deep.equal([name, '']);
    const slow = await postgresSource.create(
      { type: 'postgresql', url: TEST_DATABASE_URL, statement_timeout: '200ms', query: 'SELECT pg_sleep(5)' },
      createContext('slow'),
    );
    const err = await failureOf(readAll(slow));
    expect(serializeError(err)).to.include({ code: '57014' });
    expect(describeError(err)).to.match(/datasource "slow".*canceling statement due to statement timeout/);
    await Promise.all([source.close!(), slow.close!()]);
  });

  it('never shows the password: not in errors, their causes, nor logs, whether given as a key or in the url', async () => {
    const secret = 'Sup3r-S3cret-pw';
    const role = uniqueName('tp_nobody');
    const { host, port, database } = testServer();
    for (const keys of [
      { url: `postgres://${role}:${secret}@${host}:${port}/${database}` },
      { host, port, database, username: role, password: secret },
    ]) {
      const ctx = createContext();
      const source = await postgresSource.create({ type: 'postgresql', query: 'SELECT 1', ...keys }, ctx);
      const err = await failureOf(readAll(source));
      const checkErr = await failureOf(source.check!({ signal: new AbortController().signal, log: ctx.log }));
      const shown = JSON.stringify([serializeError(err), serializeError(checkErr), describeError(err), ctx.lines()]);
      expect(shown).to.include(`role \\"${role}\\" does not exist`);
      expect(shown).to.not.include(secret);
      await source.close!();
    }
  });

  it('cancelling a read stops the query on the server promptly', async () => {
    const name = uniqueName('tp_cancel');
    const source = await postgresSource.create(
      { type: 'postgresql', url: TEST_DATABASE_URL, application_name: name, query: 'SELECT g, pg_sleep(0.001) FROM generate_series(1, 1000000) g' },
      createContext(),
    );
    const controller = new AbortController();
    let batches = 0;
    const started = Date.now();
    const err = await failureOf(
      (async () => {
        for await (const _ of source.read({ signal: controller.signal, batchSize: 10, log: memoryLogger().log })) {
          if (++batches === 2) controller.abort();
        }
        throw new Error('stopped without an error');
      })(),
    ).catch((e) => e);
    expect(Date.now() - started).to.be.lessThan(5000);
    expect(batches).to.equal(2);
    expect(String((err as { code?: string }).code ?? describeError(err))).to.match(/CANCELLED|stopped without an error/);
    // The session that ran it is gone (its connection was closed), not left running.
    for (let i = 0; i < 50; i++) {
      const left = await sql('SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND state = $2', [name, 'active']);
      if (left.length === 0) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(await sql('SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND state = $2', [name, 'active'])).to.deep.equal([]);
    await source.close!();
  });

  for (const [path, query, params] of [
    ['COPY', 'SELECT pg_sleep(30) AS slept', undefined],
    ['cursor', 'SELECT pg_sleep($1) AS slept', [30]],
  ] as const) {
    it(`cancelling before the first row (${path} path) stops a long query at once`, async () => {
      const name = uniqueName('tp_early');
      const source = await postgresSource.create(
        { type: 'postgresql', url: TEST_DATABASE_URL, application_name: name, query, ...(params ? { params: [...params] } : {}) },
        createContext('early'),
      );
      const controller = new AbortController();
      setTimeout(() => controller.abort(), 300);
      const started = Date.now();
      const err = await failureOf(readAll(source, controller.signal));
      expect(Date.now() - started).to.be.lessThan(3000);
      expect((err as { code?: string }).code, describeError(err)).to.equal('CANCELLED');
      for (let i = 0; i < 50 && (await sql('SELECT 1 FROM pg_stat_activity WHERE application_name = $1', [name])).length > 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
      }
      expect(await sql('SELECT 1 FROM pg_stat_activity WHERE application_name = $1', [name])).to.deep.equal([]);
      await source.close!();
    });
  }

  it('a session ended by the server mid-read fails the datasource with a connection error, not the process', async () => {
    const name = uniqueName('tp_killed');
    const source = await postgresSource.create(
      { type: 'postgresql', url: TEST_DATABASE_URL, application_name: name, query: 'SELECT g, pg_sleep(0.001) FROM generate_series(1, 100000) g' },
      createContext('killed'),
    );
    let batches = 0;
    const err = await failureOf(
      (async () => {
        for await (const _ of source.read({ signal: new AbortController().signal, batchSize: 100, log: memoryLogger().log })) {
          if (++batches === 1) await sql('SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = $1', [name]);
        }
      })(),
    );
    expect(batches).to.be.within(1, 10);
    expect(describeError(err)).to.match(/reading datasource "killed" \(postgresql, .*terminating connection due to administrator command \(SQLSTATE 57P01\)|reading datasource "killed".*Connection terminated/);
    await source.close!();
  });

  describe('--check', () => {
    let dir: string;
    freshDirPerTest((d) => (dir = d));

    it('reports each PostgreSQL datasource and target: ok with what it found, or FAILED with why, without the password', async () => {
      await sql(`CREATE TABLE "${schema}".ready (sensor text, value numeric)`);
      await sql(`CREATE TABLE "${schema}".keyed (a int, b text, v int, PRIMARY KEY (a, b))`);
      const { host, port, database } = testServer();
      writeFiles(dir, {
        'c.yaml': `datasources:
  good: { type: postgresql, url: ${TEST_DATABASE_URL}, query: "SELECT 1 AS v" }
  broken_sql: { type: postgresql, url: ${TEST_DATABASE_URL}, query: "SELECT v FROM ${schema}.no_such_table" }
  bad_role: { type: postgresql, host: ${host}, port: ${port}, database: ${database}, username: tp_no_role, password: "\${PW}", query: "SELECT 1" }
processing_rules:
  - { name: r, datasource: good, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: ready }
export_targets:
  ready: { type: postgresql, url: ${TEST_DATABASE_URL}, table: ${schema}.ready, columns: [sensor, value] }
  created: { type: postgresql, url: ${TEST_DATABASE_URL}, table: ${schema}.later, create_table: true }
  missing: { type: postgresql, url: ${TEST_DATABASE_URL}, table: ${schema}.absent }
  wrong_column: { type: postgresql, url: ${TEST_DATABASE_URL}, table: ${schema}.ready, columns: [sensor, nope] }
  upsert_no_index: { type: postgresql, url: ${TEST_DATABASE_URL}, table: ${schema}.ready, mode: upsert, conflict_columns: [sensor] }
  upsert_indexed: { type: postgresql, url: ${TEST_DATABASE_URL}, table: ${schema}.keyed, mode: upsert, conflict_columns: [b, a] }
`,
      });
      const config = await loadConfig(path.join(dir, 'c.yaml'), { env: { PW: 'check-pa55word' } });
      const results = await checkConnections(config, memoryLogger().log, new AbortController().signal);
      const byName = Object.fromEntries(results.map((r) => [r.name, r]));
      expect(byName.good).to.include({ ok: true, kind: 'datasource', type: 'postgresql' });
      expect(byName.good!.detail).to.match(/^connected to .* \(PostgreSQL \d+/);
      expect(byName.broken_sql).to.include({ ok: false });
      expect(byName.broken_sql!.detail).to.match(/relation ".*no_such_table" does not exist \(SQLSTATE 42P01\); at line 1, column 15/);
      expect(byName.bad_role).to.include({ ok: false });
      expect(byName.bad_role!.detail).to.match(/role "tp_no_role" does not exist/);
      expect(byName.ready).to.include({ ok: true, kind: 'target' });
      expect(byName.ready!.detail).to.match(/has 2 columns and takes INSERT/);
      expect(byName.created).to.include({ ok: true });
      expect(byName.created!.detail).to.match(/does not exist yet and will be created/);
      expect(byName.missing).to.include({ ok: false });
      expect(byName.missing!.detail).to.match(/"absent" does not exist; create it, or set create_table: true/);
      expect(byName.wrong_column).to.include({ ok: false });
      expect(byName.wrong_column!.detail).to.match(/has no column "nope"/);
      expect(byName.upsert_no_index).to.include({ ok: false });
      expect(byName.upsert_no_index!.detail).to.match(/has no unique index or primary key on exactly \(sensor\), which upsert needs/);
      expect(byName.upsert_indexed).to.include({ ok: true });
      expect(byName.upsert_indexed!.detail).to.match(/takes INSERT, UPDATE/);
      const table = checkTable(results);
      expect(table).to.match(/good\s+datasource\s+postgresql\s+ok/);
      expect(table).to.match(/missing\s+target\s+postgresql\s+FAILED/);
      expect(table).to.not.include('check-pa55word');
      expect(await sql(`SELECT to_regclass('"${schema}".later') AS t`)).to.deep.equal([{ t: null }]);
    });
  });
});
