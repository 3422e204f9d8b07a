import type { CreateContext, DeliveryBatch, OperationContext, Sink, SinkSpec } from '../types.js';
import type { HttpClient } from '../../src/http/client.js';
import { toNdjsonPieces } from '../../src/encoding/ndjson.js';
import { CancelledError, ConnectorError, serializeError, wrapError } from '../../src/errors.js';
import { exportRecords } from '../../src/records/export-record.js';
import { redactUrl } from '../../src/util/redact.js';
import { templateFor, templateIssues, type CompileOptions, type Template } from '../../src/template/template.js';
import { clientOptions, hasHeader, headerIssues, httpProperties, type RestHttpConfig } from './rest-http.js';

export interface RestSinkConfig extends RestHttpConfig {
  type: 'rest_api';
  method?: 'POST' | 'PUT' | 'PATCH';
  body_template?: string;
  include_metadata?: boolean;
  batch_size?: number;
  max_in_flight?: number;
  concurrency?: number;
}

/** A receiver's answer is only read for its status and, on failure, an excerpt: it need not be large. */
const DEFAULT_MAX_BYTES = 1024 * 1024;

const DEFAULT_BATCH_SIZE = 100;

const BODY_TEMPLATE: CompileOptions = { context: 'json', names: ['rule', 'datasource', 'date', 'time', 'run_id'], what: 'the body template' };
/** The URL is filled in once per request: run-level names, and record fields only when a request carries one record. */
const URL_TEMPLATE = (oneRecord: boolean): CompileOptions => ({ context: 'url', names: ['rule', 'datasource', 'date', 'run_id'], fields: oneRecord, what: 'the URL' });

export const restSink: SinkSpec<RestSinkConfig> = {
  kind: 'target',
  type: 'rest_api',
  summary:
    'Sends matches to an HTTP endpoint as JSON: a request per batch (a JSON array; one record alone with batch_size: 1), ' +
    'optionally shaped by a body template (Slack, PagerDuty, Teams), with an Idempotency-Key per batch.',
  batching: { batch_size: DEFAULT_BATCH_SIZE, batch_bytes: 1024 * 1024, linger: '1s', max_in_flight: 4 },
  configSchema: {
    type: 'object',
    required: ['url'],
    properties: {
      ...targetHttpProperties(),
      url: {
        type: 'string',
        minLength: 1,
        pattern: '^[Hh][Tt][Tt][Pp][Ss]?://',
        description:
          'The endpoint, an http:// or https:// URL. Its path and query may hold placeholders (docs/templates.md): {rule}, {datasource}, {date}, {run_id}, ' +
          'and record fields when batch_size is 1; values are percent-encoded.',
        examples: ['https://alerts.example.com/api/alerts', 'https://alerts.example.com/rules/{rule}/events'],
      },
      method: { type: 'string', enum: ['POST', 'PUT', 'PATCH'], default: 'POST', description: 'HTTP method.' },
      concurrency: {
        type: 'integer',
        minimum: 1,
        description: 'Requests in progress at once: another name for max_in_flight (set one or the other).',
        examples: [4],
      },
      body_template: {
        type: 'string',
        minLength: 1,
        description:
          'JSON with placeholders (docs/templates.md) that turns each record into the payload the receiver expects. ' +
          'Values are JSON-escaped; nothing is evaluated. With batch_size 1 the body is the filled-in template; with more, a JSON array of them.',
        examples: ['{"text": "{rule}: {sensor} reads {value}"}'],
      },
    },
  },
  validate(config) {
    if (config.concurrency !== undefined && config.max_in_flight !== undefined) {
      return [{ key: 'concurrency', message: 'concurrency is another name for max_in_flight: set one of them, not both' }];
    }
    const oneRecord = config.batch_size === 1;
    const problems = templateIssues(config.url, URL_TEMPLATE(oneRecord), 'url');
    if (!oneRecord && problems.length > 0 && templateIssues(config.url, URL_TEMPLATE(true), 'url').length === 0) {
      problems.splice(0, problems.length, { key: 'url', message: 'record fields in the URL need one record per request: set batch_size: 1, or use only {rule}, {datasource}, {date}, {run_id}' });
    }
    if (config.body_template !== undefined) problems.push(...templateIssues(config.body_template, BODY_TEMPLATE, 'body_template'));
    if (problems.length === 0 && !isUrl(config.url.replace(/\{[^{}]*\}/g, 'x'))) {
      problems.push({ key: 'url', message: `"${redactUrl(config.url)}" is not a valid URL (a bad port, a space, an unclosed [ ?)` });
    }
    return [...problems, ...headerIssues(config.headers)];
  },
  async create(config, ctx) {
    return new RestSink(config, ctx);
  },
};

function isUrl(text: string): boolean {
  try {
    new URL(text);
    return true;
  } catch {
    return false;
  }
}

/** A target follows no redirect: undici turns a redirected POST into a GET without its body, which would count as delivered. */
function targetHttpProperties() {
  const { max_redirects: _notForTargets, ...rest } = httpProperties(DEFAULT_MAX_BYTES);
  return rest;
}

export class RestSink implements Sink {
  readonly delivery = 'per-write' as const;
  #client: HttpClient | undefined;
  readonly #oneRecord: boolean;
  readonly #url: Template;
  readonly #body: Template | undefined;
  readonly #includeMetadata: boolean;
  readonly #headers: Record<string, string> = {};

  constructor(
    private readonly config: RestSinkConfig,
    private readonly ctx: CreateContext,
  ) {
    this.#oneRecord = config.batch_size === 1;
    this.#url = templateFor(config.url, URL_TEMPLATE(this.#oneRecord));
    this.#body = config.body_template === undefined ? undefined : templateFor(config.body_template, BODY_TEMPLATE);
    this.#includeMetadata = config.include_metadata !== false;
    if (!hasHeader(config.headers, 'content-type')) this.#headers['content-type'] = 'application/json';
  }

  /** One request per batch; the batch's idempotency key goes with it, the same on every retry. */
  async write(batch: DeliveryBatch, ctx: OperationContext): Promise<void> {
    if (batch.rows.length === 0) return;
    const count = batch.rows.length;
    const what = `sending ${count} record${count === 1 ? '' : 's'} to export target "${this.ctx.name}"`;
    if (ctx.signal.aborted) throw new CancelledError(what);
    let url: string;
    let body: string;
    try {
      ({ url, body } = this.render(batch));
    } catch (err) {
      throw wrapError(what, withoutTemplateText(err));
    }
    const client = await this.client();
    const started = performance.now();
    try {
      const response = await client.request({
        url,
        method: this.config.method ?? 'POST',
        headers: { ...this.#headers, 'idempotency-key': batch.idempotencyKey },
        body,
        signal: ctx.signal,
      });
      await response.dump().catch((err: unknown) => {
        // A 2xx whose answer is merely long has delivered the records. One that stalls or breaks off is
        // not trusted: it is retried, with the same Idempotency-Key so the receiver can drop the repeat.
        if (!(err instanceof ConnectorError && err.code === 'RESPONSE_TOO_LARGE')) throw err;
        ctx.log.debug({ err: serializeError(err) }, 'the answer to a delivered request was larger than max_response_bytes; not read further');
      });
      ctx.log.debug({ records: count, status: response.status, ms: Math.round(performance.now() - started) }, 'batch delivered');
    } catch (err) {
      if (err instanceof CancelledError) throw err;
      // A redirect says itself why it is not followed and where it leads.
      throw wrapError(what, err);
    }
  }

  async flush(): Promise<void> {
    // Every write was delivered when it returned: nothing is held back.
  }

  /**
   * Reaches the endpoint's origin without sending a record: a HEAD to the URL's fixed part. Any
   * HTTP answer but a redirect means it is reachable (many webhooks answer HEAD with 404 or 405);
   * no answer (refused, unresolvable, TLS failure, timeout) fails the check, and so does a
   * redirect, since every write would fail on it.
   */
  async check(ctx: OperationContext): Promise<string> {
    let url = this.config.url;
    try {
      url = this.probeUrl();
      const client = await this.client();
      const response = await client.request({ url, method: 'HEAD', signal: ctx.signal, throwOnError: false });
      await response.dump();
      const note = response.status === 401 || response.status === 403 ? ' (it refuses these credentials for HEAD; check the headers if sending fails)' : '';
      return `reachable: HEAD ${this.label(url)} answered HTTP ${response.status}${note}`;
    } catch (err) {
      if (err instanceof CancelledError) throw err;
      if (err instanceof ConnectorError && err.code === 'TOO_MANY_REDIRECTS') {
        throw new ConnectorError(
          `checking export target "${this.ctx.name}": HEAD ${this.label(url)} answered HTTP ${err.details.status}, a redirect, which export targets do not follow (every write would fail); set url to where it leads`,
          { code: 'TOO_MANY_REDIRECTS', details: err.details, cause: err },
        );
      }
      // An oversize HEAD answer still came from a live server.
      if (err instanceof ConnectorError && err.code === 'RESPONSE_TOO_LARGE') return `reachable: HEAD ${this.label(url)} answered`;
      throw wrapError(`checking export target "${this.ctx.name}": ${this.label(url)} cannot be reached`, err);
    }
  }

  async close(): Promise<void> {
    await this.#client?.close();
  }

  private render(batch: DeliveryBatch): { url: string; body: string } {
    const run = { rule: batch.rule, datasource: batch.datasource, runId: batch.runId, matchedAt: batch.matchedAt };
    if (this.#body === undefined && !this.#url.usesRecord) return { url: this.#url.render(run), body: this.plainBody(batch) };
    const records = exportRecords(batch, this.#includeMetadata);
    const url = this.#url.render(run, records[0]);
    if (this.#body === undefined) return { url, body: this.plainBody(batch) };
    const fill = this.#body.bind(run);
    const payloads = records.map((record) => fill(record));
    return { url, body: this.#oneRecord && payloads.length === 1 ? payloads[0]! : `[${payloads.join(',')}]` };
  }

  /** The records as JSON: one object with batch_size 1, otherwise always an array (so a receiver sees one shape). */
  private plainBody(batch: DeliveryBatch): string {
    // One JSON object per line, and no raw line break inside one: the lines joined by commas are the array's items.
    const lines = toNdjsonPieces(batch, this.#includeMetadata).join('').slice(0, -1);
    if (this.#oneRecord && batch.rows.length === 1) return lines;
    return `[${lines.replaceAll('\n', ',')}]`;
  }

  /** The URL up to its first placeholder: the fixed part every request goes to. */
  private probeUrl(): string {
    const fixed = this.config.url.split('{')[0]!;
    const u = new URL(fixed);
    return u.toString();
  }

  private label(url: string): string {
    return this.#client ? this.#client.redact(redactUrl(url)) : redactUrl(url);
  }

  private async client(): Promise<HttpClient> {
    if (!this.#client) {
      const { HttpClient } = await import('../../src/http/client.js');
      this.#client ??= new HttpClient({ ...clientOptions(this.config, DEFAULT_MAX_BYTES), maxRedirects: 0 });
    }
    return this.#client;
  }
}

/**
 * A template error quotes the whole template, and a body template may hold a secret filled in
 * from the environment (a PagerDuty routing key): the error keeps the field it is about, not the text.
 */
function withoutTemplateText(err: unknown): unknown {
  if (!(err instanceof ConnectorError) || err.code !== 'TEMPLATE_MISSING_FIELD') return err;
  const field = String(err.details.field ?? '');
  return new ConnectorError(`filling in the body template or the URL: the record has no field "${field}" (or it is null); give a default with {${field}:-default}`, {
    code: err.code,
    details: { field },
  });
}
