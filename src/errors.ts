/**
 * The one error type connectors raise. It carries what a person (and the retry policy) needs:
 * a stable `code`, whether trying again can help, how long the server asked us to wait, and
 * what the server said, as fields rather than pasted into the message. Context is added by
 * wrapping with `{ cause }`, never by concatenating messages, so the chain stays inspectable.
 */

/** What the peer said, passed through: PostgreSQL's code/detail/hint/table/column/constraint, an HTTP status and body excerpt, an S3 error code. */
export type ErrorDetails = Readonly<Record<string, string | number | boolean | undefined>>;

export interface ConnectorErrorOptions {
  /** Stable and greppable: `ECONNREFUSED`, `HTTP_503`, `23505`, `NoSuchBucket`, `TIMEOUT`, `CANCELLED`, `INVALID_RECORD`. */
  readonly code: string;
  /** True when the same request may succeed later (network trouble, 5xx, 429, a lock timeout). Default: false. */
  readonly retryable?: boolean;
  /** The server's Retry-After (or equal), in milliseconds; the retry policy waits at least this long. */
  readonly retryAfterMs?: number;
  readonly details?: ErrorDetails;
  readonly cause?: unknown;
}

export class ConnectorError extends Error {
  readonly code: string;
  readonly retryable: boolean;
  readonly retryAfterMs: number | undefined;
  readonly details: ErrorDetails;

  constructor(message: string, options: ConnectorErrorOptions) {
    super(message, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ConnectorError';
    this.code = options.code;
    this.retryable = options.retryable ?? false;
    this.retryAfterMs = options.retryAfterMs;
    this.details = options.details ?? {};
  }
}

/** Thrown where an operation stops because its signal was aborted (a second Ctrl-C, a shutdown deadline). */
export class CancelledError extends ConnectorError {
  constructor(what: string, cause?: unknown) {
    super(`${what}: cancelled`, { code: 'CANCELLED', retryable: false, cause });
    this.name = 'CancelledError';
  }
}

/**
 * A per-write target's write that failed after its first `delivered` records had reached the
 * peer for good (a console write cut short by cancellation after some lines were printed). The
 * queue counts those exported and the rest failed. Never retried: the delivered records would be
 * sent twice.
 */
export class PartialWriteError extends ConnectorError {
  constructor(
    what: string,
    readonly delivered: number,
    cause: unknown,
    /**
     * Positions in the batch of the records that were not delivered, when they are not simply the
     * ones after the first `delivered` (a pipeline whose failures fall anywhere in the batch).
     */
    readonly undelivered?: readonly number[],
  ) {
    super(`${what}: stopped after ${delivered} record${delivered === 1 ? '' : 's'}`, { code: codeOf(cause) ?? 'PARTIAL_WRITE', retryable: false, cause });
    this.name = 'PartialWriteError';
  }
}

/**
 * Marks a failed write whose records are at fault, not the target: the target refused what they
 * hold (a constraint, a value its column cannot take) and said so. Such a batch fails again
 * however often it is sent, so the spool keeps it as refused instead of sending it every cycle.
 */
const RECORD_FAULT = Symbol('record fault');

export function markRecordFault<E>(err: E): E {
  if (err !== null && typeof err === 'object') Object.defineProperty(err, RECORD_FAULT, { value: true });
  return err;
}

export function isRecordFault(err: unknown): boolean {
  return causeChain(err).some((e) => e !== null && typeof e === 'object' && (e as Record<symbol, unknown>)[RECORD_FAULT] === true);
}

/** How many records of a failed write reached the peer anyway (0 unless the target said so). */
export function deliveredOf(err: unknown): number {
  for (const e of causeChain(err)) if (e instanceof PartialWriteError) return e.delivered;
  return 0;
}

/** The rows of a failed write that did not reach the peer: all, the ones after those delivered, or the ones the target named. */
export function undeliveredRowsOf<T>(err: unknown, rows: readonly T[]): readonly T[] {
  for (const e of causeChain(err)) {
    if (!(e instanceof PartialWriteError)) continue;
    return e.undelivered ? e.undelivered.map((i) => rows[i]!) : rows.slice(e.delivered);
  }
  return rows;
}

/** Socket-level failures that say nothing about the request itself: trying again may work. */
const TRANSIENT_CODES = new Set([
  'ECONNREFUSED',
  'ECONNRESET',
  'ECONNABORTED',
  'ETIMEDOUT',
  'EPIPE',
  'EAI_AGAIN',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'ENETDOWN',
  'ENOTCONN',
  'UND_ERR_CONNECT_TIMEOUT',
  'UND_ERR_HEADERS_TIMEOUT',
  'UND_ERR_BODY_TIMEOUT',
  'UND_ERR_SOCKET',
  'UND_ERR_CLOSED',
]);

/** The error's own code, if it has a string one (Node's `ECONNREFUSED`, undici's `UND_ERR_*`, pg's SQLSTATE). */
export function codeOf(err: unknown): string | undefined {
  const code = (err as { code?: unknown } | null)?.code;
  return typeof code === 'string' && code.length > 0 ? code : undefined;
}

/**
 * Whether the retry policy should try again: a ConnectorError says so itself; otherwise the
 * error, or anything in its cause chain, is a known transient socket failure.
 */
export function isRetryable(err: unknown): boolean {
  if (err instanceof ConnectorError) return err.retryable;
  for (const e of causeChain(err)) {
    const code = codeOf(e);
    if (code !== undefined && TRANSIENT_CODES.has(code)) return true;
  }
  return false;
}

/** How long the peer asked us to wait before the next attempt, if it said. */
export function retryAfterOf(err: unknown): number | undefined {
  for (const e of causeChain(err)) if (e instanceof ConnectorError && e.retryAfterMs !== undefined) return e.retryAfterMs;
  return undefined;
}

/** The error and its causes, outermost first (cycles and absurd depths cut off). */
export function causeChain(err: unknown): unknown[] {
  const chain: unknown[] = [];
  for (let e: unknown = err; e !== undefined && e !== null && chain.length < 10 && !chain.includes(e); e = (e as { cause?: unknown }).cause) {
    chain.push(e);
    // AggregateError (e.g. undici's connect to several addresses) keeps the real reasons in `errors`.
    if (e instanceof AggregateError && e.errors.length > 0 && (e as { cause?: unknown }).cause === undefined) {
      chain.push(e.errors[0]);
      break;
    }
  }
  return chain;
}

function messageOf(err: unknown): string {
  if (err instanceof Error) return err.message || codeOf(err) || err.name;
  return String(err);
}

/**
 * `writing batch of 500 to alerts: connect ECONNREFUSED 127.0.0.1:6379`: each level's message,
 * outer to inner, with repeats dropped (a wrapper often quotes its cause).
 */
export function describeError(err: unknown): string {
  const parts: string[] = [];
  for (const e of causeChain(err)) {
    const message = messageOf(e);
    if (message && !parts.some((p) => p.includes(message))) parts.push(message);
  }
  return parts.join(': ');
}

/** An error as a log field: message chain, code, retryable, the peer's details, and each cause. Never a stack of an expected failure. */
export function serializeError(err: unknown): Record<string, unknown> {
  const chain = causeChain(err);
  const out: Record<string, unknown> = { message: describeError(err) };
  const code = chain.map(codeOf).find((c) => c !== undefined);
  if (code !== undefined) out.code = code;
  if (err instanceof ConnectorError) {
    out.retryable = err.retryable;
    if (Object.keys(err.details).length > 0) out.details = err.details;
  }
  const name = err instanceof Error ? err.name : undefined;
  if (name && name !== 'Error' && name !== 'ConnectorError') out.type = name;
  if (chain.length > 1) {
    out.causes = chain.slice(1).map((e) => {
      const c: Record<string, unknown> = { message: messageOf(e) };
      const ccode = codeOf(e);
      if (ccode) c.code = ccode;
      if (e instanceof ConnectorError && Object.keys(e.details).length > 0) c.details = e.details;
      return c;
    });
  }
  // A bug (not a connector's reported failure) keeps its stack, so it can be found.
  if (!(err instanceof ConnectorError) && err instanceof Error && (err instanceof TypeError || err instanceof RangeError || err instanceof ReferenceError)) {
    out.stack = err.stack;
  }
  return out;
}

/**
 * Wraps any failure of `what` (a gerund phrase: "writing batch of 500 to alerts") keeping the
 * cause, its code and retryability. The message is `what` alone: describeError() reads the chain.
 */
export function wrapError(what: string, err: unknown, extra: Partial<ConnectorErrorOptions> = {}): ConnectorError {
  return new ConnectorError(what, {
    code: extra.code ?? codeOf(err) ?? 'ERROR',
    retryable: extra.retryable ?? isRetryable(err),
    retryAfterMs: extra.retryAfterMs ?? retryAfterOf(err),
    details: { ...(err instanceof ConnectorError ? err.details : {}), ...extra.details },
    cause: err,
  });
}
