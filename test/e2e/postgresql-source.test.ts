import { expect } from 'chai';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { freshDirPerTest, parseNdjson, runCli, runSummary, writeFiles, logLines } from '../helpers.js';
import { freshSchemaPerTest, sql, testServer, TEST_DATABASE_URL } from '../support/postgres-db.js';

const ndjson = (dir: string, file: string) => parseNdjson(readFileSync(path.join(dir, file), 'utf8'));

/** A `--import` that prints the process's peak RSS when it exits, so a test reads the CLI's own memory. */
const PEAK_RSS = `--import=data:text/javascript,${encodeURIComponent("process.on('exit', () => process.stderr.write('PEAK_RSS_KB ' + process.resourceUsage().maxRSS + '\\n'))")}`;

describe('postgresql datasource, through the CLI', function () {
  this.timeout(60_000);
  let dir: string;
  let schema: string;
  freshDirPerTest((d) => (dir = d));
  freshSchemaPerTest((s) => (schema = s));

  async function run(config: string, env: Record<string, string> = {}, args: string[] = []) {
    writeFiles(dir, { 'c.yaml': config, 'good.csv': 'id,v\n1,3\n2,8\n' });
    return runCli(['--config', 'c.yaml', '--log-format', 'json', ...args], { cwd: dir, env });
  }

  async function sourceTable(): Promise<void> {
    await sql(`CREATE TABLE "${schema}".readings (
      id int PRIMARY KEY, amount numeric, big bigint, label text, seen timestamptz, naive timestamp, payload jsonb, tags text[], nums int[], note text)`);
    await sql(
      `INSERT INTO "${schema}".readings VALUES
        (1, 12345678901234567890.123, 9007199254740993, 'over by a fraction', now() - interval '10 minutes', '2026-11-24 08:00:00', '{"level": 3, "site": {"name": "paris"}}', '{a,"b c"}', '{1,2}', NULL),
        (2, 12345678901234567890, 9007199254740992, 'exactly the threshold', now() - interval '10 minutes', '2026-11-24 08:00:00', '{"level": 3, "site": {"name": "paris"}}', '{}', '{3}', 'x'),
        (3, 12345678901234567890.5, 9007199254740993, 'too old', now() - interval '3 hours', '2026-11-24 08:00:00', '{"level": 3, "site": {"name": "paris"}}', NULL, NULL, NULL),
        (4, 12345678901234567891, 9007199254740993, 'wrong level', now() - interval '1 minute', '2026-11-24 08:00:00', '{"level": 1, "site": {"name": "paris"}}', NULL, NULL, NULL),
        (5, 2.5, 7, 'small', now(), '2026-11-24 08:00:00', '{"level": 3, "site": {"name": "lisbon"}}', NULL, NULL, NULL)`,
    );
  }

  it('incremental: the watermark is bound after params, so the server returns only what is new (ties settled by the pipeline)', async () => {
    await sql(`CREATE TABLE "${schema}".events (id int PRIMARY KEY, site text, at timestamptz, v int)`);
    await sql(`INSERT INTO "${schema}".events VALUES (1, 'paris', '2026-01-01T00:00:00Z', 50), (2, 'paris', '2026-01-01T00:01:00Z', 60), (3, 'lisbon', '2026-01-01T00:01:00Z', 70)`);
    const config = `datasources:
  db:
    type: postgresql
    url: ${TEST_DATABASE_URL}
    query: SELECT id, at, v FROM "${schema}".events WHERE site = $1 AND ($2::timestamptz IS NULL OR at >= $2) ORDER BY at, id
    params: [paris]
    incremental: { field: at }
processing_rules:
  - { name: hot, datasource: db, threshold_field: v, threshold_type: greater_than, threshold_value: 10, export_target: out }
export_targets:
  out: { type: file, path: out/hot.ndjson, mode: append, include_metadata: false }
`;
    const summary = (stderr: string) => logLines(stderr).find((l) => l.msg === 'run summary')!;
    const first = await run(config);
    expect(first.code, first.stderr).to.equal(0);
    // No watermark yet: $2 is NULL and every paris row comes back.
    expect(summary(first.stderr).datasources.db).to.include({ ok: true, records: 2 });
    await sql(`INSERT INTO "${schema}".events VALUES (4, 'paris', '2026-01-01T00:01:00Z', 80), (5, 'paris', '2026-01-01T00:02:00Z', 90), (6, 'paris', '2025-12-31T00:00:00Z', 99)`);
    const second = await run(config);
    expect(second.code, second.stderr).to.equal(0);
    // The server sent the rows at or after 00:01 (2, 4, 5), not 1 or the late 6; the pipeline skipped 2, already processed at the watermark.
    expect(summary(second.stderr).datasources.db).to.include({ ok: true, records: 3, skipped: 1 });
    expect(ndjson(dir, 'out/hot.ndjson').map((r) => r.id)).to.deep.equal([1, 2, 4, 5]);
  });

  it('incremental: a query referring past params and the watermark is a config error naming both', async () => {
    const result = await run(`datasources:
  db: { type: postgresql, url: ${TEST_DATABASE_URL}, query: "SELECT 1 AS v WHERE $1 = 'x' AND $3 IS NULL", params: [x], incremental: { field: v } }
processing_rules:
  - { name: r, datasource: db, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: out }
export_targets:
  out: { type: console }
`);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include('the query refers to $3 but params holds 1 value (and $2 is the incremental watermark)');
  });

  it('incremental: a $1 in a comment is not a parameter, so no watermark is bound and the query reads', async () => {
    await sql(`CREATE TABLE "${schema}".events (id int PRIMARY KEY, at timestamptz, v int)`);
    await sql(`INSERT INTO "${schema}".events VALUES (1, '2026-01-01T00:00:00Z', 50), (2, '2026-01-01T00:01:00Z', 60)`);
    const result = await run(`datasources:
  db:
    type: postgresql
    url: ${TEST_DATABASE_URL}
    query: |
      SELECT id, at, v FROM "${schema}".events -- since $1, once the watermark is pushed down
      /* nor $2 here /* nested */ either */ ORDER BY at, id
    incremental: { field: at }
processing_rules:
  - { name: hot, datasource: db, threshold_field: v, threshold_type: greater_than, threshold_value: 10, export_target: out }
export_targets:
  out: { type: file, path: out/hot.ndjson, include_metadata: false }
`);
    expect(result.code, result.stderr).to.equal(0);
    expect(runSummary(result.stderr).datasources.db).to.include({ ok: true, records: 2 });
    expect(ndjson(dir, 'out/hot.ndjson').map((r) => r.id)).to.deep.equal([1, 2]);
  });

  it('--validate takes a dollar-quoted string that mentions $2 and $3 as text, and the query runs', async () => {
    const config = `datasources:
  db: { type: postgresql, url: ${TEST_DATABASE_URL}, query: "SELECT 1 AS id, $$price in $2 or $3$$ AS note" }
processing_rules:
  - { name: r, datasource: db, threshold_field: id, threshold_type: greater_than, threshold_value: 0, export_target: out }
export_targets:
  out: { type: file, path: out.ndjson, include_metadata: false }
`;
    const validated = await run(config, {}, ['--validate']);
    expect(validated.code, validated.stderr).to.equal(0);
    const result = await run(config);
    expect(result.code, result.stderr).to.equal(0);
    expect(ndjson(dir, 'out.ndjson')).to.deep.equal([{ id: 1, note: 'price in $2 or $3' }]);
  });

  it('a value in params the query has no $n for fails at once with what the server said (08P01), not retried as a lost connection', async () => {
    const result = await run(`datasources:
  db: { type: postgresql, url: ${TEST_DATABASE_URL}, query: "SELECT 1 AS v", params: [paris] }
processing_rules:
  - { name: r, datasource: db, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: out }
export_targets:
  out: { type: console }
`);
    expect(result.code, result.stderr).to.equal(1);
    const lines = logLines(result.stderr);
    expect(lines.filter((l) => String(l.msg).includes('trying again')), result.stderr).to.deep.equal([]);
    const error = lines.find((l) => l.level === 'error' && l.datasource === 'db');
    expect(error?.err.message, result.stderr).to.match(/datasource "db" \(postgresql.*bind message supplies 1 parameters, but prepared statement "" requires 0 \(SQLSTATE 08P01\)/);
  });

  it('numeric, bigint, timestamptz, jsonb and arrays reach the rules as written, and land in a PostgreSQL target exactly', async () => {
    await sourceTable();
    const config = `datasources:
  db:
    type: postgresql
    url: ${TEST_DATABASE_URL}
    query: SELECT * FROM "${schema}".readings ORDER BY id
processing_rules:
  - name: exact
    datasource: db
    conditions:
      all:
        - { field: amount, operator: greater_than, value: "12345678901234567890" }
        - { field: big, operator: equals, value: "9007199254740993" }
        - { field: seen, operator: within, value: 1h }
        - { field: payload.level, operator: between, value: [2, 4] }
        - { field: payload.site.name, operator: equals, value: paris }
    export_targets: [file, table]
export_targets:
  file: { type: file, path: out.ndjson }
  table: { type: postgresql, url: ${TEST_DATABASE_URL}, table: ${schema}.matches, create_table: true }
`;
    const result = await run(config);
    expect(result.code, result.stderr).to.equal(0);
    const records = ndjson(dir, 'out.ndjson');
    // 2 is not above the threshold (equal as doubles, and as decimals); 3 is too old; 4 has the wrong level; 5 is too small.
    expect(records.map((r) => r.id)).to.deep.equal([1]);
    expect(records[0]).to.include({ amount: '12345678901234567890.123', big: '9007199254740993', label: 'over by a fraction', note: null });
    expect(records[0]!.naive).to.equal('2026-11-24T08:00:00.000Z');
    expect(records[0]!.payload).to.deep.equal({ level: 3, site: { name: 'paris' } });
    expect(records[0]!.tags).to.deep.equal(['a', 'b c']);
    expect(records[0]!.nums).to.deep.equal([1, 2]);

    const landed = await sql(`SELECT amount::text AS amount, big::text AS big, payload, naive, _rule FROM "${schema}".matches`);
    expect(landed).to.deep.equal([
      { amount: '12345678901234567890.123', big: '9007199254740993', payload: { level: 3, site: { name: 'paris' } }, naive: new Date('2026-11-24T08:00:00Z'), _rule: 'exact' },
    ]);
    const types = await sql<{ column_name: string; data_type: string }>(
      'SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position',
      [schema, 'matches'],
    );
    expect(Object.fromEntries(types.map((t) => [t.column_name, t.data_type]))).to.deep.equal({
      id: 'bigint',
      amount: 'numeric',
      big: 'numeric',
      label: 'text',
      seen: 'timestamp with time zone',
      naive: 'timestamp with time zone',
      payload: 'jsonb',
      tags: 'jsonb',
      nums: 'jsonb',
      note: 'text',
      _rule: 'text',
      _datasource: 'text',
      _run_id: 'text',
      _matched_at: 'timestamp with time zone',
    });
  });

  it('a wrong password: the datasource fails naming itself and what the server said (28P01), the password is never shown, the CSV datasource still delivers', async () => {
    const { startPgAuthServer } = await import('../support/pg-auth-server.js');
    const server = await startPgAuthServer();
    const password = 'wrong-pass-never-shown-6614';
    try {
      const result = await run(
        `datasources:
  db:
    type: postgresql
    host: 127.0.0.1
    port: ${server.port}
    database: shop
    username: alice
    password: "\${DB_PASSWORD}"
    query: SELECT 1 AS v
    retry: { max_attempts: 1 }
  good: { type: csv, path: good.csv }
processing_rules:
  - { name: from_db, datasource: db, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: out }
  - { name: from_csv, datasource: good, threshold_field: v, threshold_type: greater_than, threshold_value: 5, export_target: out }
export_targets:
  out: { type: file, path: "out/{rule}.ndjson" }
`,
        { DB_PASSWORD: password },
      );
      expect(result.code, result.stderr).to.equal(1);
      expect(server.passwords, 'the password went to the server').to.deep.equal([password]);
      const error = logLines(result.stderr).find((l) => l.level === 'error' && l.datasource === 'db');
      expect(error?.err.message).to.match(/datasource "db" \(postgresql, 127\.0\.0\.1:\d+\/shop as alice\)/);
      expect(error?.err.message).to.include('password authentication failed for user "alice"').and.include('SQLSTATE 28P01').and.include('check username and password');
      expect(result.stdout + result.stderr).not.to.include(password);
      expect(ndjson(dir, 'out/from_csv.ndjson').map((r) => r.id)).to.deep.equal(['2']);
    } finally {
      await server.stop();
    }
  });

  describe('TLS against a server with a certificate of its own', () => {
    let certDir: string;
    let server: Awaited<ReturnType<typeof import('../support/pg-auth-server.js').startPgAuthServer>>;
    before(async function () {
      const { spawnSync } = await import('node:child_process');
      const { mkdtempSync } = await import('node:fs');
      const { tmpdir } = await import('node:os');
      certDir = mkdtempSync(path.join(tmpdir(), 'tp-pg-tls-'));
      const make = (name: string) =>
        spawnSync('openssl', ['req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-keyout', `${name}-key.pem`, '-out', `${name}.pem`, '-days', '2', '-subj', '/CN=127.0.0.1', '-addext', 'subjectAltName=IP:127.0.0.1'], { cwd: certDir });
      for (const name of ['server', 'stranger']) {
        const made = make(name);
        if (made.status !== 0) throw new Error(`openssl could not make a certificate: ${made.stderr}`);
      }
      const { startPgAuthServer } = await import('../support/pg-auth-server.js');
      server = await startPgAuthServer({ tls: { key: readFileSync(path.join(certDir, 'server-key.pem'), 'utf8'), cert: readFileSync(path.join(certDir, 'server.pem'), 'utf8') } });
    });
    after(async () => {
      await server?.stop();
      const { rmSync } = await import('node:fs');
      if (certDir) rmSync(certDir, { recursive: true, force: true });
    });

    const tlsConfig = (ssl: string) => `datasources:
  db:
    type: postgresql
    host: 127.0.0.1
    port: ${server.port}
    database: shop
    username: alice
    password: "\${DB_PASSWORD}"
    ${ssl}
    query: SELECT 1 AS v
    retry: { max_attempts: 1 }
processing_rules:
  - { name: r, datasource: db, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: out }
export_targets:
  out: { type: console }
`;
    const dbError = (stderr: string) => logLines(stderr).find((l) => l.level === 'error' && l.datasource === 'db')?.err.message as string | undefined;

    it('ssl: verify with the CA that signed the certificate: the password goes over TLS (and is then refused by this server)', async () => {
      const before = server.passwords.length;
      const result = await run(tlsConfig(`ssl: verify\n    ssl_ca: ${path.join(certDir, 'server.pem')}`), { DB_PASSWORD: 'tls-pass-3391' });
      expect(result.code, result.stderr).to.equal(1);
      expect(server.overTls.slice(before), 'the password was sent over TLS').to.deep.equal([true]);
      expect(dbError(result.stderr)).to.include('SQLSTATE 28P01');
      expect(result.stderr).not.to.include('tls-pass-3391');
    });

    it('ssl: verify with another CA: the connection is refused before any password is sent, naming the datasource and the certificate problem', async () => {
      const before = server.passwords.length;
      const result = await run(tlsConfig(`ssl: verify\n    ssl_ca: ${path.join(certDir, 'stranger.pem')}`), { DB_PASSWORD: 'tls-pass-3391' });
      expect(result.code, result.stderr).to.equal(1);
      expect(server.passwords.length, 'no password was sent').to.equal(before);
      expect(dbError(result.stderr)).to.match(/datasource "db" \(postgresql, 127\.0\.0\.1:\d+\/shop as alice\)/).and.match(/certificate|self[- ]signed/i);
    });

    it('ssl: require encrypts without checking the certificate', async () => {
      const before = server.passwords.length;
      const result = await run(tlsConfig('ssl: require'), { DB_PASSWORD: 'tls-pass-3391' });
      expect(result.code, result.stderr).to.equal(1);
      expect(server.overTls.slice(before)).to.deep.equal([true]);
      expect(dbError(result.stderr)).to.include('SQLSTATE 28P01');
    });
  });

  it('binds params as values: an injection attempt is only a value to compare', async () => {
    await sql(`CREATE TABLE "${schema}".people (name text, age int)`);
    const hostile = `x'); DROP TABLE "${schema}".people; --`;
    await sql(`INSERT INTO "${schema}".people VALUES ($1, 40), ('alice', 30), ('bob', 50)`, [hostile]);
    const config = `datasources:
  db:
    type: postgresql
    url: ${TEST_DATABASE_URL}
    query: SELECT name, age FROM "${schema}".people WHERE name = $1 OR age > $2 ORDER BY name
    params: [${JSON.stringify(hostile)}, 45]
processing_rules:
  - { name: all, threshold_field: age, threshold_type: greater_than, threshold_value: 0, export_target: file }
export_targets:
  file: { type: file, path: out.ndjson }
`;
    const result = await run(config);
    expect(result.code, result.stderr).to.equal(0);
    expect(ndjson(dir, 'out.ndjson').map((r) => [r.name, r.age])).to.deep.equal([
      ['bob', 50],
      [hostile, 40],
    ]);
    expect(await sql(`SELECT count(*)::int AS n FROM "${schema}".people`)).to.deep.equal([{ n: 3 }]);
  });

  it('streams a 1,000,000-row query in batches with bounded memory, every row seen', async () => {
    const config = `datasources:
  db:
    type: postgresql
    url: ${TEST_DATABASE_URL}
    query: SELECT g AS id, g % 1000 AS bucket, md5(g::text) AS label FROM generate_series(1, 1000000) g
processing_rules:
  - { name: rare, threshold_field: bucket, threshold_type: equals, threshold_value: 7, export_target: file }
export_targets:
  file: { type: file, path: out.ndjson }
`;
    const result = await run(config, { NODE_OPTIONS: PEAK_RSS });
    expect(result.code, result.stderr).to.equal(0);
    const summary = logLines(result.stderr).find((l) => l.msg === 'run summary');
    expect(summary!.rules.rare).to.include({ read: 1_000_000, matched: 1000, exported: 1000 });
    expect(ndjson(dir, 'out.ndjson')).to.have.lengthOf(1000);
    const peakKb = Number(/PEAK_RSS_KB (\d+)/.exec(result.stderr)?.[1]);
    // Measured 103-132 MiB, and up to 155 MiB in loaded CI runs (when V8 collects depends on the
    // load); 1,000,000 rows held at once would take several times the bound.
    expect(peakKb, 'peak RSS in KiB').to.be.greaterThan(0).and.lessThan(192 * 1024);
  });

  const failures: [string, (s: string) => string, RegExp[]][] = [
    ['an unknown role', () => `host: ${testServer().host}\n    port: ${testServer().port}\n    database: ${testServer().database}\n    username: tp_no_such_role\n    password: "\${DB_PASSWORD}"`, [/role "tp_no_such_role" does not exist/, /SQLSTATE 28000/]],
    ['an unknown database', () => `host: ${testServer().host}\n    port: ${testServer().port}\n    database: tp_no_such_db\n    username: ${testServer().username}\n    password: "\${DB_PASSWORD}"`, [/database "tp_no_such_db" does not exist/, /SQLSTATE 3D000/, /check the database name/]],
    ['a closed port', () => `host: 127.0.0.1\n    port: 1\n    database: test\n    password: "\${DB_PASSWORD}"\n    retry: { max_attempts: 2, initial_backoff: 10ms }`, [/ECONNREFUSED/, /gave up after 2 attempts/]],
  ];
  for (const [label, connection, patterns] of failures) {
    it(`${label}: the datasource fails naming itself and what the server said; the other datasource runs; exit 1; no password shown`, async () => {
      const config = `datasources:
  db:
    type: postgresql
    ${connection(schema)}
    query: SELECT 1 AS v
  good: { type: csv, path: good.csv }
processing_rules:
  - { name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 5, export_target: file }
export_targets:
  file: { type: file, path: out.ndjson }
`;
      const result = await run(config, { DB_PASSWORD: 'pg-pa55word-never-shown' });
      expect(result.code, result.stderr).to.equal(1);
      expect(ndjson(dir, 'out.ndjson').map((r) => r.id)).to.deep.equal(['2']);
      const error = logLines(result.stderr).find((l) => l.level === 'error' && l.datasource === 'db');
      expect(error, result.stderr).to.not.equal(undefined);
      expect(error!.err.message).to.include('datasource "db" (postgresql');
      for (const pattern of patterns) expect(error!.err.message).to.match(pattern);
      expect(result.stderr).to.not.include('pg-pa55word-never-shown');
    });
  }

  it('a syntax error in the query names the datasource, the SQLSTATE and where in the query', async () => {
    const config = `datasources:
  db:
    type: postgresql
    url: ${TEST_DATABASE_URL}
    query: |
      SELECT id,
      FROM "${schema}".nothing
  good: { type: csv, path: good.csv }
processing_rules:
  - { name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 5, export_target: file }
export_targets:
  file: { type: file, path: out.ndjson }
`;
    const result = await run(config);
    expect(result.code).to.equal(1);
    expect(existsSync(path.join(dir, 'out.ndjson'))).to.equal(true);
    const error = logLines(result.stderr).find((l) => l.level === 'error' && l.datasource === 'db');
    expect(error!.err.message).to.match(/datasource "db" \(postgresql, .*\): the server said: syntax error at or near "FROM" \(SQLSTATE 42601\); at line 2, column 1 \(near "FROM /);
    expect(error!.err.code).to.equal('42601');
    expect(error!.err.details.position).to.be.a('number');
  });

  it('TLS: ssl: require against a server without TLS fails the datasource saying so; a missing ssl_ca names the file', async () => {
    const config = `datasources:
  tls: { type: postgresql, url: ${TEST_DATABASE_URL}, ssl: require, query: "SELECT 1 AS v" }
  ca: { type: postgresql, url: ${TEST_DATABASE_URL}, ssl: verify, ssl_ca: missing-ca.pem, query: "SELECT 1 AS v" }
  good: { type: csv, path: good.csv }
processing_rules:
  - { name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 5, export_target: file }
export_targets:
  file: { type: file, path: out.ndjson }
`;
    const result = await run(config);
    expect(result.code).to.equal(1);
    expect(ndjson(dir, 'out.ndjson').map((r) => r.id)).to.deep.equal(['2']);
    const errors = logLines(result.stderr).filter((l) => l.level === 'error');
    expect(errors.find((l) => l.datasource === 'tls')!.err.message).to.match(/datasource "tls" \(postgresql.*The server does not support SSL connections/);
    expect(errors.find((l) => l.datasource === 'ca')!.err.message).to.match(/reading ssl_ca .*missing-ca\.pem.*point ssl_ca at the PEM file/);
  });

  it('--validate refuses what the schema cannot: params missing for $n, ssl_ca without verify, upsert without conflict_columns, a bad table name', async () => {
    const config = `datasources:
  db: { type: postgresql, url: ${TEST_DATABASE_URL}, ssl_ca: ca.pem, query: "SELECT * FROM t WHERE a = $1 AND b = $2", params: [1] }
processing_rules:
  - { name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 5, export_targets: [up, bad] }
export_targets:
  up: { type: postgresql, url: ${TEST_DATABASE_URL}, table: t, mode: upsert }
  bad: { type: postgresql, url: ${TEST_DATABASE_URL}, table: 'a.b.c' }
`;
    const result = await run(config, {}, ['--validate']);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include('datasources.db.params: the query refers to $2 but params holds 1 value');
    expect(result.stderr).to.include('datasources.db.ssl_ca: ssl_ca is only used with ssl: verify');
    expect(result.stderr).to.include('export_targets.up.conflict_columns: mode: upsert needs conflict_columns');
    expect(result.stderr).to.match(/export_targets\.bad\.table: table "a\.b\.c" is not a table name/);
  });

  it('--validate refuses a table name longer than PostgreSQL\'s 63 bytes, saying it is the table name', async () => {
    const long = `alerts_${'x'.repeat(60)}`;
    const result = await run(`datasources:
  good: { type: csv, path: good.csv }
processing_rules:
  - { name: r, datasource: good, threshold_field: v, threshold_type: greater_than, threshold_value: 5, export_target: db }
export_targets:
  db: { type: postgresql, url: ${TEST_DATABASE_URL}, table: ${long}, create_table: true }
`, {}, ['--validate']);
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include(`export_targets.db.table: table "${long}": the table name is 67 bytes long, more than PostgreSQL's 63; choose a shorter table name`);
  });

  it('the older tool\'s keys (host, port, database, username, password) connect', async () => {
    const { host, port, database, username } = testServer();
    const config = `datasources:
  db: { type: postgresql, host: ${host}, port: ${port}, database: ${database}, username: ${username}, password: "\${DB_PASSWORD}", query: "SELECT 7 AS v" }
processing_rules:
  - { name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 5, export_target: file }
export_targets:
  file: { type: file, path: out.ndjson }
`;
    const result = await run(config, { DB_PASSWORD: 'whatever' });
    expect(result.code, result.stderr).to.equal(0);
    expect(ndjson(dir, 'out.ndjson').map((r) => r.v)).to.deep.equal([7]);
  });
});
