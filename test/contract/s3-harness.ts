import { randomBytes } from 'node:crypto';
import { s3Sink, type S3SinkConfig } from '../../connectors/s3/s3-sink.js';
import { parseNdjson } from '../helpers.js';
import { startS3Server, S3RVER_CREDENTIALS, type TestS3Server } from '../support/s3-server.js';
import type { HarnessSinkOptions, TargetHarness } from './harness.js';

const SECRET = `tp-s3-secret-${randomBytes(6).toString('hex')}`;

/** The S3 target, NDJSON, against a real s3rver on loopback: a fresh server and bucket per test; credentials from the environment. */
export function s3Harness(): TargetHarness {
  let server: TestS3Server;
  let bucket = '';
  const create = (options: HarnessSinkOptions, extra: Partial<S3SinkConfig> = {}) =>
    s3Sink.create(
      {
        type: 's3',
        bucket,
        endpoint: server.endpoint,
        force_path_style: true,
        format: 'ndjson',
        include_metadata: options.includeMetadata,
        retry: { max_attempts: 2, initial_backoff: '10ms', max_backoff: '50ms' },
        ...extra,
      },
      { name: 'contract-s3', configDir: '.', log: options.log, signal: new AbortController().signal },
    );
  const visible = async () => {
    const records = [];
    for (const key of await server.keys(bucket)) records.push(...parseNdjson((await server.object(bucket, key)).body.toString('utf8')));
    return records;
  };
  return {
    name: 's3',
    delivery: 'atomic',
    secret: SECRET,
    async setup() {
      process.env.AWS_ACCESS_KEY_ID = S3RVER_CREDENTIALS.accessKeyId;
      process.env.AWS_SECRET_ACCESS_KEY = S3RVER_CREDENTIALS.secretAccessKey;
      server = await startS3Server();
      bucket = `contract-${randomBytes(4).toString('hex')}`;
      await server.createBucket(bucket);
    },
    create: (options) => create(options),
    async createFailing(options) {
      // Credentials in the config (as ${VAR} would put them) with an access key the server does not know.
      // (s3rver checks the access key but not signatures, so a wrong secret alone would pass.)
      return { sink: await create(options, { access_key_id: 'TP-UNKNOWN-KEY', secret_access_key: SECRET }), names: bucket };
    },
    received: visible,
    visibleBeforeFlush: visible,
    async traces() {
      const keys = await server.keys(bucket);
      const uploads = server.pendingUploads(bucket).map((u) => `pending multipart upload of ${u.key} (${u.parts} parts)`);
      return [...keys, ...uploads];
    },
    async cleanup() {
      await server.stop();
    },
  };
}
