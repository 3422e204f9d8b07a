import { NotImplementedError, type SourceSpec } from '../types.js';
import { httpProperties } from './rest-http.js';

export const restSource: SourceSpec = {
  kind: 'source',
  type: 'rest_api',
  summary: 'Records from a JSON REST endpoint. Not implemented in this build: the config validates, running it fails that datasource.',
  configSchema: {
    type: 'object',
    required: ['url'],
    properties: {
      ...httpProperties,
      method: { type: 'string', enum: ['GET', 'POST'], default: 'GET', description: 'HTTP method.' },
      params: { type: 'object', additionalProperties: { type: ['string', 'number', 'boolean'] }, description: 'Query string parameters.' },
      body: { description: 'Request body for POST, sent as JSON.' },
      records_path: {
        type: 'string',
        description: 'Dotted path to the array of records in the response, when it is not the top level.',
        examples: ['data.items'],
      },
    },
  },
  async create() {
    throw new NotImplementedError('datasource', 'rest_api');
  },
};
