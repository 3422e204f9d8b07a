// The S3 target against a local S3 server (s3rver, in this process) with the target itself in
// a child process, so that the server and the target do not share one event loop. Figures are
// ratios against floors measured in the same run:
//   - Parquet: records/s, and the time against a bare PutObject of the same bytes (the floor:
//     what moving the finished object to this server costs, with nothing to encode);
//   - NDJSON: records/s against the file target's NDJSON path on the same records, and the time
//     against a bare multipart upload of the same bytes to the same server (what the server
//     alone costs), alternated round by round;
//   - the same NDJSON comparison through the whole CLI (a CSV read, every row matched and
//     exported), to S3 and to the file target, as a user's run sees it;
//   - peak RSS of a 5,000,000-record export (Parquet and NDJSON), in its own child.
// BENCH_S3_ROWS (default 1,000,000) and BENCH_S3_BIG_ROWS (default 5,000,000) set the sizes;
// BENCH_S3_ROW_GROUP sets the Parquet row_group_size, BENCH_S3_PART_MIB the part_size_mib; BENCH_S3_NODE_FLAGS passes flags to the target's node
// (e.g. --max-old-space-size=64, to see what a heap limit does to peak RSS).
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { ensureDataset } from '../generate.mjs';

export const name = 's3';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const DATA_DIR = join(ROOT, 'bench', 'data');
const dist = (file) => pathToFileURL(join(ROOT, 'dist', file)).href;
const ROWS = Number(process.env.BENCH_S3_ROWS ?? 1_000_000);
const BIG_ROWS = Number(process.env.BENCH_S3_BIG_ROWS ?? 5_000_000);
const RUNS = Number(process.env.BENCH_S3_RUNS ?? 5);
const BATCH = 10_000;
const CREDENTIALS = { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: 'S3RVER', AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED: 'true' };

// ---- the child: one measured export --------------------------------------------------------

/** Batches of sensor rows as the CSV source hands them over (arrays of text, typed columns). */
async function batchPool() {
  const { ColumnLayout } = await import(dist('src/records/layout.js'));
  const layout = new ColumnLayout(['id', 'sensor', 'value', 'status', 'created_at'], { value: 'number', created_at: 'timestamp' });
  const base = Date.UTC(2026, 10, 24, 8);
  const statuses = ['active', 'offline', 'maintenance', 'active'];
  const pool = [];
  for (let b = 0; b < 5; b++) {
    const rows = [];
    for (let i = 0; i < BATCH; i++) {
      const n = b * BATCH + i;
      rows.push([String(n), `sensor-${n % 1000}`, (n % 5000) + '.' + (n % 100), statuses[n % 4], new Date(base + n * 1000).toISOString()]);
    }
    pool.push({ rule: 'high', datasource: 'sensors', runId: '20261124T080000Z-bench', matchedAt: '2026-11-24T08:00:00.000Z', layout, rows });
  }
  return pool;
}

async function child({ mode, rows, endpoint, bucket, format, dir, multipart }) {
  const pool = await batchPool();
  const { deliveryBatch } = await import(dist('src/delivery/target-queue.js'));
  const { pino } = await import('pino');
  const log = pino({ level: 'warn' });
  const ctx = { signal: new AbortController().signal, log };
  const createCtx = { name: 'bench', configDir: dir, log, signal: ctx.signal };
  let sink;
  if (mode === 's3') {
    const { s3Sink } = await import(dist('connectors/s3/s3-sink.js'));
    sink = await s3Sink.create({ type: 's3', bucket, endpoint, force_path_style: true, format, key: `${format}/{rule}/{run_id}-{part}.{ext}`, ...(process.env.BENCH_S3_ROW_GROUP ? { row_group_size: Number(process.env.BENCH_S3_ROW_GROUP) } : {}), ...(process.env.BENCH_S3_PART_MIB ? { part_size_mib: Number(process.env.BENCH_S3_PART_MIB) } : {}) }, createCtx);
  } else if (mode === 'file') {
    const { fileSink } = await import(dist('connectors/file/file-sink.js'));
    sink = await fileSink.create({ type: 'file', path: `out/{rule}.${format}`, mode: 'overwrite' }, createCtx);
  }
  const peaks = {};
  const sampler = setInterval(() => {
    for (const [k, v] of Object.entries(process.memoryUsage())) peaks[k] = Math.max(peaks[k] ?? 0, Math.round(v / 1048576));
  }, Number(process.env.BENCH_S3_SAMPLE_MS ?? 50));
  sampler.unref();
  const started = process.hrtime.bigint();
  const cpuStarted = process.cpuUsage();
  if (mode === 'floor') {
    // The floor: the bytes of the object the Parquet case produced, uploaded as they are.
    const { S3Client, GetObjectCommand, PutObjectCommand, ListObjectsV2Command } = await import('@aws-sdk/client-s3');
    const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, requestChecksumCalculation: 'WHEN_REQUIRED', responseChecksumValidation: 'WHEN_REQUIRED' });
    const listed = await client.send(new ListObjectsV2Command({ Bucket: bucket, Prefix: `${format}/` }));
    listed.Contents.sort((a, b) => b.LastModified - a.LastModified);
    const key = listed.Contents[0].Key;
    const body = Buffer.from(await (await client.send(new GetObjectCommand({ Bucket: bucket, Key: key }))).Body.transformToByteArray());
    const t0 = process.hrtime.bigint();
    let completeSeconds = 0;
    let copySeconds = 0;
    if (multipart) {
      // What the target's upload path costs this server with nothing to encode: the same parts
      // (8 MiB, one in flight), the completion, and the copy that sets the object's metadata.
      const { CreateMultipartUploadCommand, UploadPartCommand, CompleteMultipartUploadCommand, CopyObjectCommand } = await import('@aws-sdk/client-s3');
      const Key = `floor-multipart/${key}`;
      const { UploadId } = await client.send(new CreateMultipartUploadCommand({ Bucket: bucket, Key }));
      const parts = [];
      const PART = 8 * 1024 * 1024;
      for (let offset = 0, n = 1; offset < body.length; offset += PART, n++) {
        const { ETag } = await client.send(new UploadPartCommand({ Bucket: bucket, Key, UploadId, PartNumber: n, Body: body.subarray(offset, offset + PART) }));
        parts.push({ PartNumber: n, ETag });
      }
      const t1 = process.hrtime.bigint();
      await client.send(new CompleteMultipartUploadCommand({ Bucket: bucket, Key, UploadId, MultipartUpload: { Parts: parts } }));
      copySeconds = process.hrtime.bigint();
      await client.send(new CopyObjectCommand({ Bucket: bucket, Key, CopySource: `${bucket}/${Key}`, MetadataDirective: 'REPLACE', Metadata: { records: '0' } }));
      completeSeconds = Number(process.hrtime.bigint() - t1) / 1e9;
      copySeconds = Number(process.hrtime.bigint() - copySeconds) / 1e9;
    } else {
      await client.send(new PutObjectCommand({ Bucket: bucket, Key: `floor/${key}`, Body: body }));
    }
    const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
    process.stdout.write(JSON.stringify({ seconds, flushSeconds: completeSeconds, copySeconds, bytes: body.length, maxRssMiB: process.resourceUsage().maxRSS / 1024 }) + '\n');
    return;
  }
  for (let written = 0, b = 0; written < rows; written += BATCH, b++) {
    const batch = pool[b % pool.length];
    await sink.write(deliveryBatch('bench', [written + BATCH > rows ? { ...batch, rows: batch.rows.slice(0, rows - written) } : batch]), ctx);
  }
  const flushing = process.hrtime.bigint();
  await sink.flush(ctx);
  const flushSeconds = Number(process.hrtime.bigint() - flushing) / 1e9;
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  await sink.close?.();
  const cpu = process.cpuUsage(cpuStarted);
  const cpuSeconds = (cpu.user + cpu.system) / 1e6;
  process.stdout.write(JSON.stringify({ seconds, flushSeconds, cpuSeconds, maxRssMiB: process.resourceUsage().maxRSS / 1024, peaks }) + '\n');
}

if (process.argv[2] === '--child') {
  await child(JSON.parse(process.argv[3]));
}

// ---- the parent: the server, the cases, the ratios -----------------------------------------

function runChild(params) {
  return new Promise((resolve, reject) => {
    const flags = process.env.BENCH_S3_NODE_FLAGS ? process.env.BENCH_S3_NODE_FLAGS.split(' ') : [];
    const proc = spawn(process.execPath, [...flags, fileURLToPath(import.meta.url), '--child', JSON.stringify(params)], {
      cwd: ROOT,
      env: { ...process.env, ...CREDENTIALS },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let out = '';
    proc.stdout.on('data', (d) => (out += d));
    proc.on('error', reject);
    proc.on('close', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`${params.mode} child exited ${code}`))));
  });
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** A config reading the CSV, matching every row, exporting to S3 (NDJSON) or to the file target. */
function cliConfig(dir, csv, target, endpoint, bucket) {
  const out =
    target === 's3'
      ? { type: 's3', bucket, endpoint, force_path_style: true, format: 'ndjson', key: 'cli/{rule}/{run_id}.{ext}' }
      : { type: 'file', path: join(dir, 'cli-out', '{rule}.ndjson'), mode: 'overwrite' };
  const config = {
    datasources: { sensors: { type: 'csv', path: csv, columns: { value: 'number', created_at: 'timestamp' } } },
    processing_rules: [{ name: 'every_reading', threshold_field: 'value', threshold_type: 'greater_than_or_equal', threshold_value: 0, export_targets: ['out'] }],
    export_targets: { out },
  };
  const path = join(dir, `cli-${target}.yaml`);
  writeFileSync(path, JSON.stringify(config));
  return path;
}

/** Wall seconds of one CLI run on the config, with a state folder of its own; fails unless it exits 0. */
function runCli(config) {
  const state = mkdtempSync(join(tmpdir(), 'tp-bench-state-'));
  return new Promise((resolve, reject) => {
    const started = process.hrtime.bigint();
    const proc = spawn(process.execPath, [join(ROOT, 'dist', 'processor.js'), '--config', config, '--state-dir', state], {
      cwd: ROOT,
      env: { ...process.env, ...CREDENTIALS },
      stdio: ['ignore', 'ignore', 'pipe'],
    });
    let err = '';
    proc.stderr.on('data', (d) => (err = (err + d).slice(-4000)));
    proc.on('error', reject);
    proc.on('close', (code) => {
      rmSync(state, { recursive: true, force: true });
      if (code === 0) resolve(Number(process.hrtime.bigint() - started) / 1e9);
      else reject(new Error(`processor exited ${code}: ${err}`));
    });
  });
}

async function medianOf(runs, params) {
  const results = [];
  for (let i = 0; i < runs; i++) results.push(await runChild(params));
  return { seconds: median(results.map((r) => r.seconds)), flushSeconds: median(results.map((r) => r.flushSeconds ?? 0)), maxRssMiB: Math.max(...results.map((r) => r.maxRssMiB)), bytes: results[0].bytes, peaks: results[0].peaks };
}

export async function run({ progress }) {
  process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';
  const { default: S3rver } = await import('s3rver');
  const { S3Client, CreateBucketCommand } = await import('@aws-sdk/client-s3');
  const directory = mkdtempSync(join(tmpdir(), 'tp-bench-s3-'));
  const server = new S3rver({ address: '127.0.0.1', port: 0, directory, silent: true });
  const { port } = await server.run();
  const endpoint = `http://127.0.0.1:${port}`;
  const bucket = 'bench';
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: 'S3RVER', secretAccessKey: 'S3RVER' } });
  await client.send(new CreateBucketCommand({ Bucket: bucket }));
  const fileDir = mkdtempSync(join(tmpdir(), 'tp-bench-file-'));
  const rows = [];
  try {
    const perSecond = (r, n = ROWS) => Math.round(n / r.seconds);

    progress(`s3: parquet, ${ROWS.toLocaleString('en-US')} records, ${RUNS} runs`);
    const parquet = await medianOf(RUNS, { mode: 's3', rows: ROWS, endpoint, bucket, format: 'parquet', dir: fileDir });
    progress('s3: floor, a bare PutObject of the Parquet object\'s bytes');
    const floor = await medianOf(RUNS, { mode: 'floor', endpoint, bucket, format: 'parquet', dir: fileDir });
    rows.push({ case: `parquet (snappy) to s3rver, ${ROWS.toLocaleString('en-US')} records`, figure: perSecond(parquet), unit: 'records/s', note: `target ≥ 150,000; peak RSS ${Math.round(parquet.maxRssMiB)} MiB` });
    rows.push({
      case: 'parquet: time vs bare PutObject of the same bytes',
      figure: parquet.seconds,
      unit: 's',
      floor: floor.seconds,
      ratio: parquet.seconds / floor.seconds,
      note: `object ${(floor.bytes / 1024 / 1024).toFixed(1)} MiB; floor ${(floor.bytes / 1024 / 1024 / floor.seconds).toFixed(0)} MiB/s`,
    });

    // NDJSON: the target, the file target and a bare multipart upload of the same bytes to the
    // same server, alternated round by round (the machine is shared: a slow moment then hits
    // all three), medians reported.
    progress(`s3: ndjson to s3rver, to the file target, and a bare multipart upload of the same bytes, ${ROWS.toLocaleString('en-US')} records, ${RUNS} rounds`);
    const rounds = { s3: [], file: [], floor: [] };
    for (let i = 0; i < RUNS; i++) {
      rounds.s3.push(await runChild({ mode: 's3', rows: ROWS, endpoint, bucket, format: 'ndjson', dir: fileDir }));
      rounds.file.push(await runChild({ mode: 'file', rows: ROWS, format: 'ndjson', dir: fileDir }));
      rounds.floor.push(await runChild({ mode: 'floor', multipart: true, endpoint, bucket, format: 'ndjson', dir: fileDir }));
    }
    const med = (list, key) => median(list.map((r) => r[key]));
    const ndjsonS3 = { seconds: med(rounds.s3, 'seconds'), flushSeconds: med(rounds.s3, 'flushSeconds'), cpuSeconds: med(rounds.s3, 'cpuSeconds') };
    const ndjsonFile = { seconds: med(rounds.file, 'seconds'), flushSeconds: med(rounds.file, 'flushSeconds'), cpuSeconds: med(rounds.file, 'cpuSeconds') };
    const ndjsonFloor = { seconds: med(rounds.floor, 'seconds'), flushSeconds: med(rounds.floor, 'flushSeconds'), bytes: rounds.floor[0].bytes };
    const perRound = (list) => list.map((r) => r.seconds.toFixed(2)).join(', ');
    rows.push({
      case: 'ndjson to s3rver vs the file target\'s ndjson',
      figure: perSecond(ndjsonS3),
      unit: 'records/s',
      floor: perSecond(ndjsonFile),
      ratio: ndjsonFile.seconds / ndjsonS3.seconds,
      note: `goal: ratio ≥ 0.8 (within 20 %); s3 ${perRound(rounds.s3)} s, file ${perRound(rounds.file)} s`,
    });
    rows.push({
      case: 'ndjson to s3rver vs a bare multipart upload of the same bytes to the same server',
      figure: ndjsonS3.seconds,
      unit: 's',
      floor: ndjsonFloor.seconds,
      ratio: ndjsonFloor.seconds / ndjsonS3.seconds,
      note:
        `object ${(ndjsonFloor.bytes / 1024 / 1024).toFixed(0)} MiB in 8 MiB parts; the floor (${perRound(rounds.floor)} s) is what s3rver takes to receive it with nothing to encode; ` +
        `completing it took ${ndjsonFloor.flushSeconds.toFixed(2)} s there, the target's end of run ${ndjsonS3.flushSeconds.toFixed(2)} s, the file target's ${ndjsonFile.flushSeconds.toFixed(2)} s`,
    });
    rows.push({
      case: 'ndjson, before the end of the run: s3 vs file target',
      figure: ndjsonS3.seconds - ndjsonS3.flushSeconds,
      unit: 's',
      floor: ndjsonFile.seconds - ndjsonFile.flushSeconds,
      ratio: (ndjsonFile.seconds - ndjsonFile.flushSeconds) / (ndjsonS3.seconds - ndjsonS3.flushSeconds),
      note: 'encoding and streaming the parts, without the completion only S3 has (the server still receives and stores the parts meanwhile, on the same machine)',
    });
    rows.push({
      case: 'ndjson: CPU time of the exporting process, s3 vs file target',
      figure: ndjsonS3.cpuSeconds,
      unit: 's',
      floor: ndjsonFile.cpuSeconds,
      ratio: ndjsonFile.cpuSeconds / ndjsonS3.cpuSeconds,
      note: 'what the target itself costs, apart from waiting on the server: encoding, signing, sending',
    });

    // The same comparison through the whole CLI: a run reading a CSV of ROWS rows, matching every
    // record and exporting it as NDJSON, to S3 or to the file target (each run with fresh state,
    // so each exports every record), alternated round by round.
    progress(`s3: the CLI end to end, CSV to ndjson on s3rver and to the file target, ${ROWS.toLocaleString('en-US')} records, ${RUNS} rounds`);
    const cli = { s3: [], file: [] };
    const csv = ensureDataset({ path: join(DATA_DIR, `sensors-${ROWS}.csv`), rows: ROWS }).path;
    for (let i = 0; i < RUNS; i++) {
      for (const target of ['s3', 'file']) cli[target].push(await runCli(cliConfig(fileDir, csv, target, endpoint, bucket)));
    }
    rows.push({
      case: 'the CLI end to end: CSV to ndjson on s3rver vs to the file target',
      figure: median(cli.s3),
      unit: 's',
      floor: median(cli.file),
      ratio: median(cli.file) / median(cli.s3),
      note: `a run reading ${ROWS.toLocaleString('en-US')} CSV rows, every one matched and exported; s3 ${cli.s3.map((x) => x.toFixed(2)).join(', ')} s, file ${cli.file.map((x) => x.toFixed(2)).join(', ')} s`,
    });

    for (const format of ['parquet', 'ndjson']) {
      progress(`s3: ${format}, ${BIG_ROWS.toLocaleString('en-US')} records, peak RSS`);
      const big = await runChild({ mode: 's3', rows: BIG_ROWS, endpoint, bucket, format, dir: fileDir });
      rows.push({ case: `${format}, ${BIG_ROWS.toLocaleString('en-US')} records: peak RSS`, figure: Math.round(big.maxRssMiB), unit: 'MiB', note: `target < 150 MB (143 MiB); ${perSecond(big, BIG_ROWS).toLocaleString('en-US')} records/s; sampled peaks: heap ${big.peaks?.heapUsed} MiB used of ${big.peaks?.heapTotal}, buffers ${big.peaks?.arrayBuffers} MiB` });
    }
  } finally {
    client.destroy();
    await server.close();
    rmSync(directory, { recursive: true, force: true });
    rmSync(fileDir, { recursive: true, force: true });
  }
  return { rows };
}
