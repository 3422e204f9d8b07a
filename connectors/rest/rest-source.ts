import type { CreateContext, OperationContext, ReadContext, Source, SourceSpec } from '../types.js';
import type { HttpClient } from '../../src/http/client.js';
import { deliverySchema, retryPolicyOf, type DeliveryConfig, type RetryPolicy } from '../../src/delivery/policy.js';
import { withRetry } from '../../src/delivery/retry.js';
import { CancelledError, ConnectorError, wrapError } from '../../src/errors.js';
import { OBJECT_LAYOUT, type RecordBatch } from '../../src/records/layout.js';
import { redactUrl } from '../../src/util/redact.js';
import { clientOptions, hasHeader, headerIssues, httpProperties, type RestHttpConfig } from './rest-http.js';
import { DEFAULT_MAX_PAGES, paginationSchema, paginatorFor, type PaginationConfig } from './rest-pagination.js';
import { parseBody, recordsOf } from './rest-records.js';

type QueryValue = string | number | boolean;

export interface RestSourceConfig extends RestHttpConfig {
  type: 'rest_api';
  method?: 'GET' | 'POST';
  query?: Record<string, QueryValue>;
  /** The older tool's name for `query`. */
  params?: Record<string, QueryValue>;
  body?: unknown;
  records_path?: string;
  pagination?: PaginationConfig;
  retry?: DeliveryConfig['retry'];
}

/** A page of JSON is parsed whole: the cap keeps one page from filling memory. */
const DEFAULT_MAX_BYTES = 16 * 1024 * 1024;

const queryValues: Record<string, unknown> = {
  type: 'object',
  additionalProperties: { type: ['string', 'number', 'boolean'] },
};

export const restSource: SourceSpec<RestSourceConfig> = {
  kind: 'source',
  type: 'rest_api',
  summary: 'Records from a JSON REST endpoint: one request, or every page of a paginated API, read as the pages arrive.',
  configSchema: {
    type: 'object',
    required: ['url'],
    properties: {
      ...httpProperties(DEFAULT_MAX_BYTES),
      method: { type: 'string', enum: ['GET', 'POST'], default: 'GET', description: 'HTTP method.' },
      query: {
        ...queryValues,
        description: 'Query string parameters, added to those already in `url`.',
        examples: [{ status: 'active', since: '${SINCE:-2026-01-01}' }],
      },
      params: { ...queryValues, description: 'The older name of `query`; use one of the two.' },
      body: { description: 'Request body for POST, sent as JSON (Content-Type: application/json unless headers say otherwise).', examples: [{ filter: { level: 'error' } }] },
      records_path: {
        type: 'string',
        minLength: 1,
        description:
          'Dot path to the array of records in the JSON response. Without it the response itself is the array, and a single object is one record.',
        examples: ['data.items'],
      },
      pagination: paginationSchema,
      retry: {
        ...deliverySchema({ batch_size: 1, batch_bytes: 1024, linger: '0s', max_in_flight: 1 }).retry!,
        description:
          'How a page request that failed with a retryable error (network trouble, a timeout, HTTP 5xx, 408 or 429) is tried again: ' +
          "exponential backoff with jitter, at least as long as the server's Retry-After. Other errors fail the datasource at once.",
      },
    },
  },
  validate(config) {
    const problems: { key: string; message: string }[] = [];
    if (config.query !== undefined && config.params !== undefined) {
      problems.push({ key: 'params', message: 'params is the older name of query; give the parameters in one of them' });
    }
    if (config.body !== undefined && (config.method ?? 'GET') === 'GET') {
      problems.push({ key: 'body', message: 'a GET request has no body; use method: POST, or send the values as query parameters' });
    }
    try {
      new URL(config.url);
    } catch {
      problems.push({ key: 'url', message: `"${redactUrl(config.url)}" is not a valid URL` });
    }
    return [...problems, ...headerIssues(config.headers)];
  },
  async create(config, ctx) {
    return new RestSource(config, ctx);
  },
};

interface Page {
  readonly body: unknown;
  readonly records: readonly Record<string, unknown>[];
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
}

export class RestSource implements Source {
  #client: HttpClient | undefined;
  readonly #retry: RetryPolicy;

  constructor(
    private readonly config: RestSourceConfig,
    private readonly ctx: CreateContext,
  ) {
    this.#retry = retryPolicyOf(config.retry);
  }

  /** Every page in turn, each handed on (in slices of batchSize) before the next is asked for. */
  async *read(read: ReadContext): AsyncIterable<RecordBatch> {
    const paginator = paginatorFor(this.firstUrl(), this.config.pagination);
    const limit = this.config.pagination?.max_pages ?? DEFAULT_MAX_PAGES;
    let url: string | undefined = paginator.first;
    for (let number = 1; url !== undefined; number++) {
      if (read.signal.aborted) return;
      if (number > limit) {
        read.log.warn({ max_pages: limit, next_page: this.label(url) }, 'stopped at pagination.max_pages while the API announced more pages');
        return;
      }
      const what = `reading page ${number} of datasource "${this.ctx.name}"`;
      const page = await this.fetchPage(url, read, what);
      read.log.debug({ page: number, records: page.records.length }, 'page read');
      for (let at = 0; at < page.records.length; at += read.batchSize) {
        yield { layout: OBJECT_LAYOUT, rows: page.records.slice(at, at + read.batchSize) };
      }
      const current: string = url;
      try {
        url = paginator.next({ url: current, ...page });
      } catch (err) {
        throw wrapError(`${what}: ${this.label(current)}`, err);
      }
    }
  }

  /** The first page (with its method, body and parameters) answers 2xx with JSON that holds records where records_path says. */
  async check(ctx: OperationContext): Promise<string> {
    const url = paginatorFor(this.firstUrl(), this.config.pagination).first;
    const page = await this.fetchOnce(url, ctx.signal).catch((err) => {
      throw wrapError(`checking datasource "${this.ctx.name}"`, err);
    });
    const count = page.records.length;
    return `${this.config.method ?? 'GET'} ${this.label(url)}: ${count} record${count === 1 ? '' : 's'} on the first page`;
  }

  async close(): Promise<void> {
    await this.#client?.close();
  }

  private async fetchPage(url: string, read: ReadContext, what: string): Promise<Page> {
    try {
      return await withRetry(() => this.fetchOnce(url, read.signal), { policy: this.#retry, signal: read.signal, log: read.log, what });
    } catch (err) {
      // withRetry names the page when it gives up; a permanent error is named here.
      if (err instanceof ConnectorError && err.message.startsWith(what)) throw err;
      // A cancel keeps its kind, and says which page it stopped.
      if (err instanceof CancelledError) throw new CancelledError(what, err);
      throw wrapError(what, err);
    }
  }

  /** One request for one page: the body read whole under the size cap, parsed, and its records found. */
  private async fetchOnce(url: string, signal: AbortSignal): Promise<Page> {
    const client = await this.client();
    const response = await client.request({ url, method: this.config.method ?? 'GET', headers: this.requestHeaders(), body: this.requestBody(), signal });
    const raw = { status: response.status, contentType: response.contentType, text: await response.text() };
    // 204 No Content is how some APIs say a page is empty.
    if (raw.status === 204) return { body: undefined, records: [], headers: response.headers };
    const redact = (text: string) => client.redact(text);
    const body = parseBody(raw, redact);
    return { body, records: recordsOf(body, this.config.records_path, raw, redact), headers: response.headers };
  }

  private firstUrl(): string {
    const url = new URL(this.config.url);
    for (const [name, value] of Object.entries(this.config.query ?? this.config.params ?? {})) url.searchParams.append(name, String(value));
    return url.toString();
  }

  private requestHeaders(): Record<string, string> {
    const headers: Record<string, string> = {};
    if (!hasHeader(this.config.headers, 'accept')) headers.accept = 'application/json';
    if (this.config.body !== undefined && !hasHeader(this.config.headers, 'content-type')) headers['content-type'] = 'application/json';
    return headers;
  }

  private requestBody(): string | undefined {
    return this.config.body === undefined ? undefined : JSON.stringify(this.config.body);
  }

  private label(url: string): string {
    return this.#client ? this.#client.redact(redactUrl(url)) : redactUrl(url);
  }

  private async client(): Promise<HttpClient> {
    if (!this.#client) {
      const { HttpClient } = await import('../../src/http/client.js');
      this.#client ??= new HttpClient(clientOptions(this.config, DEFAULT_MAX_BYTES));
    }
    return this.#client;
  }
}
