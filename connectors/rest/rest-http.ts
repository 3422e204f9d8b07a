import type { JsonSchema } from '../types.js';

export const httpProperties: Record<string, JsonSchema> = {
  url: { type: 'string', description: 'The endpoint URL.', examples: ['https://alerts.example.com/api/alerts'] },
  headers: {
    type: 'object',
    additionalProperties: { type: 'string' },
    description: 'HTTP headers; put tokens in the environment: `Authorization: "Bearer ${ALERT_TOKEN}"`.',
    examples: [{ Authorization: 'Bearer ${ALERT_TOKEN}' }],
  },
  timeout: { type: 'number', exclusiveMinimum: 0, description: 'Seconds before a request is abandoned.', default: 30 },
};
