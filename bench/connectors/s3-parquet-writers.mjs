// The Parquet writers the S3 target could use, compared on the same typed records: correctness
// (column types, nulls and values as read back by hyparquet and by DuckDB's read_parquet) and
// speed (records/s encoding to memory, file size). docs/parquet-writers.md records a run.
//
// hyparquet-writer is the project's dependency; the others are the bench's own (bench/package.json).
// BENCH_PARQUET_ROWS sets the record count (default 200,000).
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createRequire } from 'node:module';
import { ensureBenchDeps } from '../lib/deps.mjs';

export const name = 's3-parquet-writers';

const ROWS = Number(process.env.BENCH_PARQUET_ROWS ?? 200_000);
const RUNS = Number(process.env.BENCH_PARQUET_RUNS ?? 3);
const BASE = Date.UTC(2026, 10, 24, 8);

/** Records as a database source gives them: integer, double, exact decimal as text, text, boolean, timestamp, JSON; every 7th all null. */
function makeRecords(count) {
  const records = new Array(count);
  for (let i = 0; i < count; i++) {
    records[i] =
      i % 7 === 3
        ? { id: i, value: null, amount: null, label: null, ok: null, at: null, tags: null }
        : {
            id: i,
            value: i * 0.25,
            amount: `${i}.0${i % 10}`,
            label: `sensor-${i % 500} é`,
            ok: i % 2 === 0,
            at: new Date(BASE + i * 1000),
            tags: { site: `s${i % 10}`, n: i % 3 },
          };
  }
  return records;
}

const COLUMNS = ['id', 'value', 'amount', 'label', 'ok', 'at', 'tags'];

const writers = {
  async 'hyparquet-writer'(records) {
    const { ByteWriter, ParquetWriter } = await import('hyparquet-writer');
    const out = new ByteWriter();
    const writer = new ParquetWriter({
      writer: out,
      codec: 'SNAPPY',
      schema: [
        { name: 'root', num_children: 7 },
        { name: 'id', type: 'INT64', repetition_type: 'OPTIONAL' },
        { name: 'value', type: 'DOUBLE', repetition_type: 'OPTIONAL' },
        { name: 'amount', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
        { name: 'label', type: 'BYTE_ARRAY', converted_type: 'UTF8', repetition_type: 'OPTIONAL' },
        { name: 'ok', type: 'BOOLEAN', repetition_type: 'OPTIONAL' },
        { name: 'at', type: 'INT64', converted_type: 'TIMESTAMP_MILLIS', logical_type: { type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MILLIS' }, repetition_type: 'OPTIONAL' },
        { name: 'tags', type: 'BYTE_ARRAY', converted_type: 'JSON', repetition_type: 'OPTIONAL' },
      ],
    });
    // Row groups of 50,000, as the S3 target writes them.
    for (let start = 0; start < records.length; start += 50_000) {
      const slice = records.slice(start, start + 50_000);
      writer.write({
        columnData: COLUMNS.map((c) => ({
          name: c,
          data: slice.map((r) => (c === 'id' ? BigInt(r.id) : c === 'at' && r.at ? BigInt(r.at.getTime()) : r[c])),
        })),
        rowGroupSize: slice.length,
      });
    }
    writer.finish();
    return Buffer.from(out.getBytes());
  },

  async 'parquetjs-lite'(records) {
    const parquet = bench.require('parquetjs-lite');
    return writeWithParquetjs(parquet, records, { rowGroupSize: 50_000 });
  },

  async '@dsnp/parquetjs'(records) {
    const parquet = bench.require('@dsnp/parquetjs');
    return writeWithParquetjs(parquet, records, { rowGroupSize: 50_000 });
  },

  async 'parquet-wasm (+ apache-arrow)'(records) {
    const arrow = bench.require('apache-arrow');
    const wasm = bench.require('parquet-wasm');
    const col = (c) => records.map((r) => r[c]);
    const table = new arrow.Table({
      id: arrow.vectorFromArray(records.map((r) => BigInt(r.id)), new arrow.Int64()),
      value: arrow.vectorFromArray(col('value'), new arrow.Float64()),
      amount: arrow.vectorFromArray(col('amount'), new arrow.Utf8()),
      label: arrow.vectorFromArray(col('label'), new arrow.Utf8()),
      ok: arrow.vectorFromArray(col('ok'), new arrow.Bool()),
      at: arrow.vectorFromArray(col('at'), new arrow.TimestampMillisecond('UTC')),
      tags: arrow.vectorFromArray(records.map((r) => (r.tags === null ? null : JSON.stringify(r.tags))), new arrow.Utf8()),
    });
    const ipc = arrow.tableToIPC(table, 'stream');
    const props = new wasm.WriterPropertiesBuilder().setCompression(wasm.Compression.SNAPPY).setMaxRowGroupSize(50_000).build();
    const bytes = wasm.writeParquet(wasm.Table.fromIPCStream(ipc), props);
    return Buffer.from(bytes);
  },
};

async function writeWithParquetjs(parquet, records, { rowGroupSize }) {
  const schema = new parquet.ParquetSchema({
    id: { type: 'INT64', optional: true, compression: 'SNAPPY' },
    value: { type: 'DOUBLE', optional: true, compression: 'SNAPPY' },
    amount: { type: 'UTF8', optional: true, compression: 'SNAPPY' },
    label: { type: 'UTF8', optional: true, compression: 'SNAPPY' },
    ok: { type: 'BOOLEAN', optional: true, compression: 'SNAPPY' },
    at: { type: 'TIMESTAMP_MILLIS', optional: true, compression: 'SNAPPY' },
    tags: { type: 'JSON', optional: true, compression: 'SNAPPY' },
  });
  const chunks = [];
  const sink = new Writable({
    write(chunk, _encoding, callback) {
      chunks.push(Buffer.from(chunk));
      callback();
    },
  });
  const writer = await parquet.ParquetWriter.openStream(schema, sink, { rowGroupSize });
  for (const r of records) {
    const row = {};
    for (const c of COLUMNS) if (r[c] !== null) row[c] = r[c];
    await writer.appendRow(row);
  }
  await writer.close();
  return Buffer.concat(chunks);
}

const bench = { require: createRequire(new URL('../package.json', import.meta.url)) };

/** What the file must hold, as a reader with types would give it back. */
function expectedRow(r) {
  return r.value === null
    ? { id: BigInt(r.id), value: null, amount: null, label: null, ok: null, at: null, tags: null }
    : { id: BigInt(r.id), value: r.value, amount: r.amount, label: r.label, ok: r.ok, at: r.at.getTime(), tags: JSON.stringify(r.tags) };
}

async function checkWithHyparquet(bytes, records) {
  const { parquetReadObjects, parquetMetadata } = await import('hyparquet');
  const file = bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length);
  const schema = parquetMetadata(file).schema.slice(1).map((e) => `${e.name}:${e.logical_type?.type ?? e.converted_type ?? e.type}${e.repetition_type === 'OPTIONAL' ? '?' : ''}`);
  const rows = await parquetReadObjects({ file });
  let wrong = 0;
  let firstWrong;
  for (let i = 0; i < records.length; i++) {
    const got = rows[i];
    const want = expectedRow(records[i]);
    const norm = {
      id: typeof got?.id === 'bigint' ? got.id : got?.id === null || got?.id === undefined ? null : BigInt(got.id),
      value: got?.value ?? null,
      amount: got?.amount ?? null,
      label: got?.label ?? null,
      ok: got?.ok ?? null,
      at: got?.at instanceof Date ? got.at.getTime() : typeof got?.at === 'bigint' ? Number(got.at) : got?.at ?? null,
      tags: got?.tags === null || got?.tags === undefined ? null : typeof got.tags === 'string' ? got.tags : JSON.stringify(got.tags),
    };
    if (JSON.stringify(norm, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v)) !== JSON.stringify(want, (_k, v) => (typeof v === 'bigint' ? `${v}n` : v))) {
      wrong++;
      firstWrong ??= { row: i, got: norm, want };
    }
  }
  return { schema: schema.join(' '), rows: rows.length, wrong, firstWrong };
}

async function checkWithDuckdb(bytes, records, dir, label) {
  const { DuckDBInstance } = await import('@duckdb/node-api');
  const file = join(dir, `${label.replace(/[^a-z0-9]/gi, '_')}.parquet`);
  writeFileSync(file, bytes);
  const instance = await DuckDBInstance.create(':memory:');
  const connection = await instance.connect();
  try {
    const types = (await connection.runAndReadAll(`DESCRIBE SELECT * FROM read_parquet('${file}')`)).getRows().map((r) => `${r[0]}:${r[1]}`);
    const stats = (
      await connection.runAndReadAll(
        `SELECT count(*), count("value"), sum("id")::VARCHAR, sum("value")::VARCHAR, count(*) FILTER (WHERE "ok"), min("at")::VARCHAR, max("at")::VARCHAR, ` +
          `count(*) FILTER (WHERE CAST("tags" AS VARCHAR) LIKE '%"site"%'), max("amount") FROM read_parquet('${file}')`,
      )
    ).getRows()[0];
    const nonNull = records.filter((r) => r.value !== null);
    const want = [
      records.length,
      nonNull.length,
      String(records.reduce((s, r) => s + r.id, 0)),
      String(nonNull.reduce((s, r) => s + r.value, 0)),
      nonNull.filter((r) => r.ok).length,
      new Date(nonNull.reduce((m, r) => Math.min(m, r.at.getTime()), Infinity)).toISOString().replace('T', ' ').replace('.000Z', '+00'),
      new Date(nonNull.reduce((m, r) => Math.max(m, r.at.getTime()), -Infinity)).toISOString().replace('T', ' ').replace('.000Z', '+00'),
      nonNull.length,
    ];
    const got = stats.slice(0, 8).map((v) => (typeof v === 'bigint' ? Number(v) : v));
    const mismatches = want.map((w, i) => (String(got[i]) === String(w) ? undefined : `${i}: ${got[i]} vs ${w}`)).filter(Boolean);
    return { types: types.join(' '), ok: mismatches.length === 0, mismatches };
  } catch (err) {
    return { types: '', ok: false, mismatches: [err.message] };
  } finally {
    connection.closeSync?.();
  }
}

export async function run({ progress }) {
  ensureBenchDeps(progress);
  const records = makeRecords(ROWS);
  const dir = mkdtempSync(join(tmpdir(), 'tp-parquet-writers-'));
  const rows = [];
  try {
    for (const [label, write] of Object.entries(writers)) {
      progress(`parquet writer: ${label}`);
      const times = [];
      let bytes;
      try {
        for (let run = 0; run < RUNS; run++) {
          const started = process.hrtime.bigint();
          bytes = await write(records);
          times.push(Number(process.hrtime.bigint() - started) / 1e9);
        }
      } catch (err) {
        rows.push({ case: label, figure: 0, unit: 'records/s', note: `failed: ${err.message}` });
        continue;
      }
      times.sort((a, b) => a - b);
      const seconds = times[Math.floor(times.length / 2)];
      const hy = await checkWithHyparquet(bytes, records).catch((err) => ({ wrong: -1, schema: '', firstWrong: err.message }));
      const duck = await checkWithDuckdb(bytes, records, dir, label);
      rows.push({
        case: label,
        figure: Math.round(ROWS / seconds),
        unit: 'records/s',
        note:
          `${(bytes.length / 1024 / 1024).toFixed(2)} MiB; hyparquet: ${hy.wrong === 0 ? 'all values equal' : `${hy.wrong} rows differ (${JSON.stringify(hy.firstWrong, (_k, v) => (typeof v === 'bigint' ? String(v) : v))})`}; schema ${hy.schema}; ` +
          `DuckDB: ${duck.ok ? 'aggregates equal' : `differs: ${duck.mismatches.join('; ')}`}; types ${duck.types}`,
      });
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
  const hyparquet = rows.find((r) => r.case === 'hyparquet-writer')?.figure;
  for (const row of rows) if (hyparquet && row.figure) row.ratio = row.figure / hyparquet;
  return { rows };
}
