import { expect } from 'chai';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { freshDirPerTest, parseNdjson, runCli, startCli, writeFiles, logLines } from '../helpers.js';
import { freshSchemaPerTest, sql, TEST_DATABASE_URL, uniqueName } from '../support/postgres-db.js';

describe('postgresql export target, through the CLI', function () {
  this.timeout(60_000);
  let dir: string;
  let schema: string;
  freshDirPerTest((d) => (dir = d));
  freshSchemaPerTest((s) => (schema = s));

  const SENSORS = 'sensor,value,status,created_at\ns1,1500.25,active,2026-11-24T08:00:00Z\ns2,20,active,2026-11-24T08:00:00Z\ns3,99999999999999999999.5,down,2026-11-24T09:30:00+01:00\n';

  async function run(config: string, files: Record<string, string> = {}) {
    writeFiles(dir, { 'c.yaml': config, 'sensors.csv': SENSORS, ...files });
    return runCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
  }

  const csvSource = `  sensors:
    type: csv
    path: sensors.csv
    columns: { value: number, created_at: timestamp }`;

  it('creates the table from the fields, metadata included, and lands the matches with their types', async () => {
    const result = await run(`datasources:
${csvSource}
processing_rules:
  - { name: high, threshold_field: value, threshold_type: greater_than, threshold_value: 1000, export_target: db }
export_targets:
  db: { type: postgresql, url: ${TEST_DATABASE_URL}, table: ${schema}.alerts, create_table: true }
`);
    expect(result.code, result.stderr).to.equal(0);
    const rows = await sql(`SELECT sensor, value, status, created_at, _rule, _datasource, _run_id IS NOT NULL AS has_run FROM "${schema}".alerts ORDER BY sensor`);
    expect(rows).to.deep.equal([
      { sensor: 's1', value: 1500.25, status: 'active', created_at: new Date('2026-11-24T08:00:00Z'), _rule: 'high', _datasource: 'sensors', has_run: true },
      // A number a double cannot hold goes in as its text, so nothing is rounded on the way.
      { sensor: 's3', value: 1e20, status: 'down', created_at: new Date('2026-11-24T08:30:00Z'), _rule: 'high', _datasource: 'sensors', has_run: true },
    ]);
    const types = await sql<{ column_name: string; data_type: string }>(
      'SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = $1 AND table_name = $2 ORDER BY ordinal_position',
      [schema, 'alerts'],
    );
    expect(types.map((t) => `${t.column_name} ${t.data_type}`)).to.deep.equal([
      'sensor text',
      'value double precision',
      'status text',
      'created_at timestamp with time zone',
      '_rule text',
      '_datasource text',
      '_run_id text',
      '_matched_at timestamp with time zone',
    ]);
  });

  it('upsert: running the same config twice leaves one row per key, updated', async () => {
    const config = `datasources:
${csvSource}
processing_rules:
  - { name: all, threshold_field: value, threshold_type: greater_than, threshold_value: 0, export_target: db, realert: 0s }
export_targets:
  db:
    type: postgresql
    url: ${TEST_DATABASE_URL}
    table: ${schema}.latest
    create_table: true
    mode: upsert
    conflict_columns: [sensor]
    columns: { sensor: sensor, value: value, run: _run_id }
`;
    const first = await run(config);
    expect(first.code, first.stderr).to.equal(0);
    const runs1 = await sql<{ run: string }>(`SELECT DISTINCT run FROM "${schema}".latest`);
    const second = await run(config);
    expect(second.code, second.stderr).to.equal(0);
    const rows = await sql<{ sensor: string; run: string }>(`SELECT sensor, run FROM "${schema}".latest ORDER BY sensor`);
    expect(rows.map((r) => r.sensor)).to.deep.equal(['s1', 's2', 's3']);
    expect(new Set(rows.map((r) => r.run)).size).to.equal(1);
    expect(rows[0]!.run).to.not.equal(runs1[0]!.run);
  });

  it('atomic: a record that breaks a constraint in the second write leaves the table as it was, naming table, constraint and record', async () => {
    await sql(`CREATE TABLE "${schema}".checked (sensor text, value numeric CONSTRAINT value_is_small CHECK (value < 100000))`);
    await sql(`INSERT INTO "${schema}".checked VALUES ('before', 1)`);
    const result = await run(`datasources:
${csvSource}
processing_rules:
  - { name: all, threshold_field: value, threshold_type: greater_than, threshold_value: 0, export_targets: [db, file] }
export_targets:
  db: { type: postgresql, url: ${TEST_DATABASE_URL}, table: ${schema}.checked, columns: [sensor, value], batch_size: 2, linger: 0s }
  file: { type: file, path: out.ndjson }
`);
    expect(result.code).to.equal(1);
    expect(await sql(`SELECT sensor FROM "${schema}".checked`)).to.deep.equal([{ sensor: 'before' }]);
    // The other target of the same rule still delivered.
    expect(parseNdjson(readFileSync(path.join(dir, 'out.ndjson'), 'utf8'))).to.have.lengthOf(3);
    const error = logLines(result.stderr).find((l) => l.level === 'error' && l.target === 'db');
    expect(error!.err.message).to.include('export target "db" (postgresql, table');
    expect(error!.err.message).to.include('(record 1 of the batch)');
    expect(error!.err.message).to.include('value_is_small');
    expect(error!.err.code).to.equal('23514');
    expect(error!.err.details).to.include({ table: 'checked', constraint: 'value_is_small' });
    const summary = logLines(result.stderr).find((l) => l.msg === 'run summary');
    expect(summary!.rules.all).to.include({ matched: 3, exported: 3, failed: 3 });
  });

  it('hostile identifiers become columns of that name; hostile, huge and unicode values arrive intact', async () => {
    await sql(`CREATE TABLE "${schema}".x (keep int)`);
    const big = 'é'.repeat(512 * 1024) + '✓';
    const hostileHeader = '"value""; DROP TABLE x; --"';
    const result = await run(
      `datasources:
  odd: { type: csv, path: odd.csv }
processing_rules:
  - { name: all, threshold_field: id, threshold_type: greater_than, threshold_value: 0, export_target: db }
export_targets:
  db: { type: postgresql, url: ${TEST_DATABASE_URL}, table: '"${schema}"."Odd.Table"', create_table: true, include_metadata: false }
`,
      { 'odd.csv': `id,${hostileHeader},Mixed Case\n1,"it's \\ a\ttab\nand ""quotes""",日本\n2,${big},\n` },
    );
    expect(result.code, result.stderr).to.equal(0);
    const rows = await sql(`SELECT * FROM "${schema}"."Odd.Table" ORDER BY id`);
    expect(rows).to.deep.equal([
      { id: '1', 'value"; DROP TABLE x; --': `it's \\ a\ttab\nand "quotes"`, 'Mixed Case': '日本' },
      { id: '2', 'value"; DROP TABLE x; --': big, 'Mixed Case': null },
    ]);
    expect(await sql(`SELECT to_regclass('"${schema}".x') IS NOT NULL AS still_there`)).to.deep.equal([{ still_there: true }]);
  });

  it('Ctrl-C in the middle of a cycle: the open transaction is rolled back, the table stays as it was, exit 130', async () => {
    await sql(`CREATE TABLE "${schema}".events (id int, v int)`);
    await sql(`INSERT INTO "${schema}".events VALUES (0, 0)`);
    const app = uniqueName('tp_sigint');
    writeFiles(dir, {
      'c.yaml': `datasources:
  slow: { type: postgresql, url: ${TEST_DATABASE_URL}, query: "SELECT g AS id, g AS v, pg_sleep(0.001) FROM generate_series(1, 100000) g" }
processing_rules:
  - { name: all, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: db }
export_targets:
  db: { type: postgresql, url: ${TEST_DATABASE_URL}, table: ${schema}.events, columns: [id, v], application_name: ${app}, batch_size: 50, linger: 0s }
settings: { batch_size: 100 }
`,
    });
    const cli = startCli(['--config', 'c.yaml', '--log-format', 'json'], { cwd: dir });
    // Wait until the target's transaction holds written rows, then interrupt.
    for (let i = 0; i < 100; i++) {
      const open = await sql(`SELECT 1 FROM pg_stat_activity WHERE application_name = $1 AND xact_start IS NOT NULL`, [app]);
      if (open.length > 0) break;
      await new Promise((r) => setTimeout(r, 50));
    }
    await new Promise((r) => setTimeout(r, 200));
    cli.child.kill('SIGINT');
    const result = await cli.done;
    expect(result.code, result.stderr).to.equal(130);
    expect(await sql(`SELECT id, v FROM "${schema}".events`)).to.deep.equal([{ id: 0, v: 0 }]);
    const summary = logLines(result.stderr).find((l) => l.msg === 'run summary');
    expect(summary!.rules.all.exported).to.equal(0);
    expect(summary!.rules.all.failed).to.be.greaterThan(0);
  });

  it('four datasources and a target on one small pool: none starves waiting for a connection another holds', async () => {
    const connection = `url: ${TEST_DATABASE_URL}, pool_size: 2, connect_timeout: 2s`;
    const sources = ['a', 'b', 'c', 'd'].map((n) => `  ${n}: { type: postgresql, ${connection}, query: "SELECT g AS v FROM generate_series(1, 20000) g" }`).join('\n');
    const result = await run(`datasources:
${sources}
processing_rules:
  - { name: all, threshold_field: v, threshold_type: greater_than, threshold_value: 0, export_target: db }
export_targets:
  db: { type: postgresql, ${connection}, table: ${schema}.many, create_table: true, batch_size: 100, linger: 0s }
settings: { concurrency: 4 }
`);
    expect(result.code, result.stderr).to.equal(0);
    expect(await sql(`SELECT count(*)::int AS n FROM "${schema}".many`)).to.deep.equal([{ n: 80000 }]);
  });

  it('a missing table without create_table fails the target with what to do; the other target of the rule delivers', async () => {
    const result = await run(`datasources:
${csvSource}
processing_rules:
  - { name: all, threshold_field: value, threshold_type: greater_than, threshold_value: 0, export_targets: [db, file] }
export_targets:
  db: { type: postgresql, url: ${TEST_DATABASE_URL}, table: ${schema}.missing }
  file: { type: file, path: out.ndjson }
`);
    expect(result.code).to.equal(1);
    expect(parseNdjson(readFileSync(path.join(dir, 'out.ndjson'), 'utf8'))).to.have.lengthOf(3);
    const error = logLines(result.stderr).find((l) => l.level === 'error' && l.target === 'db');
    expect(error!.err.message).to.match(/^writing 3 records of rule "all" to export target "db" \(postgresql, table "tp_test_[a-z0-9_]+"\."missing" on .*\): table "tp_test_[a-z0-9_]+"\."missing" does not exist; create it, or set create_table: true/);
  });
});
