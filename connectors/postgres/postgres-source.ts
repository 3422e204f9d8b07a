import { NotImplementedError, type SourceSpec } from '../types.js';
import { postgresConnectionProperties } from './postgres-connection.js';

export const postgresSource: SourceSpec = {
  kind: 'source',
  type: 'postgresql',
  summary: 'Rows of a PostgreSQL query. Not implemented in this build: the config validates, running it fails that datasource.',
  configSchema: {
    type: 'object',
    required: ['query'],
    properties: {
      ...postgresConnectionProperties,
      query: {
        type: 'string',
        description: 'The SELECT whose rows the rules read.',
        examples: ["SELECT * FROM metrics WHERE created_at > NOW() - INTERVAL '1 hour'"],
      },
    },
  },
  async create() {
    throw new NotImplementedError('datasource', 'postgresql');
  },
};
