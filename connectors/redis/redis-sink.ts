import { NotImplementedError, type SinkSpec } from '../types.js';

export const redisSink: SinkSpec = {
  kind: 'target',
  type: 'redis',
  summary: 'Stores matches in Redis as hashes, list entries or strings. Not implemented in this build: the config validates, running it fails that target.',
  batching: { batch_size: 1000, batch_bytes: 4 * 1024 * 1024, linger: '100ms', max_in_flight: 1 },
  configSchema: {
    type: 'object',
    properties: {
      host: { type: 'string', default: 'localhost', description: 'Redis host.' },
      port: { type: 'integer', minimum: 1, maximum: 65535, default: 6379, description: 'Redis port.' },
      db: { type: 'integer', minimum: 0, default: 0, description: 'Database number.' },
      password: { type: 'string', description: 'Password; prefer ${REDIS_PASSWORD}.' },
      data_type: { type: 'string', enum: ['hash', 'list', 'string'], default: 'list', description: 'How each match is stored.' },
      key: {
        type: 'string',
        description: 'Key template; {rule}, {datasource} and any record field in braces are filled in.',
        examples: ['alerts:{rule}'],
      },
      key_prefix: { type: 'string', description: 'Prefix put before every key.', examples: ['threshold:'] },
      ttl: { type: 'integer', minimum: 1, description: 'Seconds before a key expires.' },
    },
  },
  async create() {
    throw new NotImplementedError('export target', 'redis');
  },
};
