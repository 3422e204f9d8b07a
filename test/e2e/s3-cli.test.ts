import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { expect } from 'chai';
import { parquetMetadata, parquetReadObjects } from 'hyparquet';
import { loadConfig } from '../../src/config/load-config.js';
import { checkConnections, checkTable } from '../../src/pipeline/check.js';
import { freshDirPerTest, memoryLogger, parseNdjson, runCli, startCli, writeFiles } from '../helpers.js';
import { startS3Server, type TestS3Server } from '../support/s3-server.js';

const SECRET = `tp-e2e-${randomBytes(8).toString('hex')}`;

/** s3rver checks the access key, not the signature: any secret passes, so the test can plant its own and look for leaks. */
const ENV = { S3_KEY_ID: 'S3RVER', S3_SECRET: SECRET };

const CSV = ['id,value,seen,status', '1,1500,2026-11-24T08:00:00Z,active', '2,20,2026-11-24T08:01:00Z,active', '3,2500.5,,offline', '4,3000,2026-11-24T08:03:00Z,'].join('\n') + '\n';

function configYaml(server: TestS3Server | { endpoint: string }, bucket: string, extra = ''): string {
  return `datasources:
  sensors:
    type: csv
    path: sensors.csv
    columns: { value: number, seen: timestamp }
processing_rules:
  - { name: high, threshold_field: value, threshold_type: greater_than, threshold_value: 1000, export_targets: [lake, local] }
export_targets:
  lake:
    type: s3
    bucket: ${bucket}
    endpoint: ${server.endpoint}
    force_path_style: true
    format: parquet
    access_key_id: \${S3_KEY_ID}
    secret_access_key: "\${S3_SECRET}"
    retry: { max_attempts: 2, initial_backoff: 10ms, max_backoff: 20ms }
${extra}  local:
    type: file
    path: out/{rule}.ndjson
`;
}

/** The JSON log lines of a run's stderr. */
function logLines(stderr: string): Record<string, any>[] {
  return stderr
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}

describe('processor CLI with an S3 target (s3rver on loopback)', function () {
  this.timeout(60_000);
  let dir: string;
  let server: TestS3Server;
  let bucket: string;
  freshDirPerTest((d) => (dir = d));
  before(async () => {
    server = await startS3Server();
  });
  after(async () => {
    await server.stop();
  });
  afterEach(() => server.clearFaults());
  beforeEach(async () => {
    bucket = `e2e-${randomBytes(5).toString('hex')}`;
    await server.createBucket(bucket);
  });

  const localRecords = () => parseNdjson(readFileSync(path.join(dir, 'out', 'high.ndjson'), 'utf8'));

  it('exports the matches as Parquet under the default Hive-style key, typed, with the file target beside it', async () => {
    writeFiles(dir, { 'c.yaml': configYaml(server, bucket), 'sensors.csv': CSV });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir, env: ENV });
    expect(result.code, result.stderr).to.equal(0);
    const keys = await server.keys(bucket);
    expect(keys).to.have.lengthOf(1);
    expect(keys[0]).to.match(/^alerts\/rule=high\/date=\d{4}-\d{2}-\d{2}\/\d{8}T\d{6}Z-[0-9a-f]+-1\.parquet$/);
    const object = await server.object(bucket, keys[0]!);
    expect(object.metadata).to.include({ rule: 'high', records: '3', format: 'parquet', datasource: 'sensors' });
    const file = object.body.buffer.slice(object.body.byteOffset, object.body.byteOffset + object.body.length) as ArrayBuffer;
    const rows = await parquetReadObjects({ file });
    expect(rows.map((r) => [r.id, r.value, r.seen instanceof Date ? r.seen.toISOString() : r.seen, r.status])).to.deep.equal([
      ['1', 1500, '2026-11-24T08:00:00.000Z', 'active'],
      ['3', 2500.5, null, 'offline'],
      ['4', 3000, '2026-11-24T08:03:00.000Z', null],
    ]);
    expect(parquetMetadata(file).schema.map((e) => e.name)).to.include.members(['_rule', '_datasource', '_run_id', '_matched_at']);
    expect(rows[0]!._run_id).to.equal(object.metadata['run-id']);
    expect(localRecords()).to.have.lengthOf(3);
    expect(result.stdout + result.stderr).not.to.include(SECRET);
  });

  it('a missing bucket fails that target with bucket, key and NoSuchBucket, exit 1; the file target still gets its data', async () => {
    writeFiles(dir, { 'c.yaml': configYaml(server, 'no-such-bucket'), 'sensors.csv': CSV });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir, env: ENV });
    expect(result.code, result.stderr).to.equal(1);
    const failure = logLines(result.stderr).find((l) => l.msg === 'export target failed');
    expect(failure, result.stderr).to.not.equal(undefined);
    expect(failure!.target).to.equal('lake');
    expect(failure!.err.code).to.equal('NoSuchBucket');
    expect(failure!.err.message).to.match(/s3:\/\/no-such-bucket\/alerts\/rule=high\/date=[\d-]+\/[^ ]+-1\.parquet: NoSuchBucket \(HTTP 404\); create the bucket/);
    const summary = logLines(result.stderr).find((l) => l.msg === 'run summary')!;
    expect(summary.rules.high).to.include({ matched: 3, exported: 3, failed: 3 });
    expect(localRecords()).to.have.lengthOf(3);
    expect(result.stdout + result.stderr).not.to.include(SECRET);
  });

  it('a server answering 500 and then 503 SlowDown: the target fails after its retries with the code, exit 1; the file target still gets its data', async () => {
    writeFiles(dir, { 'c.yaml': configYaml(server, bucket), 'sensors.csv': CSV });
    server.failNext({ url: new RegExp(`^/${bucket}/`), status: 500, code: 'InternalError' });
    server.failNext({ url: new RegExp(`^/${bucket}/`), status: 503, code: 'SlowDown', message: 'Please reduce your request rate.' });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir, env: ENV });
    expect(result.code, result.stderr).to.equal(1);
    const lines = logLines(result.stderr);
    expect(lines.filter((l) => l.level === 'warn' && /trying again/.test(l.msg)).map((l) => l.err.code)).to.deep.equal(['InternalError']);
    const failure = lines.find((l) => l.msg === 'export target failed')!;
    expect(failure.target).to.equal('lake');
    expect(failure.err.code).to.equal('SlowDown');
    expect(failure.err.message).to.include(`s3://${bucket}/alerts/rule=high/`).and.include('gave up after 2 attempts');
    expect(await server.keys(bucket)).to.deep.equal([]);
    expect(localRecords()).to.have.lengthOf(3);
  });

  it('a stopped server: connection refused, naming the target and the object; exit 1; the file target still gets its data', async () => {
    const gone = await startS3Server();
    const endpoint = gone.endpoint;
    await gone.stop();
    writeFiles(dir, { 'c.yaml': configYaml({ endpoint }, bucket), 'sensors.csv': CSV });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir, env: ENV });
    expect(result.code, result.stderr).to.equal(1);
    const failure = logLines(result.stderr).find((l) => l.msg === 'export target failed')!;
    expect(failure.target).to.equal('lake');
    expect(failure.err.code).to.equal('ECONNREFUSED');
    expect(failure.err.message).to.include(`s3://${bucket}/alerts/rule=high/`);
    expect(localRecords()).to.have.lengthOf(3);
  });

  it('Ctrl-C in the middle of a multipart upload: exit 130, no object and no pending upload left', async () => {
    const rows = ['id,value,seen,status'];
    for (let i = 0; i < 300_000; i++) rows.push(`${i},${1001 + (i % 5000)},2026-11-24T08:00:00Z,active with some padding text ${i}`);
    const yaml = configYaml(server, bucket, '    part_size_mib: 5\n').replace('format: parquet', 'format: ndjson');
    writeFiles(dir, { 'c.yaml': yaml, 'sensors.csv': rows.join('\n') + '\n' });
    const cli = startCli(['--config', 'c.yaml'], { cwd: dir, env: ENV });
    const deadline = Date.now() + 20_000;
    while (!server.pendingUploads(bucket).some((u) => u.parts > 0)) {
      if (Date.now() > deadline) throw new Error('no part was uploaded');
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    cli.child.kill('SIGINT');
    const result = await cli.done;
    expect(result.code, result.stderr.slice(-2000)).to.equal(130);
    expect(await server.keys(bucket)).to.deep.equal([]);
    expect(server.pendingUploads(bucket)).to.deep.equal([]);
  });

  it('Ctrl-C while the objects are being made visible: the process waits past the 10 s grace until all are, never leaving half the set', async function () {
    this.timeout(60_000);
    const yaml = configYaml(server, bucket, "    max_records_per_object: 1\n    key: 'o/{rule}-{part}.{ext}'\n").replace('format: parquet', 'format: ndjson');
    writeFiles(dir, { 'c.yaml': yaml, 'sensors.csv': CSV });
    // Three objects: the first two go up as multipart uploads as they fill, the third is put at publish, on a server taking 11 s over it.
    const slowPut = server.delayNext('PUT', new RegExp(`^/${bucket}/o/high-3\\.ndjson\\?x-id=PutObject`), 11_000);
    const cli = startCli(['--config', 'c.yaml'], { cwd: dir, env: ENV });
    await slowPut;
    cli.child.kill('SIGINT');
    const result = await cli.done;
    expect(result.code, result.stderr.slice(-2000)).to.equal(130);
    expect(await server.keys(bucket)).to.deep.equal(['o/high-1.ndjson', 'o/high-2.ndjson', 'o/high-3.ndjson']);
    expect(server.pendingUploads(bucket)).to.deep.equal([]);
    const lines = logLines(result.stderr);
    expect(lines.some((l) => /waiting for output being made visible or undone/.test(l.msg))).to.equal(true);
    // The run ended by itself once its objects were visible: not called stuck.
    expect(lines.filter((l) => /did not stop in time/.test(l.msg))).to.deep.equal([]);
    const summary = lines.find((l) => l.msg === 'run summary');
    expect(summary?.targets?.lake, result.stderr.slice(-2000)).to.deep.include({ ok: true, records: 3 });
  });

  it('credentials from the environment only (no keys in the YAML) work', async () => {
    const yaml = configYaml(server, bucket).replace(/    access_key_id:.*\n    secret_access_key:.*\n/, '');
    expect(yaml).not.to.include('access_key_id');
    writeFiles(dir, { 'c.yaml': yaml, 'sensors.csv': CSV });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir, env: { AWS_ACCESS_KEY_ID: 'S3RVER', AWS_SECRET_ACCESS_KEY: SECRET } });
    expect(result.code, result.stderr).to.equal(0);
    expect(await server.keys(bucket)).to.have.lengthOf(1);
  });

  it('--validate refuses a key without {part} when max_records_per_object is set, snappy for a text format, and a timeout of 0', async () => {
    const yaml = configYaml(server, bucket, '    max_records_per_object: 10\n    key: "{rule}.{ext}"\n    idle_timeout: 0s\n').replace('format: parquet', 'format: csv\n    compression: snappy');
    writeFiles(dir, { 'c.yaml': yaml, 'sensors.csv': CSV });
    const result = await runCli(['--config', 'c.yaml', '--validate'], { cwd: dir, env: ENV });
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(/c\.yaml:\d+:\d+: export_targets\.lake\.key: max_records_per_object splits an export into several objects: put \{part\} in the key/);
    expect(result.stderr).to.match(/export_targets\.lake\.compression: snappy is for Parquet; format csv takes gzip or none/);
    expect(result.stderr).to.match(/c\.yaml:\d+:\d+: export_targets\.lake\.idle_timeout: must be more than 0/);
  });

  it('--validate refuses a key template over 1,024 bytes of UTF-8 even before values are filled in, naming the limit', async () => {
    const yaml = configYaml(server, bucket, `    key: "{rule}/${'é'.repeat(510)}-{part}.{ext}"\n`);
    writeFiles(dir, { 'c.yaml': yaml, 'sensors.csv': CSV });
    const result = await runCli(['--config', 'c.yaml', '--validate'], { cwd: dir, env: ENV });
    expect(result.code, result.stderr).to.equal(2);
    // "/" + 1,020 bytes + "-1.parquet", with an empty {rule}: 1,031 bytes.
    expect(result.stderr).to.match(/c\.yaml:\d+:\d+: export_targets\.lake\.key: .*1031 bytes.* S3 refuses keys over 1024 bytes.*shorten/);
  });

  it('the connection check (--check) reports the bucket reachable, and a missing bucket FAILED, without the secret', async () => {
    const yaml = configYaml(server, bucket).replace('  local:\n', `  missing:\n    type: s3\n    bucket: not-there\n    endpoint: ${server.endpoint}\n    force_path_style: true\n    secret_access_key: "\${S3_SECRET}"\n    access_key_id: S3RVER\n  local:\n`);
    writeFiles(dir, { 'c.yaml': yaml, 'sensors.csv': CSV });
    const config = await loadConfig(path.join(dir, 'c.yaml'), { env: ENV });
    const { log, lines } = memoryLogger();
    const results = await checkConnections(config, log, new AbortController().signal);
    const lake = results.find((r) => r.name === 'lake')!;
    expect(lake).to.include({ ok: true, type: 's3' });
    expect(lake.detail).to.equal(`bucket s3://${bucket}/ reachable at ${server.endpoint}, credentials accepted; checksums when_required`);
    const missing = results.find((r) => r.name === 'missing')!;
    expect(missing.ok).to.equal(false);
    expect(missing.detail).to.include('s3://not-there/').and.include('NotFound (HTTP 404)');
    const table = checkTable(results);
    expect(table).to.match(/lake\s+target\s+s3\s+ok\s+\d+ ms\s+bucket s3:\/\//);
    expect(table).to.match(/missing\s+target\s+s3\s+FAILED/);
    expect(table + JSON.stringify(lines())).not.to.include(SECRET);
  });
});
