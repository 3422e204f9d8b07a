import type { S3Client } from '@aws-sdk/client-s3';
import type { CreateContext, DeliveryBatch, OperationContext, Sink, SinkSpec } from '../types.js';
import { duration, retryPolicyOf, type DeliveryConfig, type RetryPolicy } from '../../src/delivery/policy.js';
import { whileExitHeld } from '../../src/delivery/exit-hold.js';
import { CancelledError, ConnectorError, serializeError, wrapError } from '../../src/errors.js';
import { parseDuration } from '../../src/rules/duration.js';
import { redactUrl } from '../../src/util/redact.js';
import { toWellFormed } from '../../src/template/escape.js';
import { parseTemplate } from '../../src/template/parse.js';
import { templateFor, templateIssues, type CompileOptions, type RunValues, type Template } from '../../src/template/template.js';
import { checksumDefault, createS3Client, DEFAULT_CONNECT_TIMEOUT, DEFAULT_IDLE_TIMEOUT, s3Call, s3Url, type ChecksumSetting } from './s3-client.js';
import { extensionOf, type S3Format } from './s3-content.js';
import type { PendingObject } from './s3-object.js';
import { ObjectSeries } from './s3-series.js';

export interface S3SinkConfig extends DeliveryConfig {
  type: 's3';
  bucket: string;
  key?: string;
  prefix?: string;
  format?: S3Format;
  compression?: 'gzip' | 'snappy' | 'none';
  region?: string;
  endpoint?: string;
  force_path_style?: boolean;
  access_key_id?: string;
  secret_access_key?: string;
  session_token?: string;
  request_checksum_calculation?: ChecksumSetting;
  response_checksum_validation?: ChecksumSetting;
  connect_timeout?: string;
  idle_timeout?: string;
  max_records_per_object?: number;
  part_size_mib?: number;
  row_group_size?: number;
  include_metadata?: boolean;
}

/** Hive-style partitions (rule=..., date=...), which Athena, Spark, DuckDB and Trino read as columns. */
export const DEFAULT_KEY = 'alerts/rule={rule}/date={date}/{run_id}-{part}.{ext}';
const DEFAULT_FORMAT: S3Format = 'json';
const DEFAULT_PART_SIZE_MIB = 8;
/**
 * A row group is encoded in memory as a whole, so its size sets part of the peak: 20,000 rather
 * than 50,000 took about 15 MiB off it; below 20,000 the peak hardly falls while groups compress
 * and scan a little worse (docs/parquet-writers.md#what-hyparquet-writer-costs-in-memory).
 */
const DEFAULT_ROW_GROUP_SIZE = 20_000;

/** S3 refuses a key longer than this many bytes of UTF-8. */
const MAX_KEY_BYTES = 1024;

/** The key is rendered once per batch: run-level names only, each value kept inside its one "folder" level. */
const KEY_TEMPLATE: CompileOptions = { context: 'key', names: ['rule', 'datasource', 'date', 'time', 'run_id', 'part'], fields: false, what: 'the key' };

const CHECKSUM_SCHEMA = (what: string) => ({
  type: 'string',
  enum: ['when_supported', 'when_required'],
  description:
    `${what}. when_supported: on every request that allows it (the SDK's default); when_required: only where the S3 API demands it. ` +
    'Default: when_required with a custom endpoint (MinIO, Ceph, R2, Garage and others refuse or mishandle the checksums recent SDKs add), when_supported on AWS.',
  examples: ['when_required'],
});

export const s3Sink: SinkSpec<S3SinkConfig> = {
  kind: 'target',
  type: 's3',
  summary: 'Writes matches as Parquet, CSV, JSON or NDJSON objects to an S3 bucket (AWS or S3-compatible), made visible atomically at the end of each run.',
  // Objects stream their records as they come; large writes keep the number of requests low.
  batching: { batch_size: 10_000, batch_bytes: 8 * 1024 * 1024, linger: '0s', max_in_flight: 4 },
  configSchema: {
    type: 'object',
    required: ['bucket'],
    properties: {
      bucket: { type: 'string', minLength: 1, description: 'Bucket name. The bucket must exist.', examples: ['alerts-archive'] },
      key: {
        type: 'string',
        minLength: 1,
        default: DEFAULT_KEY,
        description:
          'Object key template: {rule}, {datasource}, {date} (UTC YYYY-MM-DD), {time} (UTC HHmmss), {run_id}, {part} (1, 2, ... when an export is split) ' +
          'and {ext} (the extension of the format: parquet, csv, json, ndjson, csv.gz...; {format} is the same) are filled in. ' +
          'Values cannot add a "/" level. {part} is needed when max_records_per_object is set.',
        examples: [DEFAULT_KEY, '{rule}/{date}/{run_id}.{ext}'],
      },
      prefix: { type: 'string', description: 'Text put before every key, as written: no placeholders (a brace is a brace).', examples: ['threshold/'] },
      format: {
        type: 'string',
        enum: ['parquet', 'csv', 'json', 'ndjson'],
        default: DEFAULT_FORMAT,
        description: 'Object format: Parquet (typed columns from the source\'s fields), CSV with a header, one JSON array, or NDJSON (one record per line).',
      },
      compression: {
        type: 'string',
        enum: ['gzip', 'snappy', 'none'],
        description: 'Parquet: snappy (default), gzip or none, inside the file. csv / json / ndjson: gzip or none (default); gzip adds .gz to {ext}.',
        examples: ['gzip'],
      },
      region: { type: 'string', description: 'Bucket region; default AWS_REGION, else us-east-1 (requests follow a region redirect).', examples: ['eu-west-1'] },
      endpoint: {
        type: 'string',
        pattern: '^https?://',
        description: 'S3-compatible endpoint URL (MinIO, Ceph, Cloudflare R2, Garage...); leave out for AWS.',
        examples: ['http://127.0.0.1:9000'],
      },
      force_path_style: {
        type: 'boolean',
        default: false,
        description: 'Address the bucket in the path (http://host/bucket/key) instead of the host name; most S3-compatible servers need it.',
      },
      access_key_id: {
        type: 'string',
        description: 'Access key. Optional: by default credentials come from the environment (AWS_ACCESS_KEY_ID...), a profile (AWS_PROFILE) or an instance role. If set, use ${VAR}.',
        examples: ['${S3_ACCESS_KEY_ID}'],
      },
      secret_access_key: { type: 'string', description: 'Secret key, with access_key_id; write ${VAR}, never the secret itself.', examples: ['${S3_SECRET_ACCESS_KEY}'] },
      session_token: { type: 'string', description: 'Session token of temporary credentials, with access_key_id.', examples: ['${AWS_SESSION_TOKEN}'] },
      request_checksum_calculation: CHECKSUM_SCHEMA('When uploads carry a checksum'),
      response_checksum_validation: CHECKSUM_SCHEMA('When responses are checked against their checksum'),
      connect_timeout: duration('Longest wait for a TCP connection to the endpoint', '5s', DEFAULT_CONNECT_TIMEOUT),
      idle_timeout: duration(
        'Longest a request may go without a byte sent or received (a server that accepts and never answers, or stops reading a part half-way); then it fails and is retried',
        '30s',
        DEFAULT_IDLE_TIMEOUT,
      ),
      max_records_per_object: {
        type: 'integer',
        minimum: 1,
        description: 'Split a rule\'s export into objects of at most this many records, numbered by {part}. Default: no limit.',
        examples: [1000000],
      },
      part_size_mib: {
        type: 'integer',
        minimum: 5,
        maximum: 512,
        default: DEFAULT_PART_SIZE_MIB,
        description: 'Size of each part of a multipart upload, in MiB. Memory holds about two parts per object being written; an object may have 10,000 parts.',
      },
      row_group_size: {
        type: 'integer',
        minimum: 1,
        default: DEFAULT_ROW_GROUP_SIZE,
        description: 'Parquet: records per row group (the last group of an object may hold fewer; a batch is split across groups), and at most 1,000,000 values (records times fields) whatever this says, so records with many fields make smaller groups. Larger groups compress and scan a little better, and cost more memory while each is encoded.',
      },
    },
  },
  validate(config) {
    const issues = templateIssues(keyTemplateText(config), KEY_TEMPLATE, 'key');
    if (issues.length === 0 && config.max_records_per_object !== undefined && !keyTemplate(config).runNames.includes('part')) {
      issues.push({ key: 'key', message: 'max_records_per_object splits an export into several objects: put {part} in the key so each gets its own' });
    }
    if (issues.length === 0) issues.push(...keyLengthIssues(config));
    const format = config.format ?? DEFAULT_FORMAT;
    if (config.compression === 'snappy' && format !== 'parquet') {
      issues.push({ key: 'compression', message: `snappy is for Parquet; format ${format} takes gzip or none` });
    }
    for (const key of ['connect_timeout', 'idle_timeout'] as const) {
      // 0 would turn the timeout off, which is never what a stalled server should get.
      const ms = config[key] === undefined ? undefined : parseDuration(config[key]);
      if (ms === 0) issues.push({ key, message: 'must be more than 0 (a timeout of 0 would wait for ever)' });
      if (ms !== undefined && ms > MAX_TIMER_MS) issues.push({ key, message: 'must be at most 24 days (a longer timer fires at once)' });
    }
    if ((config.access_key_id === undefined) !== (config.secret_access_key === undefined)) {
      issues.push({
        key: config.access_key_id === undefined ? 'secret_access_key' : 'access_key_id',
        message: 'access_key_id and secret_access_key go together; or leave both out to use the environment (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY) or a profile',
      });
    }
    return issues;
  },
  async create(config, ctx) {
    return new S3Sink(config, await createS3Client(config), ctx);
  },
};

/**
 * The key template as the template engine reads it: the prefix before it, and {ext} / {format}
 * replaced by the format's extension (they are not run-level names of other targets).
 */
function keyTemplateText(config: S3SinkConfig): string {
  const escape = (literal: string) => literal.replace(/\{/g, '{{').replace(/\}/g, '}}');
  // The prefix is text as written: a brace in it is a brace, never a placeholder.
  const prefix = escape(config.prefix ?? '');
  const key = config.key ?? DEFAULT_KEY;
  const { parts, problems } = parseTemplate(key, false);
  if (problems.length > 0) return prefix + key;
  const extension = extensionOf({ format: config.format ?? DEFAULT_FORMAT, compression: compressionOf(config) });
  return prefix + parts
    .map((part) => {
      if (part.kind === 'literal') return escape(part.text);
      if ((part.name === 'ext' || part.name === 'format') && part.fallback === undefined) return escape(extension);
      return `{${part.raw}}`;
    })
    .join('');
}

/**
 * The server an endpoint names, spelled one way: `HTTP://Host:80/` and `http://host` are one
 * server, so two targets writing there claim keys against each other. Two names for one host (an
 * address and a DNS name) are not recognised.
 */
export function endpointIdentity(endpoint: string | undefined): string {
  if (endpoint === undefined) return 'aws';
  try {
    const u = new URL(endpoint);
    const path = u.pathname.replace(/\/+$/, '');
    return `${u.protocol}//${u.host}${path}`;
  } catch {
    return endpoint;
  }
}

function keyTemplate(config: S3SinkConfig): Template {
  return templateFor(keyTemplateText(config), KEY_TEMPLATE);
}

/** Values that make the shortest key: empty names, and {date}, {time} and {part} as short as they come. */
const SHORTEST_VALUES: RunValues = { rule: '', datasource: '', runId: '', matchedAt: '2000-01-01T00:00:00.000Z', part: 1 };

/** A key template that is too long for S3 before any value is filled in would fail every run: --validate says so. */
function keyLengthIssues(config: S3SinkConfig): { key: string; message: string }[] {
  const bytes = Buffer.byteLength(keyTemplate(config).render(SHORTEST_VALUES));
  if (bytes <= MAX_KEY_BYTES) return [];
  const prefixTooLong = Buffer.byteLength(config.prefix ?? '') > MAX_KEY_BYTES;
  return [
    {
      key: prefixTooLong ? 'prefix' : 'key',
      message: `the key is ${bytes} bytes of UTF-8 (prefix included) with every value empty, and S3 refuses keys over ${MAX_KEY_BYTES} bytes; shorten the ${prefixTooLong ? 'prefix' : 'key template'}`,
    },
  ];
}

/** Refused before any byte of the object is sent: S3 would refuse it only at the upload. */
function keyTooLong(target: string, bucket: string, key: string, bytes: number): ConnectorError {
  const start = [...key].slice(0, 60).join('');
  return new ConnectorError(
    `export target "${target}": the key s3://${bucket}/${start}… is ${bytes} bytes of UTF-8, and S3 refuses keys over ${MAX_KEY_BYTES} bytes; ` +
      'shorten the key template (key, prefix) or the values filled into it (the rule and datasource names)',
    { code: 'KEY_TOO_LONG', retryable: false, details: { bucket, key_start: start, key_bytes: bytes, max_key_bytes: MAX_KEY_BYTES } },
  );
}

function compressionOf(config: S3SinkConfig): 'gzip' | 'snappy' | 'none' {
  return config.compression ?? (config.format === 'parquet' ? 'snappy' : 'none');
}

interface KeyOwner {
  readonly target: string;
  readonly series: string;
}

/**
 * Keys of the objects of this process's recent runs, by the id of the run writing them
 * (OperationContext.cycle), then by endpoint, bucket and key: the target and series writing each.
 * A key stays taken for the whole run, after its object is published too: targets finish side by
 * side, and another target of the same run taking the key later would replace the published
 * object. Runs follow one another and the newest is the one writing, so a few are kept.
 */
const keyOwnersByRun = new Map<string, Map<string, KeyOwner>>();
const RUNS_KEPT = 4;

function keyOwnersOf(cycle: string): Map<string, KeyOwner> {
  let owners = keyOwnersByRun.get(cycle);
  if (owners === undefined) {
    owners = new Map();
    keyOwnersByRun.set(cycle, owners);
    for (const old of keyOwnersByRun.keys()) {
      if (keyOwnersByRun.size <= RUNS_KEPT) break;
      keyOwnersByRun.delete(old);
    }
  }
  return owners;
}

/** Cleaning up after a failed or cancelled cycle must not hang on a dead server, nor be cut short by the cancellation that caused it. */
const CLEANUP_TIMEOUT_MS = 30_000;

const MAX_TIMER_MS = 2 ** 31 - 1;

export class S3Sink implements Sink {
  readonly delivery = 'atomic' as const;
  #series = new Map<string, ObjectSeries>();
  /** The object keys this target claimed and has not published: given back if the run fails or is cancelled. */
  #claimedKeys: { owners: Map<string, KeyOwner>; id: string }[] = [];
  readonly #key: Template;
  readonly #retry: RetryPolicy;
  readonly #format: S3Format;
  readonly #endpointId: string;

  constructor(
    private readonly config: S3SinkConfig,
    private readonly client: S3Client,
    private readonly ctx: CreateContext,
  ) {
    this.#key = keyTemplate(config);
    this.#retry = retryPolicyOf(config.retry);
    this.#format = config.format ?? DEFAULT_FORMAT;
    this.#endpointId = endpointIdentity(config.endpoint);
  }

  /**
   * Longest publishing may take: each object's requests (put, or complete and the metadata copy)
   * using every attempt, each its whole connect and idle timeouts and the longest backoff.
   */
  private publishDeadlineMs(objects: number): number {
    const attempt = parseDuration(this.config.connect_timeout ?? DEFAULT_CONNECT_TIMEOUT)! + parseDuration(this.config.idle_timeout ?? DEFAULT_IDLE_TIMEOUT)!;
    const request = this.#retry.maxAttempts * (attempt + this.#retry.maxBackoffMs);
    // Timers take at most 2^31 - 1 ms (about 24.8 days); past that Node fires them at once.
    return Math.min(CLEANUP_TIMEOUT_MS + objects * 2 * request, MAX_TIMER_MS);
  }

  async write(batch: DeliveryBatch, ctx: OperationContext): Promise<void> {
    if (ctx.signal.aborted) throw new CancelledError(`writing to export target "${this.ctx.name}"`);
    if (batch.rows.length === 0) return;
    const run = { rule: batch.rule, datasource: batch.datasource, runId: batch.runId, matchedAt: batch.matchedAt };
    // Part 0 never names an object: rendered with it, the key identifies the series of parts.
    const seriesKey = this.#key.render({ ...run, part: 0 });
    let series = this.#series.get(seriesKey);
    if (!series) {
      // Claims belong to the run writing (a replayed batch keeps the run id it was matched in).
      const cycle = ctx.cycle ?? batch.runId;
      const keyOf = (part: number) => this.objectKey(run, part, seriesKey, cycle);
      series = this.newSeries(keyOf, ctx);
      this.#series.set(seriesKey, series);
    }
    try {
      await series.write(batch, ctx);
    } catch (err) {
      if (err instanceof CancelledError) throw err;
      // Requests were retried already; a failed upload cannot take the same records again.
      throw wrapError(`writing to bucket "${this.config.bucket}"`, err, { retryable: false });
    }
  }

  /** The key of one object of a series; checked when the object begins, before any of its bytes go up. */
  private objectKey(run: RunValues, part: number, seriesKey: string, cycle: string): string {
    // Values are made well-formed as they are put in; the template's own text (a prefix, a YAML
    // "\ud800" escape) is too, here: the SDK percent-encodes keys and would throw "URI malformed" at publish.
    const key = toWellFormed(this.#key.render({ ...run, part }));
    const bytes = Buffer.byteLength(key);
    if (bytes > MAX_KEY_BYTES) throw keyTooLong(this.ctx.name, this.config.bucket, key, bytes);
    this.claimKey(key, seriesKey, cycle, run.runId);
    return key;
  }

  /**
   * Two objects of a run must not share a key, or the second completed replaces the first and
   * its records are lost: two targets left on the same default key, or keys of one target that
   * meet once rendered (`{rule}{part}` gives rule "hot1" part 1 and rule "hot" part 11 the same
   * one). So each object's key is claimed when it begins, for the rest of the run (unless the
   * target fails or is cancelled and publishes nothing); the second fails, naming the first.
   */
  private claimKey(key: string, seriesKey: string, cycle: string, batchRun: string): void {
    const id = this.objectId(key);
    // A replayed batch renders its key with the run it was matched in: the claim is checked and
    // kept under that run too, so a later replay of another target's batch of that run sees it.
    const places = batchRun === cycle ? [keyOwnersOf(cycle)] : [keyOwnersOf(cycle), keyOwnersOf(batchRun)];
    const owner = places.map((owners) => owners.get(id)).find((o) => o !== undefined);
    if (owner !== undefined && (owner.target !== this.ctx.name || owner.series !== seriesKey)) {
      const who = owner.target === this.ctx.name ? 'this target writes this object for another rule, datasource or part too' : `export target "${owner.target}" writes this object too`;
      const fix = owner.target === this.ctx.name ? 'separate the names in the key template (a "/" or "-" between {rule} and {part}, say)' : 'give each S3 target its own key or bucket';
      throw new ConnectorError(`s3://${this.config.bucket}/${key}: ${who}; ${fix}`, {
        code: 'KEY_IN_USE',
        details: { bucket: this.config.bucket, key, other_target: owner.target },
      });
    }
    for (const owners of places) {
      if (owners.has(id)) continue;
      owners.set(id, { target: this.ctx.name, series: seriesKey });
      this.#claimedKeys.push({ owners, id });
    }
  }

  /**
   * Publishes the cycle's objects, all or none as far as S3 allows: every object is sealed first
   * (last parts uploaded), and only when all are does any become visible. If completing one
   * fails, the ones already completed are deleted again and the rest aborted.
   */
  async flush(ctx: OperationContext): Promise<void> {
    const series = [...this.#series.values()];
    this.#series = new Map();
    try {
      await this.sealAndPublish(series, ctx);
    } catch (err) {
      // Nothing of this run is visible: its keys are free for the rest of the run.
      this.giveBackKeys();
      throw err;
    }
    // Published: the keys stay taken for the rest of the run (keyOwnersByRun).
    this.#claimedKeys = [];
  }

  private async sealAndPublish(series: readonly ObjectSeries[], ctx: OperationContext): Promise<void> {
    const sealed = await Promise.allSettled(series.map((s) => s.seal(ctx)));
    const failed = sealed.find((r) => r.status === 'rejected') as PromiseRejectedResult | undefined;
    if (failed || ctx.signal.aborted) {
      await this.discardAll(series);
      if (!failed) throw new CancelledError(`publishing the objects of export target "${this.ctx.name}"`);
      throw wrapError(`writing to bucket "${this.config.bucket}"; no object of this run was made visible`, failed.reason, { retryable: false });
    }
    const objects = sealed.flatMap((r) => (r as PromiseFulfilledResult<{ object: PendingObject; records: number }[]>).value);
    // From here on the objects are published even if a signal arrives, and the process waits for
    // it before a cancelled run's exit: half a set is worse.
    await whileExitHeld(() => this.publishAll(objects));
  }

  /**
   * Makes the sealed objects visible one by one; if one fails, those already visible are removed
   * again and the rest aborted. A stalled request ends at idle_timeout and is retried; the
   * deadline is only a backstop.
   */
  private async publishAll(objects: readonly { object: PendingObject; records: number }[]): Promise<void> {
    const deadline = AbortSignal.timeout(this.publishDeadlineMs(objects.length));
    const published: PendingObject[] = [];
    for (const { object, records } of objects) {
      try {
        await object.publish(deadline);
        published.push(object);
        this.ctx.log.debug({ bucket: object.bucket, key: object.key, records, bytes: object.bytes }, 'object uploaded');
      } catch (err) {
        const removed = published.length;
        await this.rollBack(published, objects.map((o) => o.object).filter((o) => o !== object && !published.includes(o)), object);
        const outcome = removed > 0 ? `the ${removed} object${removed === 1 ? '' : 's'} this run had published were removed again` : 'no object of this run was made visible';
        throw wrapError(`publishing ${object.url}; ${outcome}`, err, { retryable: false });
      }
    }
  }

  async abort(): Promise<void> {
    const series = [...this.#series.values()];
    this.#series = new Map();
    try {
      await this.discardAll(series);
    } finally {
      this.giveBackKeys();
    }
  }

  /** HeadBucket: the endpoint answers, the credentials are accepted, and the bucket exists. */
  async check(ctx: OperationContext): Promise<string> {
    const { HeadBucketCommand } = await import('@aws-sdk/client-s3');
    const place = { bucket: this.config.bucket };
    const head = await s3Call('checking bucket', place, { retry: { ...this.#retry, maxAttempts: 1 }, signal: ctx.signal, log: ctx.log }, (abortSignal) =>
      this.client.send(new HeadBucketCommand({ Bucket: this.config.bucket }), { abortSignal }),
    );
    // An endpoint may carry user:password; shown as written otherwise.
    const endpoint = this.config.endpoint && /\/\/[^/]*@/.test(this.config.endpoint) ? redactUrl(this.config.endpoint) : this.config.endpoint;
    const where = endpoint ? `at ${endpoint}` : `in ${head.BucketRegion ?? (await this.client.config.region())}`;
    const checksums = this.config.request_checksum_calculation ?? checksumDefault(this.config);
    return `bucket ${s3Url(place)} reachable ${where}, credentials accepted; checksums ${checksums}`;
  }

  async close(): Promise<void> {
    this.client.destroy();
  }

  private giveBackKeys(): void {
    for (const { owners, id } of this.#claimedKeys) {
      if (owners.get(id)?.target === this.ctx.name) owners.delete(id);
    }
    this.#claimedKeys = [];
  }

  private objectId(key: string): string {
    return `${this.#endpointId}\u0000${this.config.bucket}\u0000${key}`;
  }

  private newSeries(keyOf: (part: number) => string, ctx: OperationContext): ObjectSeries {
    const format = this.#format;
    return new ObjectSeries({
      client: this.client,
      bucket: this.config.bucket,
      keyOf,
      hasPart: this.#key.runNames.includes('part'),
      content: {
        format,
        compression: compressionOf(this.config),
        includeMetadata: this.config.include_metadata !== false,
        rowGroupRows: this.config.row_group_size ?? DEFAULT_ROW_GROUP_SIZE,
      },
      maxRecords: this.config.max_records_per_object ?? Infinity,
      partSize: (this.config.part_size_mib ?? DEFAULT_PART_SIZE_MIB) * 1024 * 1024,
      call: { retry: this.#retry, log: ctx.log },
      format,
    });
  }

  private async discardAll(series: readonly ObjectSeries[]): Promise<void> {
    const signal = AbortSignal.timeout(CLEANUP_TIMEOUT_MS);
    // Cut off by the process exiting, the aborts would leave the parts stored.
    const results = await whileExitHeld(() => Promise.allSettled(series.map((s) => s.discard(signal))));
    for (const r of results) {
      if (r.status === 'rejected') {
        this.ctx.log.warn({ err: serializeError(r.reason) }, 'could not abort a multipart upload; a bucket lifecycle rule (AbortIncompleteMultipartUpload) removes such parts');
      }
    }
  }

  private async rollBack(published: readonly PendingObject[], unpublished: readonly PendingObject[], failed?: PendingObject): Promise<void> {
    const signal = AbortSignal.timeout(CLEANUP_TIMEOUT_MS);
    const results = await Promise.allSettled([
      ...published.map((o) => o.remove(signal)),
      ...unpublished.map((o) => o.discard(signal)),
      ...(failed ? [failed.undoFailedPublish(signal)] : []),
    ]);
    for (const r of results) {
      if (r.status === 'rejected') this.ctx.log.warn({ err: serializeError(r.reason) }, 'could not remove an object of a run that failed to publish');
    }
  }
}
