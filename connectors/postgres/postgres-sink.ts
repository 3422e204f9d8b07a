import { NotImplementedError, type SinkSpec } from '../types.js';
import { postgresConnectionProperties } from './postgres-connection.js';

export const postgresSink: SinkSpec = {
  kind: 'target',
  type: 'postgresql',
  summary: 'Inserts matches into a PostgreSQL table. Not implemented in this build: the config validates, running it fails that target.',
  batching: { batch_size: 500, batch_bytes: 4 * 1024 * 1024, linger: '1s', max_in_flight: 1 },
  configSchema: {
    type: 'object',
    required: ['table'],
    properties: {
      ...postgresConnectionProperties,
      table: { type: 'string', description: 'Table to insert into, optionally schema-qualified.', examples: ['alerts'] },
    },
  },
  async create() {
    throw new NotImplementedError('export target', 'postgresql');
  },
};
