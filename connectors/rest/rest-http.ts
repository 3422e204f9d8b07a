/**
 * What the REST datasource and target share: the request keys of their schemas, and the
 * HttpClient options those keys turn into. The client itself (timeouts, size cap, redirects,
 * redaction) is src/http/client.ts; it is loaded on first use, never when a config is validated.
 */
import type { HttpClientOptions } from '../../src/http/client.js';
import type { JsonSchema } from '../types.js';

export const DEFAULT_TIMEOUT_S = 30;
export const DEFAULT_MAX_REDIRECTS = 5;

export interface RestHttpConfig {
  url: string;
  headers?: Record<string, string>;
  timeout?: number;
  max_response_bytes?: number;
  max_redirects?: number;
}

export function httpProperties(defaultMaxBytes: number): Record<string, JsonSchema> {
  return {
    url: {
      type: 'string',
      minLength: 1,
      pattern: '^[Hh][Tt][Tt][Pp][Ss]?://',
      description: 'The endpoint, an http:// or https:// URL.',
      examples: ['https://alerts.example.com/api/alerts'],
    },
    headers: {
      type: 'object',
      additionalProperties: { type: 'string' },
      description:
        'HTTP headers sent with every request. Put tokens in the environment: `Authorization: "Bearer ${API_TOKEN}"`; ' +
        'header values never appear in logs, errors or --check output.',
      examples: [{ Authorization: 'Bearer ${API_TOKEN}' }],
    },
    timeout: {
      type: 'number',
      exclusiveMinimum: 0,
      maximum: 86400,
      default: DEFAULT_TIMEOUT_S,
      description: 'Seconds one request may take, from connecting to the last byte of the response; a request that takes longer fails with TIMEOUT and is retried.',
    },
    max_response_bytes: {
      type: 'integer',
      minimum: 1024,
      default: defaultMaxBytes,
      description: 'Largest response body read, in bytes; a larger one fails with RESPONSE_TOO_LARGE (not retried).',
    },
    max_redirects: {
      type: 'integer',
      minimum: 0,
      maximum: 20,
      default: DEFAULT_MAX_REDIRECTS,
      description: 'Redirects followed per request; one more fails with TOO_MANY_REDIRECTS. 0 follows none.',
    },
  };
}

/** An HTTP header name (RFC 9110's token). */
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * What the schema cannot say about `headers`: a name that is not a token, or a value holding a
 * line break or NUL (from a ${VAR} read with its newline), would fail every request at run time
 * with undici's "invalid header" and no name of the key. The value is never shown: it may be a secret.
 */
export function headerIssues(headers: Readonly<Record<string, string>> | undefined): { key: readonly string[]; message: string }[] {
  const issues: { key: readonly string[]; message: string }[] = [];
  for (const [name, value] of Object.entries(headers ?? {})) {
    if (!HEADER_NAME.test(name)) {
      issues.push({ key: ['headers', name], message: `"${name}" is not a valid HTTP header name (letters, digits and !#$%&'*+.^_\`|~- only, no spaces or colons)` });
    } else if (/[\r\n\0]/.test(value)) {
      issues.push({ key: ['headers', name], message: `the value of header "${name}" holds a line break or NUL (an environment variable read with its trailing newline?); remove it` });
    }
  }
  return issues;
}

/** Client options from the shared keys: `timeout` bounds both the wait for each piece and the whole exchange. */
export function clientOptions(config: RestHttpConfig, defaultMaxBytes: number): HttpClientOptions {
  const timeoutMs = (config.timeout ?? DEFAULT_TIMEOUT_S) * 1000;
  return {
    headers: config.headers ?? {},
    timeoutMs,
    deadlineMs: timeoutMs,
    maxResponseBytes: config.max_response_bytes ?? defaultMaxBytes,
    maxRedirects: config.max_redirects ?? DEFAULT_MAX_REDIRECTS,
    secrets: urlSecrets(config.url),
  };
}

/**
 * Parts of a URL that look like credentials, to be hidden wherever the URL is shown: a webhook
 * URL (Slack, Teams, Discord) carries its token in the path or in a `sig` parameter, which no
 * parameter name gives away. A path segment or query value of 16 characters or more holding both
 * letters and digits counts; an id of that shape is hidden too, which costs a message little.
 */
/** A timestamp in a query (`since=2026-01-01T00:00:00Z`) is data, not a credential. */
const ISO_DATE = /^\d{4}-\d{2}-\d{2}/;

export function urlSecrets(url: string): string[] {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    return [];
  }
  const parts = [...parsed.pathname.split('/'), ...[...parsed.searchParams.values()]];
  if (parsed.password) parts.push(parsed.password);
  const secrets = new Set<string>();
  for (const part of parts) {
    for (const form of new Set([part, safeDecode(part)])) {
      if (form.length >= 16 && /[A-Za-z]/.test(form) && /\d/.test(form) && !form.includes('{') && !ISO_DATE.test(form)) secrets.add(form);
    }
  }
  // Encoded forms too: a message may show the URL as the URL class writes it.
  for (const secret of [...secrets]) secrets.add(encodeURIComponent(secret));
  return [...secrets];
}

function safeDecode(text: string): string {
  try {
    return decodeURIComponent(text);
  } catch {
    return text;
  }
}

/** Header names are case-insensitive: whether the config already sets one. */
export function hasHeader(headers: Readonly<Record<string, string>> | undefined, name: string): boolean {
  const lower = name.toLowerCase();
  return Object.keys(headers ?? {}).some((h) => h.toLowerCase() === lower);
}
