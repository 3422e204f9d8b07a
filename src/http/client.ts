/**
 * HTTP for every connector (REST source and target, CSV URLs, S3): one place for timeouts,
 * cancellation, the response size cap, redirects, default headers, and errors as
 * ConnectorError with secrets hidden. undici loads on the first request, never at start-up.
 */
import type { Agent, Dispatcher } from 'undici';
import { CancelledError, causeChain, codeOf, ConnectorError, isRetryable } from '../errors.js';
import { acquireAgent, releaseAgent } from './dispatcher.js';
import { headerRedactor, redactRequestUrl } from './redact.js';
import { userAgent } from './version.js';
import { linkedSignal } from '../util/linked-signal.js';
import { timerDelay } from '../util/timer-delay.js';

export interface HttpClientOptions {
  /** Sent with every request (e.g. Authorization); their values never appear in error messages. */
  readonly headers?: Readonly<Record<string, string>>;
  /** Longest wait for the response headers, and between two pieces of the body. Default 30 s. */
  readonly timeoutMs?: number;
  /** Longest a whole exchange may take, body included. Default: none (a large download may take long while it moves). */
  readonly deadlineMs?: number;
  /** Largest body read; more fails with RESPONSE_TOO_LARGE. Default 16 MiB; Infinity for a stream read as it comes. */
  readonly maxResponseBytes?: number;
  /** Redirects followed; one more fails with TOO_MANY_REDIRECTS. Default 5. */
  readonly maxRedirects?: number;
  /** More values never to show in messages, as header values are not (a token in a webhook URL's path). */
  readonly secrets?: readonly string[];
}

export interface HttpRequest {
  readonly url: string;
  readonly method?: 'GET' | 'HEAD' | 'POST' | 'PUT' | 'PATCH' | 'DELETE';
  readonly headers?: Readonly<Record<string, string>>;
  readonly body?: string | Uint8Array;
  /** Aborting it stops the request at once, waiting for headers or reading the body. */
  readonly signal?: AbortSignal;
  readonly timeoutMs?: number;
  readonly deadlineMs?: number;
  readonly maxResponseBytes?: number;
  /** When false, a non-2xx response is returned instead of thrown. Default true. */
  readonly throwOnError?: boolean;
}

export interface HttpResponse {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly contentType: string | undefined;
  /** The body in pieces, under the size cap and the timeouts; read it once. */
  readonly body: AsyncIterable<Buffer>;
  text(): Promise<string>;
  /** The body parsed as JSON: INVALID_JSON (with status, content type and the first bytes) when it is not. */
  json<T = unknown>(): Promise<T>;
  /** Reads and drops the body, so the connection can be reused. */
  dump(): Promise<void>;
}

export const DEFAULT_TIMEOUT_MS = 30_000;
export const DEFAULT_MAX_RESPONSE_BYTES = 16 * 1024 * 1024;
export const DEFAULT_MAX_REDIRECTS = 5;
/** How much of an error body is kept in `details.body`, and of that how much goes into the message. */
const EXCERPT_BYTES = 500;
const MESSAGE_EXCERPT_CHARS = 200;

export class HttpClient {
  readonly #options: HttpClientOptions;
  readonly #redact: (text: string) => string;
  #dispatcher: Promise<{ agent: Agent; dispatcher: Dispatcher }> | undefined;
  #closed = false;

  constructor(options: HttpClientOptions = {}) {
    this.#options = options;
    this.#redact = headerRedactor(options.headers ?? {}, options.secrets);
  }

  /** Hides configured header values and URL credentials in any text (for a caller's own messages). */
  redact(text: string): string {
    return this.#redact(text);
  }

  async request(req: HttpRequest): Promise<HttpResponse> {
    if (this.#closed) throw new Error('HTTP client used after close');
    const method = req.method ?? 'GET';
    const what = `${method} ${redactRequestUrl(req.url, this.#redact)}`;
    const timeoutMs = req.timeoutMs ?? this.#options.timeoutMs ?? DEFAULT_TIMEOUT_MS;
    const deadlineMs = req.deadlineMs ?? this.#options.deadlineMs;
    const maxBytes = req.maxResponseBytes ?? this.#options.maxResponseBytes ?? DEFAULT_MAX_RESPONSE_BYTES;
    if (req.signal?.aborted) throw new CancelledError(what);
    const exchange = new Exchange(what, this.#redact, req.signal, deadlineMs, timeoutMs);

    const { request } = await import('undici');
    const { dispatcher } = await this.dispatcher();
    const follows = followsRedirects(method);
    let res: Dispatcher.ResponseData;
    try {
      res = (await request(req.url, {
        dispatcher,
        method,
        headers: this.headersFor(req),
        body: req.body,
        headersTimeout: timeoutMs,
        bodyTimeout: timeoutMs,
        signal: exchange.signal,
        // Read by the redirect interceptor: 0 returns the redirect itself.
        ...(follows ? {} : { maxRedirections: 0 }),
      } as Parameters<typeof request>[1])) as Dispatcher.ResponseData;
    } catch (err) {
      exchange.done();
      throw exchange.failure(err);
    }

    const contentType = headerText(res.headers['content-type']);
    // A declared length over the cap fails the body's first read, not the request: the status
    // comes first (a 2xx has delivered whatever its answer; a 503 is still worth a retry).
    const declared = Number(headerText(res.headers['content-length']));
    const body = cappedBody(res, maxBytes, exchange, contentType, Number.isFinite(declared) ? declared : undefined);
    const response: HttpResponse = {
      status: res.statusCode,
      headers: res.headers,
      contentType,
      body,
      text: async () => (await collect(body)).toString('utf8'),
      json: async <T>() => parseJson<T>(await collect(body), what, res.statusCode, contentType, this.#redact),
      dump: async () => {
        for await (const _ of body) {
          // drained so the connection goes back to the pool
        }
      },
    };
    if (res.statusCode >= 200 && res.statusCode < 300) return response;
    if (res.statusCode >= 300 && res.statusCode < 400 && res.headers.location !== undefined) {
      discard(res.body);
      exchange.done();
      const maxRedirects = this.#options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
      const location = this.#redact(headerText(res.headers.location) ?? '');
      const why =
        follows && maxRedirects > 0
          ? `more than ${maxRedirects} redirects (the last answered ${res.statusCode} to ${location})`
          : `answered ${res.statusCode}, a redirect to ${location}, which ${follows ? 'this connector does' : `a ${method} does`} not follow (it would be sent again as a GET without its body): set the URL to that address`;
      throw new ConnectorError(`${what}: ${why}`, { code: 'TOO_MANY_REDIRECTS', details: { status: res.statusCode, content_type: contentType } });
    }
    if (req.throwOnError === false) return response;
    // The excerpt of an error body is read whatever length it declares: only its first bytes are taken.
    throw await statusError(what, res, cappedBody(res, maxBytes, exchange, contentType, undefined), contentType, this.#redact);
  }

  /** Releases this client's hold on the shared connection pools; the last client closes them. */
  async close(): Promise<void> {
    this.#closed = true;
    const held = this.#dispatcher;
    this.#dispatcher = undefined;
    if (held) await releaseAgent((await held).agent);
  }

  private dispatcher(): Promise<{ agent: Agent; dispatcher: Dispatcher }> {
    this.#dispatcher ??= (async () => {
      const agent = await acquireAgent();
      const { interceptors } = await import('undici');
      const maxRedirections = this.#options.maxRedirects ?? DEFAULT_MAX_REDIRECTS;
      return { agent, dispatcher: agent.compose(interceptors.redirect({ maxRedirections })) };
    })();
    return this.#dispatcher;
  }

  /** user-agent first, then the client's headers, then the request's: later names win, whatever their case. */
  private headersFor(req: HttpRequest): Record<string, string> {
    const headers: Record<string, string> = { 'user-agent': userAgent() };
    for (const source of [this.#options.headers, req.headers]) {
      for (const [name, value] of Object.entries(source ?? {})) headers[name.toLowerCase()] = value;
    }
    return headers;
  }
}

/**
 * One request's cancellation: the caller's signal and the overall deadline, merged into the
 * signal undici gets; and the translation of whatever undici throws into a ConnectorError.
 */
class Exchange {
  readonly signal: AbortSignal;
  readonly #controller = new AbortController();
  readonly #linked: ReturnType<typeof linkedSignal> | undefined;
  readonly #timer: NodeJS.Timeout | undefined;
  #deadlinePassed = false;

  constructor(
    readonly what: string,
    readonly redact: (text: string) => string,
    readonly callerSignal: AbortSignal | undefined,
    readonly deadlineMs: number | undefined,
    readonly timeoutMs: number,
  ) {
    this.#linked = callerSignal ? linkedSignal(callerSignal, this.#controller.signal) : undefined;
    this.signal = this.#linked?.signal ?? this.#controller.signal;
    if (deadlineMs !== undefined && Number.isFinite(deadlineMs)) {
      this.#timer = setTimeout(() => {
        this.#deadlinePassed = true;
        this.#controller.abort();
      }, timerDelay(deadlineMs));
      this.#timer.unref();
    }
  }

  done(): void {
    if (this.#timer) clearTimeout(this.#timer);
    this.#linked?.release();
  }

  failure(err: unknown): ConnectorError {
    if (err instanceof ConnectorError) return err;
    if (this.callerSignal?.aborted) return new CancelledError(this.what, err);
    if (this.#deadlinePassed) {
      return new ConnectorError(`${this.what}: no complete response within ${seconds(this.deadlineMs!)}`, { code: 'TIMEOUT', retryable: true, cause: err });
    }
    const code = causeChain(err).map(codeOf).find((c) => c !== undefined);
    const loop = causeChain(err).find((e) => e instanceof Error && e.message.startsWith('Redirect loop detected'));
    if (loop !== undefined) {
      // undici stops a redirect to a URL it has already visited, with a message about Pools that does not apply here.
      return new ConnectorError(`${this.what}: the redirects lead back to an address already visited (a redirect loop)`, { code: 'TOO_MANY_REDIRECTS', cause: err });
    }
    if (code === 'UND_ERR_HEADERS_TIMEOUT') {
      return new ConnectorError(`${this.what}: no response within ${seconds(this.timeoutMs)}`, { code: 'TIMEOUT', retryable: true, cause: err });
    }
    if (code === 'UND_ERR_BODY_TIMEOUT') {
      return new ConnectorError(`${this.what}: the response body stalled for ${seconds(this.timeoutMs)}`, { code: 'TIMEOUT', retryable: true, cause: err });
    }
    const reason = causeChain(err)
      .map((e) => (e instanceof Error ? e.message : String(e)))
      .find((m) => m.length > 0);
    return new ConnectorError(`${this.what}: ${this.redact(reason ?? code ?? 'request failed')}`, {
      code: code ?? 'HTTP_REQUEST_FAILED',
      retryable: isRetryable(err),
      cause: err,
    });
  }
}

/** The body as it arrives, stopping with RESPONSE_TOO_LARGE past the cap; the deadline timer ends with it. */
async function* cappedBody(
  res: Dispatcher.ResponseData,
  maxBytes: number,
  exchange: Exchange,
  contentType: string | undefined,
  declaredBytes: number | undefined,
): AsyncGenerator<Buffer> {
  let seen = 0;
  let complete = false;
  try {
    if (declaredBytes !== undefined && declaredBytes > maxBytes) {
      throw tooLarge(exchange.what, maxBytes, res.statusCode, contentType, `it declares ${declaredBytes} bytes`);
    }
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      seen += chunk.length;
      if (seen > maxBytes) throw tooLarge(exchange.what, maxBytes, res.statusCode, contentType, 'the body goes on past that');
      yield chunk;
    }
    complete = true;
    // undici frees the connection a turn after the body's end: without this wait, a request sent
    // right after reading a response finds it busy and opens a second connection.
    await new Promise((resolve) => setImmediate(resolve));
  } catch (err) {
    throw exchange.failure(err);
  } finally {
    exchange.done();
    // Stopped early (an error, the cap, a caller that broke off): the rest is not read, and the socket is dropped.
    // A body read to its end is left alone: destroying it then would cost the kept-alive connection.
    if (!complete) discard(res.body);
  }
}

function tooLarge(what: string, maxBytes: number, status: number, contentType: string | undefined, why: string): ConnectorError {
  return new ConnectorError(`${what}: the response is larger than the ${maxBytes} bytes allowed (${why})`, {
    code: 'RESPONSE_TOO_LARGE',
    details: { status, content_type: contentType, max_bytes: maxBytes },
  });
}

async function collect(body: AsyncIterable<Buffer>): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of body) chunks.push(chunk);
  return Buffer.concat(chunks);
}

/** The first bytes of a body, read without going further than needed. */
async function excerptOf(body: AsyncGenerator<Buffer>): Promise<string> {
  const chunks: Buffer[] = [];
  let length = 0;
  try {
    for await (const chunk of body) {
      chunks.push(chunk);
      length += chunk.length;
      if (length >= EXCERPT_BYTES) break;
    }
  } catch {
    // An error body that fails half-way still has its first bytes to show.
  }
  return Buffer.concat(chunks).subarray(0, EXCERPT_BYTES).toString('utf8');
}

/** HTTP 5xx, 408 and 429 are worth another try (after Retry-After, if given); other statuses are permanent. */
async function statusError(
  what: string,
  res: Dispatcher.ResponseData,
  body: AsyncGenerator<Buffer>,
  contentType: string | undefined,
  redact: (text: string) => string,
): Promise<ConnectorError> {
  const status = res.statusCode;
  const excerpt = redact((await excerptOf(body)).trim());
  const short = excerpt.length > MESSAGE_EXCERPT_CHARS ? `${excerpt.slice(0, MESSAGE_EXCERPT_CHARS)}...` : excerpt;
  const retryable = status >= 500 || status === 408 || status === 429;
  return new ConnectorError(`${what} answered HTTP ${status}${short ? `: ${short}` : ''}`, {
    code: `HTTP_${status}`,
    retryable,
    retryAfterMs: retryable ? parseRetryAfter(headerText(res.headers['retry-after'])) : undefined,
    details: { status, content_type: contentType, body: excerpt || undefined },
  });
}

async function parseJson<T>(bytes: Buffer, what: string, status: number, contentType: string | undefined, redact: (text: string) => string): Promise<T> {
  try {
    return JSON.parse(bytes.toString('utf8')) as T;
  } catch (err) {
    const excerpt = redact(bytes.subarray(0, EXCERPT_BYTES).toString('utf8'));
    return Promise.reject(
      new ConnectorError(`${what}: the response is not JSON (HTTP ${status}, ${contentType ?? 'no content type'}): ${(err as Error).message}`, {
        code: 'INVALID_JSON',
        details: { status, content_type: contentType, body: excerpt },
      }),
    );
  }
}

/** Reads a response's JSON body under its size cap (see HttpResponse.json). */
export function readJson<T = unknown>(response: HttpResponse): Promise<T> {
  return response.json<T>();
}

/** `Retry-After: 120` or `Retry-After: Wed, 21 Oct 2026 07:28:00 GMT`, in milliseconds from now (never negative). */
export function parseRetryAfter(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined) return undefined;
  const text = value.trim();
  if (/^\d+$/.test(text)) return Number(text) * 1000;
  const at = Date.parse(text);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}

/** Drops a body without reading it: the connection is closed rather than drained, and the stream's own abort error is expected. */
function discard(body: Dispatcher.ResponseData['body']): void {
  if (body.destroyed) return;
  body.on('error', () => {});
  body.destroy();
}

/** GET and HEAD follow redirects; a request with a body does not, since undici resends a 301/302/303 as a GET without it. */
function followsRedirects(method: string): boolean {
  return method === 'GET' || method === 'HEAD';
}

function headerText(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

function seconds(ms: number): string {
  return ms % 1000 === 0 ? `${ms / 1000} s` : `${ms} ms`;
}
