import type { Logger } from 'pino';
import { CancelledError, codeOf, ConnectorError, isRetryable, retryAfterOf, serializeError, wrapError } from '../errors.js';
import type { RetryPolicy } from './policy.js';
import { timerDelay } from '../util/timer-delay.js';

export interface RetryOptions {
  readonly policy: RetryPolicy;
  readonly signal: AbortSignal;
  readonly log: Logger;
  /** A gerund phrase for messages: "writing 500 records to alerts". */
  readonly what: string;
  /** Test seam: the random source for jitter. */
  readonly random?: () => number;
  /** Told before each retry (metrics count them). */
  readonly onRetry?: (attempt: number) => void;
}

/**
 * Exponential backoff with "equal jitter": half the doubled delay fixed, half random, so a fleet
 * of processors hit by one outage does not retry in lockstep, yet no wait collapses to zero.
 */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  const exponential = Math.min(policy.maxBackoffMs, policy.initialBackoffMs * 2 ** (attempt - 1));
  return exponential / 2 + (random() * exponential) / 2;
}

/**
 * Runs `operation` until it succeeds, fails with an error that is not retryable, or has used
 * `maxAttempts`. Waits honour the server's Retry-After; one longer than max_backoff ends the
 * retries instead of stalling the cycle. The final error keeps the last cause and says how many
 * attempts were made.
 */
export async function withRetry<T>(operation: (attempt: number) => Promise<T>, options: RetryOptions): Promise<T> {
  const { policy, signal, log, what } = options;
  for (let attempt = 1; ; attempt++) {
    if (signal.aborted) throw stoppedBy(signal, what);
    try {
      return await operation(attempt);
    } catch (err) {
      // A deadline that passed (code TIMEOUT) is not a cancel: its error says so itself.
      if (signal.aborted) throw err instanceof CancelledError || codeOf(err) === 'TIMEOUT' ? err : stoppedBy(signal, what, err);
      if (!isRetryable(err)) throw err;
      if (attempt >= policy.maxAttempts) {
        throw wrapError(`${what}: gave up after ${attempt} attempt${attempt === 1 ? '' : 's'}`, err);
      }
      const asked = retryAfterOf(err);
      if (asked !== undefined && asked > policy.maxBackoffMs) {
        throw wrapError(`${what}: the server asked to wait ${Math.ceil(asked / 1000)}s, longer than retry.max_backoff`, err, { retryable: false });
      }
      const delay = Math.max(backoffDelay(attempt, policy, options.random), asked ?? 0);
      log.warn({ err: serializeError(err), attempt, next_attempt_in_ms: Math.round(delay) }, `${what} failed; trying again`);
      options.onRetry?.(attempt);
      await sleep(delay, signal, what);
    }
  }
}

/**
 * Why a request could not start: a deadline that passed (AbortSignal.timeout, code TIMEOUT)
 * is not a cancel, and is not reported as one.
 */
function stoppedBy(signal: AbortSignal, what: string, cause: unknown = signal.reason): Error {
  const reason = signal.reason as { name?: string } | undefined;
  if (reason?.name === 'TimeoutError') return new ConnectorError(`${what}: not finished before its deadline`, { code: 'TIMEOUT', cause });
  return new CancelledError(what, cause);
}

/** Waits, or throws CancelledError as soon as the signal is aborted. */
export function sleep(ms: number, signal: AbortSignal, what = 'waiting'): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(stoppedBy(signal, what));
    const onAbort = () => {
      clearTimeout(timer);
      reject(stoppedBy(signal, what));
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', onAbort);
      resolve();
    }, timerDelay(ms));
    signal.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * Races `work` against a deadline and the signal: for calls that cannot take a signal themselves
 * (a library's connect), so that nothing waits without bound. The work itself is not stopped;
 * the caller stops waiting for it.
 */
export function withDeadline<T>(work: Promise<T>, ms: number, signal: AbortSignal, what: string): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const done = () => {
      clearTimeout(timer);
      signal.removeEventListener('abort', onAbort);
    };
    const onAbort = () => {
      done();
      reject(new CancelledError(what, signal.reason));
    };
    const timer = setTimeout(() => {
      done();
      reject(new ConnectorError(`${what}: no answer within ${ms / 1000}s`, { code: 'TIMEOUT', retryable: true }));
    }, timerDelay(ms));
    if (signal.aborted) return onAbort();
    signal.addEventListener('abort', onAbort, { once: true });
    work.then(
      (value) => {
        done();
        resolve(value);
      },
      (err) => {
        done();
        reject(err);
      },
    );
  });
}
