// PostgreSQL datasource and export target, each against a floor measured in the same run on the
// same server and table:
// - reading: COPY (query) TO STDOUT into a line counter (what any client can read at best), and a
//   bare pg-cursor loop (the library the datasource is built on), against the CLI reading the same
//   query through a rule matching 0.1 %; row mode arrays against objects in the bare loop;
// - writing: multi-row INSERT against COPY FROM for the same rows;
// - end to end at 50 % matching, PostgreSQL -> rule -> PostgreSQL: the CLI against a naive
//   baseline written here (cursor, filter, one multi-row INSERT per batch).
// Rows: BENCH_PG_ROWS (default 1,000,000). Server: TEST_DATABASE_URL (default postgres://postgres@127.0.0.1:5432/test).
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

export const name = 'postgresql';

const URL_ = process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const ROWS = Number(process.env.BENCH_PG_ROWS ?? 1_000_000);
const BATCH = 2000;
const root = fileURLToPath(new URL('../../', import.meta.url));
const cli = join(root, 'dist', 'processor.js');
const rssHook = join(root, 'bench', 'lib', 'report-rss.mjs');

const { default: pg } = await import('pg');
const { default: Cursor } = await import('pg-cursor');
const copyStreams = await import('pg-copy-streams');

async function withClient(use) {
  const client = new pg.Client({ connectionString: URL_ });
  await client.connect();
  try {
    return await use(client);
  } finally {
    await client.end();
  }
}

async function timed(work) {
  const started = process.hrtime.bigint();
  const value = await work();
  return { seconds: Number(process.hrtime.bigint() - started) / 1e9, value };
}

/** Median of `runs` timings of `work`. */
async function median(runs, work) {
  const times = [];
  let value;
  for (let i = 0; i < runs; i++) {
    const r = await timed(work);
    times.push(r.seconds);
    value = r.value;
  }
  times.sort((a, b) => a - b);
  return { seconds: times[Math.floor(times.length / 2)], value };
}

const SOURCE_QUERY = (schema) => `SELECT id, sensor, value, status, created_at, payload FROM "${schema}".src`;

async function copyOutFloor(schema) {
  return withClient(async (client) => {
    let lines = 0;
    const counter = new Writable({
      write(chunk, _enc, done) {
        for (let i = chunk.indexOf(10); i !== -1; i = chunk.indexOf(10, i + 1)) lines++;
        done();
      },
    });
    await pipeline(client.query(copyStreams.to(`COPY (${SOURCE_QUERY(schema)}) TO STDOUT`)), counter);
    return lines;
  });
}

async function cursorLoop(schema, rowMode) {
  return withClient(async (client) => {
    const cursor = client.query(new Cursor(SOURCE_QUERY(schema), [], rowMode ? { rowMode } : {}));
    let rows = 0;
    for (;;) {
      const batch = await cursor.read(BATCH);
      rows += batch.length;
      if (batch.length < BATCH) break;
    }
    await cursor.close();
    return rows;
  });
}

function runCli(config, dir) {
  writeFileSync(join(dir, 'c.yaml'), config);
  const rssFile = join(dir, 'rss');
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', rssHook, cli, '--config', 'c.yaml', '--log-format', 'json'], {
      cwd: dir,
      env: { PATH: process.env.PATH, BENCH_RSS_FILE: rssFile },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (d) => (stderr += d));
    child.on('close', (code) => {
      if (code !== 0) return reject(new Error(`CLI exited ${code}: ${stderr.slice(-2000)}`));
      const summary = stderr.split('\n').filter((l) => l.includes('"run summary"')).map((l) => JSON.parse(l))[0];
      resolve({ summary, rssMiB: Number(readFileSync(rssFile, 'utf8')) / 1024 });
    });
    child.on('error', reject);
  });
}

/** A batch of rows as one INSERT ... VALUES ($1, ...), ($n, ...): the usual way a client writes without COPY. */
async function insertRows(client, table, columns, rows) {
  for (let from = 0; from < rows.length; from += 1000) {
    const slice = rows.slice(from, from + 1000);
    const values = [];
    const tuples = slice.map((row, r) => `(${row.map((v, c) => (values.push(v), `$${r * columns.length + c + 1}`)).join(', ')})`);
    await client.query(`INSERT INTO ${table} (${columns.join(', ')}) VALUES ${tuples.join(', ')}`, values);
  }
}

function copyText(rows) {
  const escape = (v) => (v === null ? '\\N' : String(v).replace(/[\\\n\r\t]/g, (c) => ({ '\\': '\\\\', '\n': '\\n', '\r': '\\r', '\t': '\\t' })[c]));
  return rows.map((row) => row.map(escape).join('\t')).join('\n') + '\n';
}

async function copyRows(client, table, columns, rows) {
  const stream = client.query(copyStreams.from(`COPY ${table} (${columns.join(', ')}) FROM STDIN`));
  for (let from = 0; from < rows.length; from += 5000) {
    if (!stream.write(copyText(rows.slice(from, from + 5000)))) await new Promise((r) => stream.once('drain', r));
  }
  stream.end();
  await new Promise((resolve, reject) => (stream.on('finish', resolve), stream.on('error', reject)));
}

/** The naive pipeline the issue names: a cursor, the rule in JavaScript, one multi-row INSERT per batch, one transaction. */
async function naivePipeline(schema, target) {
  return withClient(async (reader) =>
    withClient(async (writer) => {
      await writer.query('BEGIN');
      const cursor = reader.query(new Cursor(SOURCE_QUERY(schema), [], { rowMode: 'array' }));
      let written = 0;
      for (;;) {
        const batch = await cursor.read(BATCH);
        const matched = batch.filter((row) => Number(row[2]) > 500).map((row) => [row[0], row[1], row[2], row[3], row[4].toISOString(), JSON.stringify(row[5]), 'half', 'db', 'run', new Date().toISOString()]);
        if (matched.length > 0) await insertRows(writer, target, ['id', 'sensor', 'value', 'status', 'created_at', 'payload', '_rule', '_datasource', '_run_id', '_matched_at'], matched);
        written += matched.length;
        if (batch.length < BATCH) break;
      }
      await cursor.close();
      await writer.query('COMMIT');
      return written;
    }),
  );
}

export async function run({ progress }) {
  try {
    await withClient((c) => c.query('SELECT 1'));
  } catch (err) {
    return { rows: [{ case: 'skipped', note: `PostgreSQL not reachable at ${URL_.replace(/\/\/[^@]*@/, '//')}: ${err.message}` }] };
  }
  const schema = `tp_bench_${Date.now().toString(36)}`;
  const dir = mkdtempSync(join(tmpdir(), 'tp-bench-pg-'));
  const rows = [];
  const rate = (n, s) => Math.round(n / s);
  try {
    progress(`postgresql: ${ROWS.toLocaleString()} source rows`);
    await withClient(async (c) => {
      await c.query(`CREATE SCHEMA "${schema}"`);
      await c.query(`CREATE TABLE "${schema}".src (id int, sensor text, value numeric, status text, created_at timestamptz, payload jsonb)`);
      await c.query(
        `INSERT INTO "${schema}".src SELECT g, 'sensor-' || (g % 500), (g % 1000) + 0.25, CASE WHEN g % 7 = 0 THEN 'down' ELSE 'active' END,
                now() - (g % 3600) * interval '1 second', jsonb_build_object('level', g % 5) FROM generate_series(1, $1) g`,
        [ROWS],
      );
      await c.query(`VACUUM ANALYZE "${schema}".src`);
    });

    // ---- reading ------------------------------------------------------------------------
    progress('postgresql: read floors');
    const copyOut = await median(3, () => copyOutFloor(schema));
    const arrays = await median(3, () => cursorLoop(schema, 'array'));
    const objects = await median(3, () => cursorLoop(schema, undefined));
    rows.push({ case: 'floor: COPY (query) TO STDOUT into a line counter', figure: rate(ROWS, copyOut.seconds), unit: 'rows/s' });
    rows.push({ case: 'floor: bare pg-cursor loop, rowMode array', figure: rate(ROWS, arrays.seconds), unit: 'rows/s', floor: rate(ROWS, copyOut.seconds), ratio: copyOut.seconds / arrays.seconds });
    rows.push({ case: 'bare pg-cursor loop, row objects', figure: rate(ROWS, objects.seconds), unit: 'rows/s', floor: rate(ROWS, arrays.seconds), ratio: arrays.seconds / objects.seconds, note: 'vs. rowMode array' });

    progress('postgresql: CLI reading at 0.1 % matching');
    const readConfig = `datasources:
  db: { type: postgresql, url: "${URL_}", query: '${SOURCE_QUERY(schema)}' }
processing_rules:
  - { name: rare, threshold_field: value, threshold_type: greater_than, threshold_value: 999, export_target: out }
export_targets:
  out: { type: file, path: out.ndjson, mode: overwrite }
`;
    const read = await median(3, () => runCli(readConfig, dir));
    if (read.value.summary.rules.rare.read !== ROWS) throw new Error(`the CLI read ${read.value.summary.rules.rare.read} rows, not ${ROWS}`);
    rows.push({ case: 'processor CLI, 0.1 % matching, to a file (read through COPY)', figure: rate(ROWS, read.seconds), unit: 'rows/s', floor: rate(ROWS, copyOut.seconds), ratio: copyOut.seconds / read.seconds, note: `vs. COPY TO; ${(arrays.seconds / read.seconds).toFixed(2)}x the bare cursor; peak RSS ${read.value.rssMiB.toFixed(0)} MiB` });

    progress('postgresql: CLI reading a query with params (cursor path)');
    const cursorConfig = readConfig.replace(`query: '${SOURCE_QUERY(schema)}' }`, `query: '${SOURCE_QUERY(schema)} WHERE $1::int = 1', params: [1] }`);
    const readCursor = await median(3, () => runCli(cursorConfig, dir));
    if (readCursor.value.summary.rules.rare.read !== ROWS) throw new Error(`the CLI read ${readCursor.value.summary.rules.rare.read} rows, not ${ROWS}`);
    rows.push({ case: 'processor CLI, 0.1 %, query with params (read through the cursor)', figure: rate(ROWS, readCursor.seconds), unit: 'rows/s', floor: rate(ROWS, arrays.seconds), ratio: arrays.seconds / readCursor.seconds, note: `vs. the bare cursor loop; peak RSS ${readCursor.value.rssMiB.toFixed(0)} MiB` });

    // ---- writing ------------------------------------------------------------------------
    progress('postgresql: INSERT against COPY');
    const writeRows = Array.from({ length: Math.min(ROWS, 500_000) }, (_, i) => [i, `sensor-${i % 500}`, `${i % 1000}.25`, 'active', new Date(1_700_000_000_000 + i * 1000).toISOString(), `{"level": ${i % 5}}`]);
    const columns = ['id', 'sensor', 'value', 'status', 'created_at', 'payload'];
    const fresh = async (c, table) => {
      await c.query(`DROP TABLE IF EXISTS ${table}`);
      await c.query(`CREATE TABLE ${table} (id int, sensor text, value numeric, status text, created_at timestamptz, payload jsonb)`);
    };
    const insert = await median(3, () => withClient(async (c) => (await fresh(c, `"${schema}".w_insert`), await timed(() => insertRows(c, `"${schema}".w_insert`, columns, writeRows))).seconds));
    const copy = await median(3, () => withClient(async (c) => (await fresh(c, `"${schema}".w_copy`), await timed(() => copyRows(c, `"${schema}".w_copy`, columns, writeRows))).seconds));
    rows.push({ case: 'write: multi-row INSERT (1,000 rows a statement)', figure: rate(writeRows.length, insert.value), unit: 'rows/s' });
    rows.push({ case: 'write: COPY FROM STDIN', figure: rate(writeRows.length, copy.value), unit: 'rows/s', floor: rate(writeRows.length, insert.value), ratio: insert.value / copy.value, note: 'vs. multi-row INSERT' });

    // ---- end to end -----------------------------------------------------------------------
    progress('postgresql: PostgreSQL -> rule -> PostgreSQL at 50 %');
    const target = `"${schema}".dst`;
    const resetTarget = () =>
      withClient(async (c) => {
        await fresh(c, target);
        await c.query(`ALTER TABLE ${target} ADD COLUMN _rule text, ADD COLUMN _datasource text, ADD COLUMN _run_id text, ADD COLUMN _matched_at timestamptz`);
      });
    const naiveTimes = [];
    for (let i = 0; i < 3; i++) {
      await resetTarget();
      naiveTimes.push((await timed(() => naivePipeline(schema, target))).seconds);
    }
    naiveTimes.sort((a, b) => a - b);
    const naive = naiveTimes[1];
    const e2eConfig = `datasources:
  db: { type: postgresql, url: "${URL_}", query: '${SOURCE_QUERY(schema)}' }
processing_rules:
  - { name: half, threshold_field: value, threshold_type: greater_than, threshold_value: 500, export_target: dst }
export_targets:
  dst: { type: postgresql, url: "${URL_}", table: '${schema}.dst' }
`;
    const e2eTimes = [];
    let e2e;
    for (let i = 0; i < 3; i++) {
      await resetTarget();
      const r = await timed(() => runCli(e2eConfig, dir));
      e2eTimes.push(r.seconds);
      e2e = r.value;
      const landed = await withClient(async (c) => (await c.query(`SELECT count(*)::int AS n FROM ${target}`)).rows[0].n);
      if (landed !== e2e.summary.rules.half.exported) throw new Error(`the target holds ${landed} rows, the summary says ${e2e.summary.rules.half.exported}`);
    }
    e2eTimes.sort((a, b) => a - b);
    rows.push({ case: 'naive: cursor + rule + multi-row INSERT per batch, 50 %', figure: rate(ROWS, naive), unit: 'rows/s' });
    rows.push({ case: 'processor CLI, PostgreSQL -> rule -> PostgreSQL, 50 %', figure: rate(ROWS, e2eTimes[1]), unit: 'rows/s', floor: rate(ROWS, naive), ratio: naive / e2eTimes[1], note: `vs. naive; peak RSS ${e2e.rssMiB.toFixed(0)} MiB` });
    return { rows };
  } finally {
    await withClient((c) => c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`)).catch(() => {});
    rmSync(dir, { recursive: true, force: true });
  }
}
