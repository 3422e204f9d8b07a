import { NotImplementedError, type SinkSpec } from '../types.js';
import { httpProperties } from './rest-http.js';

export const restSink: SinkSpec = {
  kind: 'target',
  type: 'rest_api',
  summary: 'Sends matches to an HTTP endpoint as JSON. Not implemented in this build: the config validates, running it fails that target.',
  batching: { batch_size: 100, batch_bytes: 1024 * 1024, linger: '1s', max_in_flight: 4 },
  configSchema: {
    type: 'object',
    required: ['url'],
    properties: {
      ...httpProperties,
      method: { type: 'string', enum: ['POST', 'PUT', 'PATCH'], default: 'POST', description: 'HTTP method.' },
    },
  },
  async create() {
    throw new NotImplementedError('export target', 'rest_api');
  },
};
