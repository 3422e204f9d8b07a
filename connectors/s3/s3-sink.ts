import { NotImplementedError, type SinkSpec } from '../types.js';

export const s3Sink: SinkSpec = {
  kind: 'target',
  type: 's3',
  summary: 'Writes matches as Parquet, CSV or JSON objects to an S3 bucket. Not implemented in this build: the config validates, running it fails that target.',
  batching: { batch_size: 10_000, batch_bytes: 8 * 1024 * 1024, linger: '0s', max_in_flight: 1 },
  configSchema: {
    type: 'object',
    required: ['bucket'],
    properties: {
      bucket: { type: 'string', description: 'Bucket name.', examples: ['alerts-archive'] },
      key: {
        type: 'string',
        description: 'Object key template; {rule}, {datasource}, {date}, {run_id} and {format} (the file extension) are filled in.',
        default: '{rule}/{date}/{run_id}.{format}',
      },
      prefix: { type: 'string', description: 'Prefix put before every key.', examples: ['threshold/'] },
      format: { type: 'string', enum: ['parquet', 'csv', 'json'], default: 'json', description: 'Object format.' },
      region: { type: 'string', description: 'Bucket region.', examples: ['eu-west-1'] },
      endpoint: { type: 'string', description: 'S3-compatible endpoint URL (MinIO, Ceph...).', examples: ['http://127.0.0.1:9000'] },
      access_key_id: { type: 'string', description: 'Access key; prefer ${AWS_ACCESS_KEY_ID}.' },
      secret_access_key: { type: 'string', description: 'Secret key; prefer ${AWS_SECRET_ACCESS_KEY}.' },
      force_path_style: { type: 'boolean', default: false, description: 'Address the bucket in the path (needed by most S3-compatible servers).' },
    },
  },
  async create() {
    throw new NotImplementedError('export target', 's3');
  },
};
