import { createHash, randomBytes } from 'node:crypto';
import { gunzipSync } from 'node:zlib';
import { HeadObjectCommand, ListMultipartUploadsCommand, PutObjectCommand } from '@aws-sdk/client-s3';
import { expect } from 'chai';
import { parse } from 'csv-parse/sync';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import type { MatchBatch, Sink } from '../../connectors/types.js';
import { endpointIdentity, s3Sink, type S3SinkConfig } from '../../connectors/s3/s3-sink.js';
import { deliveryBatch } from '../../src/delivery/target-queue.js';
import { describeError } from '../../src/errors.js';
import type { FieldDescriptor } from '../../src/records/fields.js';
import { ColumnLayout, OBJECT_LAYOUT } from '../../src/records/layout.js';
import { drive, memoryLogger, parseNdjson } from '../helpers.js';
import { startAnswerLosingProxy, type AnswerLosingProxy } from '../support/answer-losing-proxy.js';
import { S3RVER_CREDENTIALS, startS3Server, type TestS3Server } from '../support/s3-server.js';

const RUN_ID = '20261124T120000Z-ab12';
const MATCHED_AT = '2026-11-24T12:34:56.789Z';
const META = { _rule: 'hot', _datasource: 'sensors', _run_id: RUN_ID, _matched_at: MATCHED_AT };

/** CSV-shaped rows with declared types, as the CSV source hands them over. */
const SENSORS = new ColumnLayout(['id', 'value', 'seen', 'ok', 'note'], { value: 'number', seen: 'timestamp', ok: 'boolean' });

function csvBatch(ids: readonly number[], rule = 'hot'): MatchBatch {
  return {
    rule,
    datasource: 'sensors',
    runId: RUN_ID,
    matchedAt: MATCHED_AT,
    layout: SENSORS,
    rows: ids.map((n) => [`s${n}`, String(n + 0.5), '2026-11-24T10:00:00Z', n % 2 ? 'true' : 'false', n % 3 === 0 ? '' : `say "hi", ${n}\nbye`]),
  };
}

function expectedCsvRecords(ids: readonly number[]) {
  return ids.map((n) => ({ id: `s${n}`, value: n + 0.5, seen: '2026-11-24T10:00:00.000Z', ok: n % 2 === 1, note: n % 3 === 0 ? null : `say "hi", ${n}\nbye`, ...META }));
}

/** Database-like rows with their field descriptors: integers, decimals as text, JSON, Dates, nulls. */
const DB_FIELDS: FieldDescriptor[] = [
  { name: 'id', type: 'integer', nullable: false },
  { name: 'reading', type: 'number', nullable: true },
  { name: 'amount', type: 'decimal', nullable: true },
  { name: 'label', type: 'string', nullable: true },
  { name: 'active', type: 'boolean', nullable: true },
  { name: 'at', type: 'timestamp', nullable: true },
  { name: 'tags', type: 'json', nullable: true },
];

function dbBatch(ids: readonly number[]): MatchBatch {
  return {
    rule: 'hot',
    datasource: 'sensors',
    runId: RUN_ID,
    matchedAt: MATCHED_AT,
    layout: OBJECT_LAYOUT,
    fields: DB_FIELDS,
    rows: ids.map((n) =>
      n % 4 === 0
        ? { id: n, reading: null, amount: null, label: null, active: null, at: null, tags: null }
        : {
            id: n,
            reading: n / 4,
            amount: '12345678901234567890.123456789',
            label: `é✓ ${n}`,
            active: n % 2 === 0,
            at: new Date(Date.UTC(2026, 10, 24, 8, 0, n)),
            tags: { n, list: ['a', null] },
          },
    ),
  };
}

const ids = (from: number, count: number) => Array.from({ length: count }, (_, i) => from + i);

describe('S3 export target against a real S3 server (s3rver)', function () {
  this.timeout(60_000);
  let server: TestS3Server;
  let bucket: string;
  const sinks: Sink[] = [];

  before(async () => {
    process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
    process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
    server = await startS3Server();
  });
  after(async () => {
    await server.stop();
  });
  beforeEach(async () => {
    bucket = `it-${randomBytes(5).toString('hex')}`;
    await server.createBucket(bucket);
  });
  afterEach(async () => {
    server.clearFaults();
    for (const sink of sinks.splice(0)) await sink.close?.();
  });

  async function sinkWith(config: Partial<S3SinkConfig>, log = memoryLogger().log) {
    const sink = await s3Sink.create(
      {
        type: 's3',
        bucket,
        endpoint: server.endpoint,
        force_path_style: true,
        retry: { max_attempts: 3, initial_backoff: '5ms', max_backoff: '20ms' },
        ...config,
      } as S3SinkConfig,
      { name: 'archive', configDir: '.', log, signal: new AbortController().signal },
    );
    sinks.push(sink);
    const ctx = { signal: new AbortController().signal, log };
    return { ...drive(sink), write: (batch: MatchBatch) => sink.write(deliveryBatch('test', [batch]), ctx), flush: () => sink.flush(ctx) };
  }

  /** An NDJSON target of its own name on the test bucket, beside others: for what two targets writing one bucket do. */
  async function namedTarget(name: string, config: Partial<S3SinkConfig>): Promise<Sink> {
    const sink = await s3Sink.create(
      { type: 's3', bucket, endpoint: server.endpoint, force_path_style: true, format: 'ndjson', ...config } as S3SinkConfig,
      { name, configDir: '.', log: memoryLogger().log, signal: new AbortController().signal },
    );
    sinks.push(sink);
    return sink;
  }

  const body = async (key: string) => (await server.object(bucket, key)).body;

  describe('formats: each lands under its key and reads back equal to the records', () => {
    it('ndjson', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'out/{rule}.{ext}' });
      await sink.write(csvBatch(ids(1, 5)));
      await sink.write(csvBatch(ids(6, 3)));
      await sink.flush();
      expect(await server.keys(bucket)).to.deep.equal(['out/hot.ndjson']);
      expect(parseNdjson((await body('out/hot.ndjson')).toString('utf8'))).to.deep.equal(expectedCsvRecords(ids(1, 8)));
    });

    it('json: one array', async () => {
      const sink = await sinkWith({ format: 'json', key: 'out/{rule}.{ext}' });
      await sink.write(csvBatch(ids(1, 4)));
      await sink.write(csvBatch(ids(5, 2)));
      await sink.flush();
      expect(JSON.parse((await body('out/hot.json')).toString('utf8'))).to.deep.equal(expectedCsvRecords(ids(1, 6)));
    });

    it('csv: one header, RFC 4180 quoting', async () => {
      const sink = await sinkWith({ format: 'csv', key: 'out/{rule}.{ext}' });
      await sink.write(csvBatch(ids(1, 4)));
      await sink.write(csvBatch(ids(5, 3)));
      await sink.flush();
      const text = (await body('out/hot.csv')).toString('utf8');
      expect(text.split('\n')[0]).to.equal('id,value,seen,ok,note,_rule,_datasource,_run_id,_matched_at');
      const rows = parse(text, { columns: true }) as Record<string, string>[];
      const want = expectedCsvRecords(ids(1, 7)).map((r) => Object.fromEntries(Object.entries(r).map(([k, v]) => [k, v === null ? '' : String(v)])));
      expect(rows).to.deep.equal(want);
    });

    it('parquet: typed columns from the CSV types, nullable, metadata included (read with hyparquet)', async () => {
      const sink = await sinkWith({ format: 'parquet', key: 'out/{rule}.{ext}' });
      await sink.write(csvBatch(ids(1, 5)));
      await sink.write(csvBatch(ids(6, 4)));
      await sink.flush();
      const bytes = await body('out/hot.parquet');
      const file = toArrayBuffer(bytes);
      const metadata = parquetMetadata(file);
      const columns = metadata.schema.slice(1).map((e) => [e.name, e.type, e.converted_type ?? null, e.repetition_type]);
      expect(columns).to.deep.equal([
        ['id', 'BYTE_ARRAY', 'UTF8', 'OPTIONAL'],
        ['value', 'DOUBLE', null, 'OPTIONAL'],
        ['seen', 'INT64', 'TIMESTAMP_MILLIS', 'OPTIONAL'],
        ['ok', 'BOOLEAN', null, 'OPTIONAL'],
        ['note', 'BYTE_ARRAY', 'UTF8', 'OPTIONAL'],
        ['_rule', 'BYTE_ARRAY', 'UTF8', 'OPTIONAL'],
        ['_datasource', 'BYTE_ARRAY', 'UTF8', 'OPTIONAL'],
        ['_run_id', 'BYTE_ARRAY', 'UTF8', 'OPTIONAL'],
        ['_matched_at', 'INT64', 'TIMESTAMP_MILLIS', 'OPTIONAL'],
      ]);
      expect(metadata.schema[3]!.logical_type).to.deep.equal({ type: 'TIMESTAMP', isAdjustedToUTC: true, unit: 'MILLIS' });
      const rows = await parquetReadObjects({ file });
      expect(rows).to.deep.equal(
        expectedCsvRecords(ids(1, 9)).map((r) => ({ ...r, seen: new Date(r.seen), _matched_at: new Date(MATCHED_AT) })),
      );
      expect(metadata.key_value_metadata).to.deep.include({ key: 'records', value: '9' });
    });

    it('parquet with the default row group size: batches split at the 20,000-record boundary, two row groups, every record and type read back', async () => {
      const sink = await sinkWith({ format: 'parquet', key: 'groups/{rule}.{ext}' });
      // 15,000 + 15,000 records: the second batch is split across the first group's end.
      await sink.write(csvBatch(ids(0, 15_000)));
      await sink.write(csvBatch(ids(15_000, 15_000)));
      await sink.flush();
      const file = toArrayBuffer(await body('groups/hot.parquet'));
      const metadata = parquetMetadata(file);
      expect(metadata.row_groups.map((g) => Number(g.num_rows))).to.deep.equal([20_000, 10_000]);
      expect(metadata.schema.slice(1).map((e) => `${e.name}:${e.type}:${e.converted_type ?? ''}`)).to.deep.equal([
        'id:BYTE_ARRAY:UTF8',
        'value:DOUBLE:',
        'seen:INT64:TIMESTAMP_MILLIS',
        'ok:BOOLEAN:',
        'note:BYTE_ARRAY:UTF8',
        '_rule:BYTE_ARRAY:UTF8',
        '_datasource:BYTE_ARRAY:UTF8',
        '_run_id:BYTE_ARRAY:UTF8',
        '_matched_at:INT64:TIMESTAMP_MILLIS',
      ]);
      const rows = await parquetReadObjects({ file });
      expect(rows).to.deep.equal(expectedCsvRecords(ids(0, 30_000)).map((r) => ({ ...r, seen: new Date(r.seen), _matched_at: new Date(MATCHED_AT) })));
    });

    it('parquet from field descriptors: INT64, DOUBLE, decimal as text, UTF8, BOOLEAN, TIMESTAMP, JSON, nulls', async () => {
      const sink = await sinkWith({ format: 'parquet', key: 'out/{rule}.{ext}', include_metadata: false });
      await sink.write(dbBatch(ids(1, 8)));
      await sink.flush();
      const file = toArrayBuffer(await body('out/hot.parquet'));
      const schema = parquetMetadata(file).schema.slice(1).map((e) => [e.name, e.type, e.converted_type ?? null]);
      expect(schema).to.deep.equal([
        ['id', 'INT64', null],
        ['reading', 'DOUBLE', null],
        ['amount', 'BYTE_ARRAY', 'UTF8'],
        ['label', 'BYTE_ARRAY', 'UTF8'],
        ['active', 'BOOLEAN', null],
        ['at', 'INT64', 'TIMESTAMP_MILLIS'],
        ['tags', 'BYTE_ARRAY', 'JSON'],
      ]);
      const rows = await parquetReadObjects({ file });
      expect(rows).to.deep.equal(
        ids(1, 8).map((n) =>
          n % 4 === 0
            ? { id: BigInt(n), reading: null, amount: null, label: null, active: null, at: null, tags: null }
            : {
                id: BigInt(n),
                reading: n / 4,
                amount: '12345678901234567890.123456789',
                label: `é✓ ${n}`,
                active: n % 2 === 0,
                at: new Date(Date.UTC(2026, 10, 24, 8, 0, n)),
                tags: { n, list: ['a', null] },
              },
        ),
      );
    });

    for (const compression of ['gzip', 'none'] as const) {
      it(`parquet with compression: ${compression} reads back`, async () => {
        const sink = await sinkWith({ format: 'parquet', compression, key: 'out/{rule}.{ext}' });
        await sink.write(csvBatch(ids(1, 50)));
        await sink.flush();
        const file = toArrayBuffer(await body('out/hot.parquet'));
        const codecs = parquetMetadata(file).row_groups.flatMap((g) => g.columns.map((c) => c.meta_data!.codec));
        expect(new Set(codecs)).to.deep.equal(new Set([compression === 'gzip' ? 'GZIP' : 'UNCOMPRESSED']));
        const rows = await parquetReadObjects({ file, compressors: { GZIP: (input: Uint8Array) => new Uint8Array(gunzipSync(input)) } });
        expect(rows).to.have.lengthOf(50);
        expect(rows[49]).to.include({ id: 's50', value: 50.5, ok: false });
      });
    }

    it('parquet: before a row group is written, a batch the columns cannot hold widens them: one object holds every record', async () => {
      const sink = await sinkWith({ format: 'parquet', key: 'out/{rule}-{part}.{ext}', include_metadata: false });
      const layout = new ColumnLayout(['id', 'value'], { value: 'number' });
      const batch = (rows: string[][]): MatchBatch => ({ rule: 'hot', datasource: 'sensors', runId: RUN_ID, matchedAt: MATCHED_AT, layout, rows });
      await sink.write(batch([['a', '1.5'], ['b', '']]));
      // A number a double would round stays text, so the column becomes text.
      await sink.write(batch([['c', '12345678901234567891']]));
      await sink.flush();
      expect(await server.keys(bucket)).to.deep.equal(['out/hot-1.parquet']);
      const file = toArrayBuffer(await body('out/hot-1.parquet'));
      expect(parquetMetadata(file).schema[2]).to.include({ name: 'value', type: 'BYTE_ARRAY' });
      expect(await parquetReadObjects({ file })).to.deep.equal([
        { id: 'a', value: '1.5' },
        { id: 'b', value: null },
        { id: 'c', value: '12345678901234567891' },
      ]);
    });

    it('parquet: records without types, null first, then integers, then a fraction, then a new field: one object (no {part} needed), a DOUBLE column', async () => {
      const sink = await sinkWith({ format: 'parquet', key: 'out/{rule}/{run_id}.{ext}', include_metadata: false });
      const rest = (rows: Record<string, unknown>[]): MatchBatch => ({ rule: 'hot', datasource: 'api', runId: RUN_ID, matchedAt: MATCHED_AT, layout: OBJECT_LAYOUT, rows });
      await sink.write(rest([{ host: 'a', temp: null }]));
      await sink.write(rest([{ host: 'b', temp: 21 }]));
      await sink.write(rest([{ host: 'c', temp: 21.5 }]));
      // A field the earlier records lacked: null for them.
      await sink.write(rest([{ host: 'd', temp: 20, note: 'new' }]));
      await sink.flush();
      const keys = await server.keys(bucket);
      expect(keys).to.have.lengthOf(1);
      const file = toArrayBuffer(await body(keys[0]!));
      expect(parquetMetadata(file).schema.find((e) => e.name === 'temp')).to.include({ type: 'DOUBLE' });
      const rows = await parquetReadObjects({ file });
      expect(rows.map((r) => r.temp)).to.deep.equal([null, 21, 21.5, 20]);
      expect(rows.map((r) => r.note)).to.deep.equal([null, null, null, 'new']);
    });

    it('parquet: a widening keeps the kind of every column that still holds its values (a CSV timestamp column stays TIMESTAMP)', async () => {
      const sink = await sinkWith({ format: 'parquet', key: 'w/{rule}-{part}.{ext}', include_metadata: false });
      const layout = new ColumnLayout(['id', 'seen'], { seen: 'timestamp' });
      await sink.write({ rule: 'hot', datasource: 'csv', runId: RUN_ID, matchedAt: MATCHED_AT, layout, rows: [['a', '2026-11-24 08:00:00']] });
      const rest = (rows: Record<string, unknown>[]): MatchBatch => ({ rule: 'hot', datasource: 'api', runId: RUN_ID, matchedAt: MATCHED_AT, layout: OBJECT_LAYOUT, rows });
      await sink.write(rest([{ id: 'b', seen: '2026-11-24T09:00:00Z' }]));
      await sink.write(rest([{ id: 'c', seen: '2026-11-24T10:00:00Z', note: 'new field' }]));
      await sink.flush();
      expect(await server.keys(bucket)).to.deep.equal(['w/hot-1.parquet']);
      const file = toArrayBuffer(await body('w/hot-1.parquet'));
      expect(parquetMetadata(file).schema.find((e) => e.name === 'seen')).to.include({ type: 'INT64', converted_type: 'TIMESTAMP_MILLIS' });
      const rows = await parquetReadObjects({ file });
      expect(rows.map((r) => (r.seen as Date).toISOString())).to.deep.equal(['2026-11-24T08:00:00.000Z', '2026-11-24T09:00:00.000Z', '2026-11-24T10:00:00.000Z']);
      expect(rows.map((r) => r.note)).to.deep.equal([null, null, 'new field']);
    });

    it('parquet: an object widens at most 16 times; a field added batch after batch then begins the next part', async () => {
      const sink = await sinkWith({ format: 'parquet', key: 'many/{rule}-{part}.{ext}', include_metadata: false });
      for (let i = 0; i < 20; i++) {
        await sink.write({ rule: 'hot', datasource: 'api', runId: RUN_ID, matchedAt: MATCHED_AT, layout: OBJECT_LAYOUT, rows: [{ id: i, [`f${i}`]: i }] });
      }
      await sink.flush();
      expect(await server.keys(bucket)).to.deep.equal(['many/hot-1.parquet', 'many/hot-2.parquet']);
      const first = await parquetReadObjects({ file: toArrayBuffer(await body('many/hot-1.parquet')) });
      const second = await parquetReadObjects({ file: toArrayBuffer(await body('many/hot-2.parquet')) });
      expect(first.map((r) => r.id)).to.deep.equal(ids(0, 17).map(BigInt));
      expect(second.map((r) => r.id)).to.deep.equal([17n, 18n, 19n]);
      expect(first[16]).to.include({ f16: 16n });
    });

    it('parquet: once a row group is written, a batch the columns cannot hold starts the next part, which has its own schema', async () => {
      const sink = await sinkWith({ format: 'parquet', key: 'out/{rule}-{part}.{ext}', include_metadata: false, row_group_size: 2 });
      const layout = new ColumnLayout(['id', 'value'], { value: 'number' });
      const batch = (rows: string[][]): MatchBatch => ({ rule: 'hot', datasource: 'sensors', runId: RUN_ID, matchedAt: MATCHED_AT, layout, rows });
      await sink.write(batch([['a', '1.5'], ['b', '']]));
      await sink.write(batch([['c', '12345678901234567891']]));
      await sink.flush();
      expect(await server.keys(bucket)).to.deep.equal(['out/hot-1.parquet', 'out/hot-2.parquet']);
      expect(await parquetReadObjects({ file: toArrayBuffer(await body('out/hot-1.parquet')) })).to.deep.equal([
        { id: 'a', value: 1.5 },
        { id: 'b', value: null },
      ]);
      const second = toArrayBuffer(await body('out/hot-2.parquet'));
      expect(parquetMetadata(second).schema[2]).to.include({ name: 'value', type: 'BYTE_ARRAY' });
      expect(await parquetReadObjects({ file: second })).to.deep.equal([{ id: 'c', value: '12345678901234567891' }]);
    });

    for (const format of ['ndjson', 'csv', 'json'] as const) {
      it(`${format} with compression: gzip is one gzip stream, named .${format}.gz, typed application/gzip`, async () => {
        const sink = await sinkWith({ format, compression: 'gzip' });
        await sink.write(csvBatch(ids(1, 3)));
        await sink.write(csvBatch(ids(4, 3)));
        await sink.flush();
        const [key] = await server.keys(bucket);
        expect(key).to.equal(`alerts/rule=hot/date=2026-11-24/${RUN_ID}-1.${format}.gz`);
        const object = await server.object(bucket, key!);
        expect(object.contentType).to.equal('application/gzip');
        expect(object.contentEncoding).to.equal(undefined);
        const text = gunzipSync(object.body).toString('utf8');
        const records = format === 'ndjson' ? parseNdjson(text) : format === 'json' ? JSON.parse(text) : parse(text, { columns: true });
        expect(records).to.have.lengthOf(6);
        expect(records[5].id).to.equal('s6');
      });
    }
  });

  describe('keys and object metadata', () => {
    it('the default layout is Hive-style: alerts/rule=<rule>/date=<date>/<run_id>-<part>.<ext>', async () => {
      const sink = await sinkWith({});
      await sink.write(csvBatch(ids(1, 2), 'hot'));
      await sink.write(csvBatch(ids(3, 2), 'cold'));
      await sink.flush();
      expect(await server.keys(bucket)).to.deep.equal([
        `alerts/rule=cold/date=2026-11-24/${RUN_ID}-1.json`,
        `alerts/rule=hot/date=2026-11-24/${RUN_ID}-1.json`,
      ]);
    });

    it('a key template with prefix, {datasource}, {time}, {format}; a value cannot add a "/" level', async () => {
      const sink = await sinkWith({ prefix: 'lake/', key: '{datasource}/{rule}/{date}T{time}.{format}', format: 'ndjson' });
      await sink.write(csvBatch(ids(1, 2), '../etc/passwd'));
      await sink.flush();
      expect(await server.keys(bucket)).to.deep.equal(['lake/sensors/.._etc_passwd/2026-11-24T123456.ndjson']);
    });

    it('each object carries Content-Type and metadata: rule, datasource, run id, record count, format', async () => {
      const sink = await sinkWith({ format: 'parquet', key: '{rule}.{ext}' });
      await sink.write(csvBatch(ids(1, 7)));
      await sink.flush();
      const object = await server.object(bucket, 'hot.parquet');
      expect(object.contentType).to.equal('application/vnd.apache.parquet');
      expect(object.metadata).to.deep.equal({ rule: 'hot', datasource: 'sensors', 'run-id': RUN_ID, records: '7', format: 'parquet' });
    });

    it('metadata that is not ASCII is percent-encoded (S3 metadata travels in HTTP headers)', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'm/{part}.{ext}' });
      await sink.write(csvBatch(ids(1, 2), 'température élevée'));
      await sink.flush();
      const object = await server.object(bucket, 'm/1.ndjson');
      expect(object.metadata.rule).to.equal(encodeURIComponent('température élevée'));
      expect(decodeURIComponent(object.metadata.rule!)).to.equal('température élevée');
    });

    it('an object of 200 rules lists as many as fit in S3\'s 2 KB of metadata, and says how many were left out', async () => {
      const names = ids(1, 200).map((n) => `rule-${String(n).padStart(3, '0')}-${'threshold-breached-'.repeat(3)}`);
      const sink = await sinkWith({ format: 'ndjson', key: 'all/{datasource}.{ext}' });
      for (const [i, name] of names.entries()) await sink.write(csvBatch([i], name));
      await sink.flush();
      const { metadata } = await server.object(bucket, 'all/sensors.ndjson');
      // AWS counts the UTF-8 bytes of every key and value; the header prefix is counted too, to be safe.
      const total = Object.entries(metadata).reduce((sum, [k, v]) => sum + Buffer.byteLength(`x-amz-meta-${k}`) + Buffer.byteLength(v), 0);
      expect(total).to.be.at.most(2048);
      const listed = metadata.rule!.split(',').map(decodeURIComponent);
      expect(listed.length).to.be.greaterThan(10);
      expect(listed).to.deep.equal(names.slice(0, listed.length));
      expect(metadata['rules-omitted']).to.equal(String(200 - listed.length));
      expect(metadata).to.include({ datasource: 'sensors', 'run-id': RUN_ID, records: '200', format: 'ndjson' });
    });

    it('rule names with "," or "%" are percent-encoded within the list, so it reads back unambiguously; a short list has no omitted count', async () => {
      const names = ['a,b%c', 'plain', 'température', '50%'];
      const sink = await sinkWith({ format: 'ndjson', key: 'l/{datasource}.{ext}' });
      for (const name of names) await sink.write(csvBatch([1], name));
      await sink.flush();
      const { metadata } = await server.object(bucket, 'l/sensors.ndjson');
      expect(metadata.rule).to.equal('a%2Cb%25c,plain,temp%C3%A9rature,50%25');
      expect(metadata.rule!.split(',').map(decodeURIComponent)).to.deep.equal(names);
      expect(metadata).not.to.have.property('rules-omitted');
    });

    it('a rule name with a lone UTF-16 surrogate: the key and the metadata get U+FFFD in its place, and the object is published', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 's/{rule}.{ext}' });
      await sink.write(csvBatch(ids(1, 2), 'hot\ud800rule'));
      await sink.flush();
      expect(await server.keys(bucket)).to.deep.equal(['s/hot\ufffdrule.ndjson']);
      const { metadata } = await server.object(bucket, 's/hot\ufffdrule.ndjson');
      expect(decodeURIComponent(metadata.rule!)).to.equal('hot\ufffdrule');
    });

    it('a lone surrogate in the key template\'s own text (a prefix written "\\ud800" in YAML): U+FFFD in the key, and the object is published', async () => {
      const sink = await sinkWith({ format: 'ndjson', prefix: 'exp\ud800/', key: 's/{rule}.{ext}' });
      await sink.write(csvBatch(ids(1, 2)));
      await sink.flush();
      expect(await server.keys(bucket)).to.deep.equal(['exp\ufffd/s/hot.ndjson']);
    });

    it('a key over 1,024 bytes of UTF-8 is refused at the first write of its object, before any request, naming the target, the key and the fix', async () => {
      // 520 two-byte characters: 1,040 bytes, though fewer than 1,024 characters.
      const rule = 'é'.repeat(520);
      const sink = await sinkWith({ format: 'ndjson', key: 'long/{rule}.{ext}' });
      const before = server.requests.length;
      const err = await sink.write(csvBatch(ids(1, 2), rule)).then(() => undefined, (e) => e);
      expect(err?.code).to.equal('KEY_TOO_LONG');
      expect(err.retryable).to.equal(false);
      const message = describeError(err);
      expect(message).to.include('export target "archive"').and.include(`s3://${bucket}/long/éééé`);
      expect(message).to.include('1052 bytes').and.include('1024');
      expect(message).to.match(/shorten the key template .* or the values filled into it/);
      expect(server.requests.slice(before).filter((r) => r.url.includes(bucket))).to.deep.equal([]);
      await sink.abort();
      expect(await server.keys(bucket)).to.deep.equal([]);
    });

    it('a key that reaches 1,024 bytes only at {part} 10 is refused when part 10 begins, with nothing of the run published', async () => {
      // 1,024 bytes with a one-digit part: the tenth object's key is one byte too long.
      const sink = await sinkWith({ format: 'ndjson', key: `p/{rule}-{part}.{ext}`, max_records_per_object: 1, retry: { max_attempts: 1 } });
      const rule = 'r'.repeat(1024 - 'p/-1.ndjson'.length);
      const err = await sink.write(csvBatch(ids(1, 10), rule)).then(() => undefined, (e) => e);
      expect(err?.code).to.equal('KEY_TOO_LONG');
      expect(describeError(err)).to.include('1025 bytes');
      await sink.abort();
      expect(await server.keys(bucket)).to.deep.equal([]);
      expect(server.pendingUploads(bucket)).to.deep.equal([]);
    });

    it('two S3 targets whose keys resolve to one object: the second fails naming the first, the first delivers', async () => {
      const config = { format: 'ndjson' as const, key: 'same/{rule}.{ext}' };
      const first = await s3Sink.create({ type: 's3', bucket, endpoint: server.endpoint, force_path_style: true, ...config }, { name: 'first', configDir: '.', log: memoryLogger().log, signal: new AbortController().signal });
      const second = await s3Sink.create({ type: 's3', bucket, endpoint: server.endpoint, force_path_style: true, ...config }, { name: 'second', configDir: '.', log: memoryLogger().log, signal: new AbortController().signal });
      sinks.push(first, second);
      const a = drive(first);
      const b = drive(second);
      await a.write(csvBatch(ids(1, 2)));
      const err = await b.write(csvBatch(ids(3, 2))).then(() => undefined, (e) => e);
      expect(describeError(err)).to.include(`s3://${bucket}/same/hot.ndjson: export target "first" writes this object too`);
      await b.abort();
      await a.flush();
      expect(parseNdjson((await body('same/hot.ndjson')).toString()).map((r) => r.id)).to.deep.equal(['s1', 's2']);
      // Taken for the whole run, after it is published too; the next run may use it.
      const again = await b.write(csvBatch(ids(5, 1))).then(() => undefined, (e) => e);
      expect(again?.code, 'the same run').to.equal('KEY_IN_USE');
      await b.abort();
      await b.write({ ...csvBatch(ids(5, 1)), runId: '20261124T130000Z-cd34' });
      await b.flush();
      expect(parseNdjson((await body('same/hot.ndjson')).toString()).map((r) => r.id)).to.deep.equal(['s5']);
    });

    it('two targets naming the same server differently (trailing slash, upper case, default port) still claim against each other', async () => {
      const port = new URL(server.endpoint).port;
      const first = await namedTarget('first', { key: 'spelled/{rule}.{ext}', endpoint: `http://127.0.0.1:${port}` });
      const second = await namedTarget('second', { key: 'spelled/{rule}.{ext}', endpoint: `HTTP://127.0.0.1:${port}/` });
      await drive(first).write(csvBatch(ids(1, 1)));
      const err = await drive(second).write(csvBatch(ids(2, 1))).then(() => undefined, (e) => e);
      expect(err?.code).to.equal('KEY_IN_USE');
      await drive(second).abort();
      await drive(first).flush();
      expect(parseNdjson((await body('spelled/hot.ndjson')).toString()).map((r) => r.id)).to.deep.equal(['s1']);
      expect(endpointIdentity('https://S3.Example.com:443/')).to.equal(endpointIdentity('https://s3.example.com'));
      expect(endpointIdentity('http://minio:9000/base/')).to.equal('http://minio:9000/base');
    });

    it('the prefix is text as written: braces in it are braces, not placeholders', async () => {
      expect(s3Sink.validate!({ type: 's3', bucket, prefix: 'teams{eu}/', key: '{rule}.{ext}' } as S3SinkConfig)).to.deep.equal([]);
      const sink = await sinkWith({ format: 'ndjson', prefix: 'teams{eu}/{rule}/', key: 'k/{rule}.{ext}' });
      await sink.write(csvBatch(ids(1, 1)));
      await sink.flush();
      expect(await server.keys(bucket)).to.deep.equal(['teams{eu}/{rule}/k/hot.ndjson']);
    });

    it('two objects of one target whose keys meet ({rule}{part}: "hot1" part 1, "hot" part 11): the second fails naming the key, nothing is overwritten', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'k/{rule}{part}.{ext}', max_records_per_object: 1, retry: { max_attempts: 1 } });
      await sink.write(csvBatch(ids(0, 1), 'hot1'));
      const err = await sink.write(csvBatch(ids(100, 11), 'hot')).then(() => undefined, (e) => e);
      expect(err?.code).to.equal('KEY_IN_USE');
      expect(describeError(err)).to.include(`s3://${bucket}/k/hot11.ndjson: this target writes this object for another rule, datasource or part too`);
      await sink.abort();
      expect(await server.keys(bucket)).to.deep.equal([]);
      expect(server.pendingUploads(bucket)).to.deep.equal([]);
    });

    it('two S3 targets with different key templates that render one key: the second fails naming the first', async () => {
      const create = (name: string, key: string) => namedTarget(name, { key, max_records_per_object: 1 });
      const first = await create('first', 'x/{rule}-{part}.{ext}');
      const second = await create('second', 'x/{rule}-2.{ext}');
      const a = drive(first);
      const b = drive(second);
      await a.write(csvBatch(ids(1, 2)));
      const err = await b.write(csvBatch(ids(3, 1))).then(() => undefined, (e) => e);
      expect(describeError(err)).to.include(`s3://${bucket}/x/hot-2.ndjson: export target "first" writes this object too`);
      await b.abort();
      await a.flush();
      expect(await server.keys(bucket)).to.deep.equal(['x/hot-1.ndjson', 'x/hot-2.ndjson']);
      expect(parseNdjson((await body('x/hot-2.ndjson')).toString()).map((r) => r.id)).to.deep.equal(['s2']);
    });

    it('a key is taken for the whole run: a second target fails while the first publishes and after; a failed target gives its keys back; {part} as 0 clashes with nothing', async () => {
      const create = (name: string, key: string) => namedTarget(name, { key, retry: { max_attempts: 1 } });
      const first = await create('first', 'k/{rule}.{ext}');
      const second = await create('second', 'k/{rule}.{ext}');
      const third = await create('third', 'k/{rule}-0.{ext}');
      const fourth = await create('fourth', 'k/{rule}-{part}.{ext}');
      const fifth = await create('fifth', 'k/{rule}-1.{ext}');
      const [a, b, c, d, e] = [first, second, third, fourth, fifth].map((sink) => drive(sink));
      await a!.write(csvBatch(ids(1, 1)));
      const slowPut = server.delayNext('PUT', new RegExp(`^/${bucket}/k/hot\\.ndjson\\?x-id=PutObject`), 500);
      const publishing = a!.flush();
      await slowPut;
      const during = await b!.write(csvBatch(ids(2, 1))).then(() => undefined, (err) => err);
      expect(describeError(during)).to.include(`s3://${bucket}/k/hot.ndjson: export target "first" writes this object too`);
      await publishing;
      await b!.abort();
      // Targets finish side by side: one still writing after the first has published must not replace its object.
      const after = await b!.write(csvBatch(ids(2, 1))).then(() => undefined, (err) => err);
      expect(after?.code, 'after the first published').to.equal('KEY_IN_USE');
      await b!.abort();
      // "k/hot-0.ndjson" is what {part} as 0 would give the fourth target, which writes k/hot-1.ndjson.
      await c!.write(csvBatch(ids(3, 1)));
      await d!.write(csvBatch(ids(4, 1)));
      await c!.flush();
      // The fourth fails to publish: k/hot-1.ndjson is free again for the fifth, in the same run.
      server.failNext({ method: 'PUT', url: new RegExp(`^/${bucket}/k/hot-1\\.ndjson\\?x-id=PutObject`), status: 403, code: 'AccessDenied' });
      expect(await d!.flush().then(() => undefined, (err) => err)).to.be.instanceOf(Error);
      await e!.write(csvBatch(ids(5, 1)));
      await e!.flush();
      expect(await server.keys(bucket)).to.deep.equal(['k/hot-0.ndjson', 'k/hot-1.ndjson', 'k/hot.ndjson']);
      expect(parseNdjson((await body('k/hot-1.ndjson')).toString()).map((r) => r.id)).to.deep.equal(['s5']);
      expect(parseNdjson((await body('k/hot.ndjson')).toString()).map((r) => r.id)).to.deep.equal(['s1']);
    });

    it('claims belong to the run writing: a batch replayed from the spool (an older run id) cannot take a key another target holds in this run', async () => {
      const create = (name: string) => namedTarget(name, { key: 'same/{rule}.{ext}' });
      const first = await create('first');
      const second = await create('second');
      const ctx = { signal: new AbortController().signal, log: memoryLogger().log, cycle: '20261124T130000Z-cur0' };
      await first.write(deliveryBatch('test', [{ ...csvBatch(ids(1, 1)), runId: ctx.cycle }]), ctx);
      const replayed = { ...csvBatch(ids(2, 1)), runId: '20261124T110000Z-old0' };
      const err = await second.write(deliveryBatch('test', [replayed]), ctx).then(() => undefined, (e) => e);
      expect(err?.code).to.equal('KEY_IN_USE');
      await second.abort?.(ctx);
      await first.flush(ctx);
      expect(parseNdjson((await body('same/hot.ndjson')).toString()).map((r) => r.id)).to.deep.equal(['s1']);
    });

    it("a batch replayed in the next run cannot replace the object another target published under its run's key", async () => {
      const create = (name: string) => namedTarget(name, { key: 'runs/{run_id}.{ext}' });
      const first = await create('first');
      const second = await create('second');
      const runN = { signal: new AbortController().signal, log: memoryLogger().log, cycle: '20261124T140000Z-aaaa' };
      const batchN = (from: number) => ({ ...csvBatch(ids(from, 1)), runId: runN.cycle });
      await first.write(deliveryBatch('test', [batchN(1)]), runN);
      const refused = await second.write(deliveryBatch('test', [batchN(2)]), runN).then(() => undefined, (e) => e);
      expect(refused?.code).to.equal('KEY_IN_USE');
      await second.abort?.(runN);
      await first.flush(runN);
      // The next run replays the second target's spooled batch: its key is run N's, which the first target published.
      const runN1 = { ...runN, cycle: '20261124T140100Z-bbbb' };
      const replayed = await second.write(deliveryBatch('test', [batchN(2)]), runN1).then(() => undefined, (e) => e);
      expect(replayed?.code).to.equal('KEY_IN_USE');
      await second.abort?.(runN1);
      expect(parseNdjson((await body(`runs/${runN.cycle}.ndjson`)).toString()).map((r) => r.id)).to.deep.equal(['s1']);
    });

    it("a replay's claim is kept under both runs: a fresh write of the writing run, or another replay of the batch's run, two runs later, cannot take it", async () => {
      const create = (name: string, key: string) => namedTarget(name, { key });
      const [a, b, c, d] = await Promise.all([create('a', 'out/{rule}.{ext}'), create('b', 'out/{rule}.{ext}'), create('c', 'runs/{run_id}.{ext}'), create('d', 'runs/{run_id}.{ext}')]);
      const run = (cycle: string) => ({ signal: new AbortController().signal, log: memoryLogger().log, cycle });
      const [n, n1, n2] = ['20261124T150000Z-0000', '20261124T150100Z-0001', '20261124T150200Z-0002'].map(run);
      const batchOf = (runId: string, id: number) => ({ ...csvBatch(ids(id, 1)), runId });
      // A replays its batch of run n in run n1: a fresh write of run n1 by B to the same key is refused.
      await a.write(deliveryBatch('test', [batchOf(n!.cycle, 1)]), n1!);
      expect((await b.write(deliveryBatch('test', [batchOf(n1!.cycle, 2)]), n1!).then(() => undefined, (e) => e))?.code).to.equal('KEY_IN_USE');
      await b.abort?.(n1!);
      await a.flush(n1!);
      // C replays its batch of run n in run n1 and publishes runs/<n>; D's replay of its own batch of run n in run n2 is refused.
      await c.write(deliveryBatch('test', [batchOf(n!.cycle, 3)]), n1!);
      await c.flush(n1!);
      expect((await d.write(deliveryBatch('test', [batchOf(n!.cycle, 4)]), n2!).then(() => undefined, (e) => e))?.code).to.equal('KEY_IN_USE');
      await d.abort?.(n2!);
      expect(parseNdjson((await body('out/hot.ndjson')).toString()).map((r) => r.id)).to.deep.equal(['s1']);
      expect(parseNdjson((await body(`runs/${n!.cycle}.ndjson`)).toString()).map((r) => r.id)).to.deep.equal(['s3']);
    });

    it('max_records_per_object splits an export into numbered parts', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'out/{rule}/{part}.{ext}', max_records_per_object: 10 });
      await sink.write(csvBatch(ids(1, 7)));
      await sink.write(csvBatch(ids(8, 18)));
      await sink.flush();
      const keys = await server.keys(bucket);
      expect(keys).to.deep.equal(['out/hot/1.ndjson', 'out/hot/2.ndjson', 'out/hot/3.ndjson']);
      const counts = [];
      const all = [];
      for (const key of keys) {
        const records = parseNdjson((await body(key)).toString('utf8'));
        counts.push(records.length);
        all.push(...records);
        expect((await server.object(bucket, key)).metadata.records).to.equal(String(records.length));
      }
      expect(counts).to.deep.equal([10, 10, 5]);
      expect(all).to.deep.equal(expectedCsvRecords(ids(1, 25)));
    });

    it('csv: a batch with a column the header lacks starts the next part; without {part} in the key it fails, naming the fix', async () => {
      const wide = (n: number): MatchBatch => ({ rule: 'hot', datasource: 'sensors', runId: RUN_ID, matchedAt: MATCHED_AT, layout: OBJECT_LAYOUT, rows: [{ id: n, extra: 'x' }] });
      const narrow = (n: number): MatchBatch => ({ rule: 'hot', datasource: 'sensors', runId: RUN_ID, matchedAt: MATCHED_AT, layout: OBJECT_LAYOUT, rows: [{ id: n }] });
      const parted = await sinkWith({ format: 'csv', key: 'p/{rule}-{part}.{ext}', include_metadata: false });
      await parted.write(narrow(1));
      await parted.write(wide(2));
      await parted.flush();
      expect((await body('p/hot-1.csv')).toString()).to.equal('id\n1\n');
      expect((await body('p/hot-2.csv')).toString()).to.equal('id,extra\n2,x\n');

      const single = await sinkWith({ format: 'csv', key: 'single/{rule}.{ext}', include_metadata: false });
      await single.write(narrow(1));
      const err = await single.write(wide(2)).then(() => undefined, (e) => e);
      expect(describeError(err)).to.match(/s3:\/\/it-[0-9a-f]+\/single\/hot\.csv: a second object is needed .* add \{part\} to the key/);
      await single.abort();
      expect((await server.keys(bucket)).filter((k) => k.startsWith('single/'))).to.deep.equal([]);
    });
  });

  describe('multipart uploads', () => {
    /** About 7 MiB of NDJSON: more than one 5 MiB part. */
    const bigBatches = () => ids(0, 6).map((b) => csvBatch(ids(b * 10_000, 10_000)));

    it('an export larger than one part is uploaded in parts, becomes visible only at flush, and reads back whole with its metadata', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'big/{rule}.{ext}', part_size_mib: 5 });
      for (const batch of bigBatches()) await sink.write(batch);
      expect(await server.keys(bucket), 'nothing visible before flush').to.deep.equal([]);
      expect(server.pendingUploads(bucket)).to.have.lengthOf(1);
      await sink.flush();
      const parts = server.requests.filter((r) => r.method === 'PUT' && /[?&]partNumber=/.test(r.url) && r.url.includes(bucket));
      expect(parts.length).to.be.at.least(2);
      const object = await server.object(bucket, 'big/hot.ndjson');
      expect(object.body.length).to.be.greaterThan(5 * 1024 * 1024);
      const records = parseNdjson(object.body.toString('utf8'));
      expect(records).to.have.lengthOf(60_000);
      expect(records.map((r) => r.id)).to.deep.equal(ids(0, 60_000).map((n) => `s${n}`));
      expect(object.metadata).to.include({ rule: 'hot', records: '60000', 'run-id': RUN_ID });
      expect(object.contentType).to.equal('application/x-ndjson');
      expect(server.pendingUploads(bucket)).to.deep.equal([]);
    });

    it('while a part uploads, encoding the next batch lets the event loop turn, so the upload moves on meanwhile', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'big/{rule}.{ext}', part_size_mib: 5 });
      const batches = bigBatches();
      // About 2 MiB of NDJSON each: the third fills the first part, which then goes up.
      for (const batch of batches.slice(0, 5)) await sink.write(batch);
      expect(server.pendingUploads(bucket), 'the first part has gone').to.have.lengthOf(1);
      let turns = 0;
      let counting = true;
      const count = () => {
        turns++;
        if (counting) setImmediate(count);
      };
      setImmediate(count);
      await sink.write(batches[5]!);
      counting = false;
      // Without a turn, the request writes only what the socket took at once until the next part is due.
      expect(turns, 'event-loop turns while encoding ~2 MiB').to.be.at.least(2);
      await sink.flush();
      expect(parseNdjson((await body('big/hot.ndjson')).toString('utf8'))).to.have.lengthOf(60_000);
    });

    it('a server refusing the metadata copy leaves the uploaded object in place (without the record count) and logs a warning', async () => {
      const { log, lines } = memoryLogger();
      const sink = await sinkWith({ format: 'ndjson', key: 'big/{rule}.{ext}', part_size_mib: 5, retry: { max_attempts: 1 } }, log);
      for (const batch of bigBatches()) await sink.write(batch);
      server.failNext({ method: 'PUT', url: new RegExp(`^/${bucket}/big/hot\\.ndjson\\?.*x-id=CopyObject`), status: 501, code: 'NotImplemented' });
      await sink.flush();
      const object = await server.object(bucket, 'big/hot.ndjson');
      expect(parseNdjson(object.body.toString('utf8'))).to.have.lengthOf(60_000);
      expect(object.metadata).to.include({ rule: 'hot', 'run-id': RUN_ID }).and.not.have.property('records');
      const warning = lines().find((l) => l.level === 40 && /metadata could not be completed/.test(String(l.msg)));
      expect((warning?.err as { code?: string } | undefined)?.code).to.equal('NotImplemented');
    });

    it('an abort in the middle leaves no object and no pending upload (listed by the server and through the SDK)', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'big/{rule}.{ext}', part_size_mib: 5 });
      for (const batch of bigBatches().slice(0, 5)) await sink.write(batch);
      expect(server.pendingUploads(bucket)).to.have.lengthOf(1);
      await sink.abort();
      expect(server.requests.some((r) => r.method === 'PUT' && r.url.includes(bucket) && /[?&]partNumber=1/.test(r.url)), 'a part was uploaded').to.equal(true);
      expect(await server.keys(bucket)).to.deep.equal([]);
      expect(server.pendingUploads(bucket)).to.deep.equal([]);
      const listed = await server.client.send(new ListMultipartUploadsCommand({ Bucket: bucket }));
      expect(listed.Uploads ?? []).to.deep.equal([]);
    });

    /** Batches of ~2 MiB of NDJSON: with 5 MiB parts the third sends part 1, the fifth part 2, the eighth fills part 3 (which waits for part 2). */
    const manyBatches = (count: number) => ids(0, count).map((b) => csvBatch(ids(b * 10_000, 10_000)));

    /** Writes the batches in the background under the run's signal; the promise never rejects (a cancelled write is expected). */
    function writeInBackground(sink: { sink: Sink }, batches: MatchBatch[], signal: AbortSignal, log: ReturnType<typeof memoryLogger>['log']) {
      return (async () => {
        for (const batch of batches) await sink.sink.write(deliveryBatch('test', [batch]), { signal, log });
      })().catch(() => undefined);
    }

    const requestsOf = (method: string, test: RegExp) => server.requests.filter((r) => r.url.startsWith(`/${bucket}/`) && r.method === method && test.test(r.url));

    for (const waiting of [false, true]) {
      it(`a part cut off in flight that the server stores after the abort (the writer ${waiting ? 'waiting on that part' : 'done'}): the upload is aborted again, nothing is left`, async () => {
        const { log, lines } = memoryLogger();
        const sink = await sinkWith({ format: 'ndjson', key: 'big/{rule}.{ext}', part_size_mib: 5 }, log);
        const run = new AbortController();
        const held = server.holdPartUntilAborted(/[?&]partNumber=2(&|$)/);
        const writing = writeInBackground(sink, manyBatches(waiting ? 10 : 6), run.signal, log);
        await held;
        // Waiting: part 3 fills meanwhile, and the writer waits for part 2 before sending it.
        if (waiting) await new Promise((resolve) => setTimeout(resolve, 500));
        // The run is cancelled (a signal, a deadline): the part's request is cut off, its fate unknown to the target.
        run.abort();
        await writing;
        await sink.abort();
        expect(requestsOf('PUT', /[?&]partNumber=3(&|$)/), 'part 3 was never sent').to.deep.equal([]);
        expect(requestsOf('DELETE', /[?&]uploadId=/), 'aborted, then aborted again once the late part was listed').to.have.lengthOf(2);
        expect(requestsOf('GET', /[?&]uploadId=/), 'asked with ListParts').to.not.deep.equal([]);
        expect(server.pendingUploads(bucket)).to.deep.equal([]);
        expect(await server.keys(bucket)).to.deep.equal([]);
        expect(lines().filter((l) => Number(l.level) >= 40).map((l) => l.msg)).to.deep.equal([]);
      });
    }

    for (const waiting of [false, true]) {
      it(`abort() while a part stalls (the writer ${waiting ? 'waiting on it' : 'done'}): the part is stopped at once, not after idle_timeout, and the upload aborted, the late part too`, async function () {
        // Without stopping the part, abort() waited idle_timeout (40 s here) and its 30 s cleanup budget was gone before the abort was sent.
        this.timeout(20_000);
        const { log, lines } = memoryLogger();
        const sink = await sinkWith({ format: 'ndjson', key: 'big/{rule}.{ext}', part_size_mib: 5, idle_timeout: '40s', retry: { max_attempts: 1 } }, log);
        const held = server.holdPartUntilAborted(/[?&]partNumber=1(&|$)/);
        // Four batches: part 1 goes up, part 2 is not full; six: part 2 is full and waits for part 1.
        const writing = writeInBackground(sink, manyBatches(waiting ? 6 : 4), new AbortController().signal, log);
        await held;
        if (waiting) await new Promise((resolve) => setTimeout(resolve, 300));
        await sink.abort();
        await writing;
        expect(requestsOf('PUT', /[?&]partNumber=2(&|$)/), 'part 2 was never sent').to.deep.equal([]);
        expect(requestsOf('DELETE', /[?&]uploadId=/)).to.have.lengthOf(2);
        expect(server.pendingUploads(bucket)).to.deep.equal([]);
        expect(lines().filter((l) => Number(l.level) >= 40).map((l) => l.msg)).to.deep.equal([]);
      });
    }

    it('ListParts refused after a part was cut off: the upload is aborted again without asking, nothing is left', async () => {
      const { log } = memoryLogger();
      const sink = await sinkWith({ format: 'ndjson', key: 'big/{rule}.{ext}', part_size_mib: 5, retry: { max_attempts: 1 } }, log);
      const run = new AbortController();
      const held = server.holdPartUntilAborted(/[?&]partNumber=2(&|$)/);
      const writing = writeInBackground(sink, manyBatches(6), run.signal, log);
      await held;
      server.failNext({ method: 'GET', url: /[?&]uploadId=/, status: 403, code: 'AccessDenied', times: 2 });
      run.abort();
      await writing;
      await sink.abort();
      expect(requestsOf('GET', /[?&]uploadId=/), 'both ListParts refused').to.have.lengthOf(2);
      expect(requestsOf('DELETE', /[?&]uploadId=/), 'the first abort and one after each refused ListParts').to.have.lengthOf(3);
      expect(server.pendingUploads(bucket)).to.deep.equal([]);
    });

    it('parquet larger than one part, several row groups: reads back whole', async () => {
      const sink = await sinkWith({ format: 'parquet', compression: 'none', key: 'big/{rule}.{ext}', part_size_mib: 5, row_group_size: 20_000 });
      for (const batch of bigBatches()) await sink.write(batch);
      await sink.flush();
      const object = await server.object(bucket, 'big/hot.parquet');
      const file = toArrayBuffer(object.body);
      const metadata = parquetMetadata(file);
      expect(metadata.row_groups.map((g) => Number(g.num_rows))).to.deep.equal([20_000, 20_000, 20_000]);
      expect(object.metadata.records).to.equal('60000');
      const rows = await parquetReadObjects({ file, columns: ['id'] });
      expect(rows.map((r) => r.id)).to.deep.equal(ids(0, 60_000).map((n) => `s${n}`));
    });
  });

  describe('failures', () => {
    it('a missing bucket fails the write with the bucket, the key and the S3 code; nothing is retried', async () => {
      const sink = await sinkWith({ bucket: 'no-such-bucket-here', format: 'ndjson', key: 'k/{rule}.{ext}' });
      await sink.write(csvBatch(ids(1, 2)));
      const err = await sink.flush().then(() => undefined, (e) => e);
      const message = describeError(err);
      expect(message).to.include('s3://no-such-bucket-here/k/hot.ndjson');
      expect(message).to.include('NoSuchBucket');
      expect(message).to.include('create the bucket');
      expect(err.retryable).to.equal(false);
      expect(err.details).to.include({ bucket: 'no-such-bucket-here', key: 'k/hot.ndjson', s3_code: 'NoSuchBucket', status: 404 });
    });

    it('a 500 then a 503 SlowDown are retried, and the object arrives once; the retries are logged', async () => {
      const { log, lines } = memoryLogger();
      const sink = await sinkWith({ format: 'ndjson', key: 'r/{rule}.{ext}' }, log);
      await sink.write(csvBatch(ids(1, 3)));
      server.failNext({ method: 'PUT', url: new RegExp(`/${bucket}/r/`), status: 500, code: 'InternalError' });
      server.failNext({ method: 'PUT', url: new RegExp(`/${bucket}/r/`), status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' });
      await sink.flush();
      expect(parseNdjson((await body('r/hot.ndjson')).toString())).to.have.lengthOf(3);
      const warnings = lines().filter((l) => l.level === 40);
      expect(warnings.map((w) => (w.err as { code: string }).code)).to.deep.equal(['InternalError', 'SlowDown']);
    });

    it('503 SlowDown on every attempt fails with the code after the configured attempts', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'r/{rule}.{ext}', retry: { max_attempts: 2, initial_backoff: '5ms', max_backoff: '10ms' } });
      await sink.write(csvBatch(ids(1, 3)));
      server.failNext({ method: 'PUT', url: new RegExp(`/${bucket}/r/`), status: 503, code: 'SlowDown', times: 5 });
      const err = await sink.flush().then(() => undefined, (e) => e);
      expect(describeError(err)).to.match(/gave up after 2 attempts/);
      expect(describeError(err)).to.include(`s3://${bucket}/r/hot.ndjson`);
      expect(err.code).to.equal('SlowDown');
      expect(await server.keys(bucket)).to.deep.equal([]);
    });

    it('a server that is not there: the error names the bucket and key and says connection refused', async () => {
      const stopped = await startS3Server();
      const endpoint = stopped.endpoint;
      await stopped.stop();
      const sink = await sinkWith({ endpoint, format: 'ndjson', key: 'k/{rule}.{ext}', retry: { max_attempts: 2, initial_backoff: '5ms', max_backoff: '10ms' } });
      await sink.write(csvBatch(ids(1, 2)));
      const err = await sink.flush().then(() => undefined, (e) => e);
      expect(describeError(err)).to.include(`s3://${bucket}/k/hot.ndjson`);
      expect(err.code).to.equal('ECONNREFUSED');
    });

    it('a server that accepts and never answers: each attempt ends at idle_timeout, the error names bucket, key and the timeout', async () => {
      const silent = await stallingServer('answer nothing');
      try {
        const sink = await sinkWith({ endpoint: silent.endpoint, format: 'ndjson', key: 'k/{rule}.{ext}', idle_timeout: '300ms', retry: { max_attempts: 2, initial_backoff: '5ms', max_backoff: '10ms' } });
        await sink.write(csvBatch(ids(1, 2)));
        const started = Date.now();
        const err = await sink.flush().then(() => undefined, (e) => e);
        expect(describeError(err)).to.include(`s3://${bucket}/k/hot.ndjson`).and.include('gave up after 2 attempts');
        expect(err.code).to.match(/Timeout|ETIMEDOUT|ECONNRESET/i);
        // Two attempts at the put; then the check whether it landed after all (HEAD), which stalls alike.
        expect(silent.requests().filter((r) => r.startsWith('PUT '))).to.have.lengthOf(2);
        expect(silent.requests().slice(2).every((r) => r.startsWith('HEAD '))).to.equal(true);
        expect(silent.requests()[0]).to.match(new RegExp(`^PUT /${bucket}/k/hot\\.ndjson[ ?]`));
        // Bounded by idle_timeout, not by the 2-minute default.
        expect(Date.now() - started).to.be.below(20_000);
      } finally {
        await silent.close();
      }
    });

    it('a server that stops reading a part half-way: the upload fails at idle_timeout instead of hanging', async () => {
      const stalled = await stallingServer('stop reading');
      try {
        const sink = await sinkWith({ endpoint: stalled.endpoint, format: 'ndjson', key: 'p/{rule}.{ext}', part_size_mib: 5, idle_timeout: '300ms', retry: { max_attempts: 1 } });
        // About 8 MiB of NDJSON: the first 5 MiB part goes up during the writes, into a server that stopped reading.
        let failure: unknown;
        for (let from = 0; from < 40_000 && failure === undefined; from += 5_000) {
          failure = await sink.write(csvBatch(ids(from, 5_000))).then(() => undefined, (e) => e);
        }
        failure ??= await sink.flush().then(() => undefined, (e) => e);
        expect(describeError(failure)).to.include(`s3://${bucket}/p/hot.ndjson`);
        expect((failure as { code?: string }).code).to.match(/Timeout|ETIMEDOUT|ECONNRESET|EPIPE/i);
        expect(stalled.requests().some((r) => /^(POST|PUT) /.test(r))).to.equal(true);
      } finally {
        await stalled.close();
      }
    });

    it('a part failing while an object is closed early (max_records_per_object), then abort: no object and no pending upload', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'r/{rule}-{part}.{ext}', max_records_per_object: 2, retry: { max_attempts: 1 } });
      server.failNext({ method: 'PUT', url: /partNumber=1/, status: 500, code: 'InternalError' });
      const err = await sink.write(csvBatch(ids(1, 3))).then(() => undefined, (e) => e);
      expect(describeError(err)).to.include(`uploading part 1 of s3://${bucket}/r/hot-1.ndjson`);
      await sink.abort();
      expect(await server.keys(bucket)).to.deep.equal([]);
      expect(server.pendingUploads(bucket)).to.deep.equal([]);
    });

    it('the completion of a multipart object failing at publish: its upload is aborted too, nothing visible, nothing pending', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'm/{rule}-{part}.{ext}', part_size_mib: 5, retry: { max_attempts: 1 } });
      for (let from = 0; from < 40_000; from += 10_000) await sink.write(csvBatch(ids(from, 10_000)));
      expect(server.pendingUploads(bucket)).to.have.lengthOf(1);
      server.failNext({ method: 'POST', url: /uploadId=/, status: 500, code: 'InternalError' });
      const err = await sink.flush().then(() => undefined, (e) => e);
      expect(describeError(err)).to.include(`completing the upload of s3://${bucket}/m/hot-1.ndjson`).and.include('no object of this run was made visible');
      expect(await server.keys(bucket)).to.deep.equal([]);
      expect(server.pendingUploads(bucket)).to.deep.equal([]);
    });

    it('a failure while completing the second object removes the first again: nothing of the run stays visible', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'c/{rule}.{ext}', retry: { max_attempts: 1 } });
      await sink.write(csvBatch(ids(1, 2), 'aaa'));
      await sink.write(csvBatch(ids(3, 2), 'bbb'));
      server.failNext({ method: 'PUT', url: new RegExp(`/${bucket}/c/bbb`), status: 500, code: 'InternalError' });
      const err = await sink.flush().then(() => undefined, (e) => e);
      expect(describeError(err)).to.include(`publishing s3://${bucket}/c/bbb.ndjson`);
      expect(await server.keys(bucket)).to.deep.equal([]);
    });
  });

  describe('a publish whose answer is lost (a proxy between the target and the server)', () => {
    let proxy: AnswerLosingProxy;
    beforeEach(async () => {
      proxy = await startAnswerLosingProxy(server.endpoint);
    });
    afterEach(async () => {
      await proxy.close();
    });

    const EARLIER_RUN = '20261123T120000Z-0000';

    /**
     * Three records with max_records_per_object 2: hot-1 is closed early and goes up as a multipart
     * upload, completed at publish (POST ?uploadId=); a single record is one PutObject at publish.
     */
    const publishes = {
      CompleteMultipartUpload: { records: 3, method: 'POST', url: () => new RegExp(`^/${bucket}/u/hot-1\\.ndjson\\?uploadId=`) },
      PutObject: { records: 1, method: 'PUT', url: () => new RegExp(`^/${bucket}/u/hot-1\\.ndjson\\?x-id=PutObject`) },
    } as const;

    const throughProxy = (retry: { max_attempts: number }) =>
      sinkWith({ endpoint: proxy.endpoint, format: 'ndjson', key: 'u/{rule}-{part}.{ext}', max_records_per_object: 2, retry: { ...retry, initial_backoff: '5ms', max_backoff: '10ms' } });

    for (const [request, { records, method, url }] of Object.entries(publishes)) {
      it(`${request} applied by the server, its answer lost on every attempt: the target finds the object there, complete, and the run succeeds`, async () => {
        const { log, lines } = memoryLogger();
        const sink = await sinkWith({ endpoint: proxy.endpoint, format: 'ndjson', key: 'u/{rule}-{part}.{ext}', max_records_per_object: 2, retry: { max_attempts: 3, initial_backoff: '5ms', max_backoff: '10ms' } }, log);
        await sink.write(csvBatch(ids(1, records)));
        if (request === 'CompleteMultipartUpload') expect(server.pendingUploads(bucket)).to.have.lengthOf(1);
        proxy.loseNext({ method, url: url(), when: 'after the server', times: 3 });
        await sink.flush();
        expect(proxy.lost[0], 'the server applied it').to.include({ applied: true });
        expect(proxy.lost).to.have.lengthOf(3);
        const keys = await server.keys(bucket);
        expect(keys).to.include('u/hot-1.ndjson');
        const object = await server.object(bucket, 'u/hot-1.ndjson');
        expect(object.metadata).to.include({ 'run-id': RUN_ID, records: String(Math.min(records, 2)) });
        expect(parseNdjson(object.body.toString()).map((r) => r.id)).to.deep.equal(ids(1, Math.min(records, 2)).map((n) => `s${n}`));
        expect(server.pendingUploads(bucket)).to.deep.equal([]);
        expect(lines().some((l) => l.level === 40 && /answer to publishing the object was lost/.test(String(l.msg)))).to.equal(true);
      });

      it(`${request} cut before the server on every attempt: an earlier run's object at the same key is kept, nothing pending`, async () => {
        const earlier = await sinkWith({ format: 'ndjson', key: 'u/{rule}-{part}.{ext}' });
        await earlier.write({ ...csvBatch(ids(100, 1)), runId: EARLIER_RUN });
        await earlier.flush();
        const sink = await throughProxy({ max_attempts: 2 });
        await sink.write(csvBatch(ids(1, records)));
        proxy.loseNext({ method, url: url(), when: 'before the server', times: 2 });
        const err = await sink.flush().then(() => undefined, (e) => e);
        expect(describeError(err)).to.include(`publishing s3://${bucket}/u/hot-1.ndjson`).and.include('no object of this run was made visible');
        expect(proxy.lost.map((l) => l.applied)).to.deep.equal([false, false]);
        expect(await server.keys(bucket)).to.deep.equal(['u/hot-1.ndjson']);
        const object = await server.object(bucket, 'u/hot-1.ndjson');
        expect(object.metadata).to.include({ 'run-id': EARLIER_RUN, records: '1' });
        expect(parseNdjson(object.body.toString()).map((r) => r.id)).to.deep.equal(['s100']);
        expect(server.pendingUploads(bucket)).to.deep.equal([]);
      });
    }

    it('CreateMultipartUpload applied, its answer lost: the retry starts another, the first is aborted (the key holds the run id), nothing pending', async () => {
      const { log, lines } = memoryLogger();
      const sink = await sinkWith({ endpoint: proxy.endpoint, format: 'ndjson', key: 'r/{run_id}/{rule}-{part}.{ext}', max_records_per_object: 2, retry: { max_attempts: 3, initial_backoff: '5ms', max_backoff: '10ms' } }, log);
      proxy.loseNext({ method: 'POST', url: new RegExp(`^/${bucket}/r/${RUN_ID}/hot-1\\.ndjson\\?uploads`), when: 'after the server' });
      await sink.write(csvBatch(ids(1, 3)));
      expect(proxy.lost).to.deep.equal([{ request: proxy.lost[0]!.request, applied: true }]);
      expect(server.pendingUploads(bucket), 'only the upload in use is left').to.have.lengthOf(1);
      await sink.flush();
      expect(server.pendingUploads(bucket)).to.deep.equal([]);
      expect(await server.keys(bucket)).to.deep.equal([`r/${RUN_ID}/hot-1.ndjson`, `r/${RUN_ID}/hot-2.ndjson`]);
      expect(parseNdjson((await server.object(bucket, `r/${RUN_ID}/hot-1.ndjson`)).body.toString()).map((r) => r.id)).to.deep.equal(['s1', 's2']);
      expect(lines().some((l) => /aborted an upload that an earlier attempt/.test(String(l.msg)))).to.equal(true);
    });

    it('CreateMultipartUpload applied, its answer lost, a key without the run id: the upload it started is left, with a warning that says what removes it', async () => {
      const { log, lines } = memoryLogger();
      const sink = await sinkWith({ endpoint: proxy.endpoint, format: 'ndjson', key: 'u/{rule}-{part}.{ext}', max_records_per_object: 2, retry: { max_attempts: 3, initial_backoff: '5ms', max_backoff: '10ms' } }, log);
      proxy.loseNext({ method: 'POST', url: new RegExp(`^/${bucket}/u/hot-1\\.ndjson\\?uploads`), when: 'after the server' });
      await sink.write(csvBatch(ids(1, 3)));
      await sink.flush();
      expect(await server.keys(bucket)).to.deep.equal(['u/hot-1.ndjson', 'u/hot-2.ndjson']);
      expect(server.pendingUploads(bucket)).to.have.lengthOf(1);
      expect(lines().some((l) => l.level === 40 && /AbortIncompleteMultipartUpload/.test(String(l.msg)))).to.equal(true);
    });

    it("AbortMultipartUpload applied, its answer lost: the retry's NoSuchUpload counts as aborted, without a warning, nothing pending", async () => {
      const { log, lines } = memoryLogger();
      const sink = await sinkWith({ endpoint: proxy.endpoint, format: 'ndjson', key: 'u/{rule}-{part}.{ext}', max_records_per_object: 2, retry: { max_attempts: 3, initial_backoff: '5ms', max_backoff: '10ms' } }, log);
      await sink.write(csvBatch(ids(1, 3)));
      expect(server.pendingUploads(bucket), 'hot-1 went up as a multipart upload').to.have.lengthOf(1);
      proxy.loseNext({ method: 'DELETE', url: new RegExp(`^/${bucket}/u/hot-1\\.ndjson\\?uploadId=`), when: 'after the server' });
      await sink.abort();
      expect(proxy.lost).to.have.lengthOf(1);
      expect(proxy.lost[0]).to.include({ applied: true });
      expect(server.pendingUploads(bucket)).to.deep.equal([]);
      expect(await server.keys(bucket)).to.deep.equal([]);
      // The lost attempt is retried with a warning, as any; the abort itself did not fail.
      expect(lines().filter((l) => Number(l.level) >= 40).map((l) => l.msg)).to.deep.equal([`aborting the upload of s3://${bucket}/u/hot-1.ndjson failed; trying again`]);
    });

    it("CompleteMultipartUpload applied, its answer lost on every attempt, a server with S3's multipart ETags: the ETag is this upload's, the run succeeds", async () => {
      server.multipartEtags('s3');
      const { log, lines } = memoryLogger();
      const sink = await sinkWith({ endpoint: proxy.endpoint, format: 'ndjson', key: 'u/{rule}-{part}.{ext}', max_records_per_object: 2, retry: { max_attempts: 2, initial_backoff: '5ms', max_backoff: '10ms' } }, log);
      await sink.write(csvBatch(ids(1, 3)));
      proxy.loseNext({ method: 'POST', url: publishes.CompleteMultipartUpload.url(), when: 'after the server', times: 2 });
      await sink.flush();
      const head = await server.client.send(new HeadObjectCommand({ Bucket: bucket, Key: 'u/hot-1.ndjson' }));
      const partMd5 = createHash('md5').update(await body('u/hot-1.ndjson')).digest();
      expect(head.ETag, 'one part: MD5 of its MD5, -1').to.equal(`"${createHash('md5').update(partMd5).digest('hex')}-1"`);
      expect(parseNdjson((await body('u/hot-1.ndjson')).toString()).map((r) => r.id)).to.deep.equal(['s1', 's2']);
      expect(server.pendingUploads(bucket)).to.deep.equal([]);
      expect(lines().some((l) => l.level === 40 && /answer to publishing the object was lost/.test(String(l.msg)))).to.equal(true);
    });

    it('CompleteMultipartUpload applied, its answer lost on every attempt, the key holding a multipart object of other parts (same run, same size): not taken, the run fails, nothing left', async () => {
      server.multipartEtags('other');
      const sink = await throughProxy({ max_attempts: 2 });
      await sink.write(csvBatch(ids(1, 3)));
      proxy.loseNext({ method: 'POST', url: publishes.CompleteMultipartUpload.url(), when: 'after the server', times: 2 });
      const err = await sink.flush().then(() => undefined, (e) => e);
      expect(err, 'the flush failed').to.be.instanceOf(Error);
      expect(describeError(err)).to.include(`publishing s3://${bucket}/u/hot-1.ndjson`).and.include('no object of this run was made visible');
      expect(proxy.lost, 'both attempts reached the server').to.have.lengthOf(2);
      expect(await server.keys(bucket), "this run's object at the key is removed again").to.deep.equal([]);
      expect(server.pendingUploads(bucket)).to.deep.equal([]);
    });

    it('CompleteMultipartUpload applied, its answer lost once, its retries finding the upload gone: the object is there once, complete, and the run succeeds', async () => {
      const sink = await throughProxy({ max_attempts: 3 });
      await sink.write(csvBatch(ids(1, 3)));
      proxy.loseNext({ method: 'POST', url: publishes.CompleteMultipartUpload.url(), when: 'after the server' });
      // The lost attempt completed the upload: s3rver answers the retries 500 (other servers may answer otherwise).
      await sink.flush();
      expect(proxy.lost).to.have.lengthOf(1);
      expect(await server.keys(bucket)).to.deep.equal(['u/hot-1.ndjson', 'u/hot-2.ndjson']);
      expect(parseNdjson((await body('u/hot-1.ndjson')).toString()).map((r) => r.id)).to.deep.equal(['s1', 's2']);
      expect(server.pendingUploads(bucket)).to.deep.equal([]);
    });

    for (const [request, { records, method, url }] of Object.entries(publishes)) {
      it(`${request} cut every time, another object of this run with the same size at the key: not taken for this one, the run fails, nothing pending`, async () => {
        // The same records shape with other ids: the same bytes count, other bytes.
        const other = await sinkWith({ format: 'ndjson', key: 'other/{rule}-{part}.{ext}', max_records_per_object: 2 });
        await other.write(csvBatch(ids(7, records)));
        await other.flush();
        const impostor = await body('other/hot-1.ndjson');
        const sink = await throughProxy({ max_attempts: 2 });
        await sink.write(csvBatch(ids(1, records)));
        await server.client.send(new PutObjectCommand({ Bucket: bucket, Key: 'u/hot-1.ndjson', Body: impostor, Metadata: { 'run-id': RUN_ID } }));
        proxy.loseNext({ method, url: url(), when: 'before the server', times: 2 });
        const err = await sink.flush().then(() => undefined, (e) => e);
        expect(err, 'the flush failed').to.be.instanceOf(Error);
        expect(describeError(err)).to.include(`publishing s3://${bucket}/u/hot-1.ndjson`);
        expect(proxy.lost.map((l) => l.applied)).to.deep.equal([false, false]);
        expect(server.pendingUploads(bucket)).to.deep.equal([]);
      });
    }
  });

  describe('checksums and check()', () => {
    for (const setting of ['when_supported', 'when_required'] as const) {
      it(`request_checksum_calculation: ${setting}: s3rver takes the upload, single and multipart`, async () => {
        const sink = await sinkWith({ format: 'ndjson', key: `cs/{rule}-{part}.{ext}`, request_checksum_calculation: setting, max_records_per_object: 30_000, part_size_mib: 5 });
        for (const b of ids(0, 4)) await sink.write(csvBatch(ids(b * 10_000, 10_000)));
        await sink.write(csvBatch(ids(40_000, 3), 'small'));
        await sink.flush();
        const keys = await server.keys(bucket);
        expect(keys).to.deep.equal(['cs/hot-1.ndjson', 'cs/hot-2.ndjson', 'cs/small-1.ndjson']);
        expect(parseNdjson((await body('cs/hot-1.ndjson')).toString())).to.have.lengthOf(30_000);
        // Uploads that carry bytes (a CopyObject setting metadata carries none).
        const uploads = server.requests.filter((r) => r.method === 'PUT' && r.url.includes(`/${bucket}/cs/`) && r.headers['x-amz-copy-source'] === undefined);
        const withChecksum = uploads.filter((r) => r.headers['x-amz-checksum-crc32'] !== undefined);
        if (setting === 'when_supported') expect(withChecksum.length).to.equal(uploads.length);
        else expect(withChecksum).to.deep.equal([]);
      });
    }

    it('the default for a custom endpoint sends no checksum headers', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'd/{rule}.{ext}' });
      await sink.write(csvBatch(ids(1, 2)));
      await sink.flush();
      const uploads = server.requests.filter((r) => r.method === 'PUT' && r.url.includes(`/${bucket}/d/`));
      expect(uploads).to.have.lengthOf(1);
      expect(Object.keys(uploads[0]!.headers).filter((h) => h.startsWith('x-amz-checksum') || h === 'content-encoding')).to.deep.equal([]);
    });

    it('check(): a HeadBucket answered 403 (no body, so no S3 code) says Forbidden, the credentials or their permission, and what to check', async () => {
      const sink = await sinkWith({});
      server.failNext({ method: 'HEAD', url: new RegExp(`^/${bucket}/?$`), status: 403, code: 'Forbidden', body: false });
      const err = await Promise.resolve(sink.check()).then(() => undefined, (e) => e);
      expect(err?.code).to.equal('Forbidden');
      const message = describeError(err);
      expect(message).to.match(new RegExp(`^checking bucket s3://${bucket}/: Forbidden \\(HTTP 403\\); the credentials were refused or lack permission`));
      expect(message).to.include('s3:ListBucket').and.include('region').and.include('endpoint');
      expect(message).not.to.match(/Unknown/);
      expect(err.details).to.include({ status: 403, s3_code: 'Forbidden' });
    });

    it('an upload answered 403 without a body says Forbidden and names s3:PutObject', async () => {
      const sink = await sinkWith({ format: 'ndjson', key: 'f/{rule}.{ext}' });
      await sink.write(csvBatch(ids(1, 2)));
      server.failNext({ method: 'PUT', url: new RegExp(`^/${bucket}/f/`), status: 403, code: 'Forbidden', body: false });
      const err = await sink.flush().then(() => undefined, (e) => e);
      expect(err?.code).to.equal('Forbidden');
      const message = describeError(err);
      expect(message).to.include(`uploading s3://${bucket}/f/hot.ndjson: Forbidden (HTTP 403)`).and.include('s3:PutObject');
      expect(message).not.to.match(/Unknown/);
      expect(await server.keys(bucket)).to.deep.equal([]);
    });

    it('check() does a HeadBucket and says what it found; a missing bucket is named', async () => {
      const ok = await sinkWith({});
      expect(await ok.check()).to.equal(`bucket s3://${bucket}/ reachable at ${server.endpoint}, credentials accepted; checksums when_required`);
      const missing = await sinkWith({ bucket: 'not-a-bucket' });
      const err = await Promise.resolve(missing.check()).then(() => undefined, (e) => e);
      expect(describeError(err)).to.match(/checking bucket s3:\/\/not-a-bucket\/: NotFound \(HTTP 404\); no such bucket: create it, or fix the target's "bucket"$/);
      expect(describeError(err)).to.not.include('UnknownError');
    });
  });
});

function toArrayBuffer(bytes: Buffer): ArrayBuffer {
  return bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length) as ArrayBuffer;
}

/**
 * An HTTP server that accepts connections and then fails to behave: 'answer nothing' reads every
 * request and never replies; 'stop reading' reads the request head and a little of its body,
 * then stops reading. Remembers each request line.
 */
async function stallingServer(how: 'answer nothing' | 'stop reading'): Promise<{ endpoint: string; requests(): string[]; close(): Promise<void> }> {
  const { createServer } = await import('node:net');
  const sockets = new Set<import('node:net').Socket>();
  const lines: string[] = [];
  const server = createServer((socket) => {
    sockets.add(socket);
    let read = 0;
    socket.on('data', (chunk: Buffer) => {
      // Nothing is ever answered, so a connection carries one request: its first line is the request line.
      if (read === 0) lines.push(chunk.toString('latin1').split('\r\n')[0]!);
      read += chunk.length;
      if (how === 'stop reading' && read > 64 * 1024) socket.pause();
    });
    socket.on('error', () => {});
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests: () => lines,
    close: async () => {
      for (const socket of sockets) socket.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
