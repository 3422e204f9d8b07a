import type { JsonSchema } from '../types.js';

/** The connection keys shared by the PostgreSQL datasource and export target, as the older tool spelled them. */
export const postgresConnectionProperties: Record<string, JsonSchema> = {
  host: { type: 'string', description: 'Server host name or address.', default: 'localhost', examples: ['db.internal'] },
  port: { type: 'integer', minimum: 1, maximum: 65535, description: 'Server port.', default: 5432 },
  database: { type: 'string', description: 'Database name.', examples: ['analytics'] },
  username: { type: 'string', description: 'Role to connect as.', examples: ['reporter'] },
  password: {
    type: 'string',
    description: 'Password; write it as ${PGPASSWORD} and keep the value in the environment.',
    examples: ['${PGPASSWORD}'],
  },
  ssl: { type: 'boolean', description: 'Connect with TLS.', default: false },
};
