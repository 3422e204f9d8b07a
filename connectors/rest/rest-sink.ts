import { NotImplementedError, type SinkSpec } from '../types.js';
import { httpProperties } from './rest-http.js';

export const restSink: SinkSpec = {
  kind: 'target',
  type: 'rest_api',
  summary: 'Sends matches to an HTTP endpoint as JSON. Not implemented in this build: the config validates, running it fails that target.',
  configSchema: {
    type: 'object',
    required: ['url'],
    properties: {
      ...httpProperties,
      method: { type: 'string', enum: ['POST', 'PUT', 'PATCH'], default: 'POST', description: 'HTTP method.' },
      batch_size: { type: 'integer', minimum: 1, default: 100, description: 'Records per request body (a JSON array).' },
    },
  },
  async create() {
    throw new NotImplementedError('export target', 'rest_api');
  },
};
