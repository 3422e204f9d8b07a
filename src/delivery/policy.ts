import type { BatchingDefaults, JsonSchema } from '../../connectors/types.js';
import { DURATION_HINT, parseDuration } from '../rules/duration.js';

/**
 * The delivery keys every export target accepts, with the same names and meaning everywhere:
 * how matches are gathered into writes (batch_size, batch_bytes, linger, max_in_flight) and how
 * a failed write is tried again (retry). Each target's spec picks its own batching defaults.
 */
export interface DeliveryPolicy {
  readonly batchSize: number;
  readonly batchBytes: number;
  readonly lingerMs: number;
  readonly maxInFlight: number;
  readonly retry: RetryPolicy;
}

export interface RetryPolicy {
  /** Attempts in all, the first included: 1 means no retry. */
  readonly maxAttempts: number;
  readonly initialBackoffMs: number;
  readonly maxBackoffMs: number;
}

export const RETRY_DEFAULTS = { max_attempts: 5, initial_backoff: '200ms', max_backoff: '30s' } as const;

export interface DeliveryConfig {
  readonly batch_size?: number;
  readonly batch_bytes?: number;
  readonly linger?: string;
  readonly max_in_flight?: number;
  readonly concurrency?: number;
  readonly retry?: { readonly max_attempts?: number; readonly initial_backoff?: string; readonly max_backoff?: string };
}

/** What the schema accepts as a duration; the validator turns a mismatch into "must be a duration such as ...". */
export const DURATION_PATTERN = '^\\s*(\\d+(\\.\\d+)?\\s*(ms|s|m|h|d|w)\\s*)+$';

export const duration = (description: string, example: string, fallback?: string): JsonSchema => ({
  type: 'string',
  pattern: DURATION_PATTERN,
  description: `${description} (${DURATION_HINT}).`,
  ...(fallback !== undefined ? { default: fallback } : {}),
  examples: [example],
});

/** The schema of the shared keys, with a target's defaults shown. */
export function deliverySchema(defaults: BatchingDefaults): Record<string, JsonSchema> {
  return {
    batch_size: {
      type: 'integer',
      minimum: 1,
      default: defaults.batch_size,
      description: 'Records per write: matches from many source batches are gathered into writes of up to this many records (per rule and datasource).',
    },
    batch_bytes: {
      type: 'integer',
      minimum: 1024,
      default: defaults.batch_bytes,
      description: 'Approximate size cap of a write, in bytes of record values; a batch is written when it reaches batch_size or this, whichever comes first.',
    },
    linger: duration('How long a partly filled batch waits for more matches before it is written anyway', '1s', defaults.linger),
    max_in_flight: {
      type: 'integer',
      minimum: 1,
      maximum: 64,
      default: defaults.max_in_flight,
      description: 'Writes this target may have in progress at once.',
    },
    retry: {
      type: 'object',
      additionalProperties: false,
      description:
        'How a write that failed with a retryable error (network trouble, a 5xx or 429, a timeout) is tried again: exponential backoff with jitter, ' +
        "at least as long as a server's Retry-After. Permanent errors (a 400, a constraint violation) are not retried.",
      properties: {
        max_attempts: { type: 'integer', minimum: 1, maximum: 100, default: RETRY_DEFAULTS.max_attempts, description: 'Attempts in all, the first included; 1 turns retries off.' },
        initial_backoff: duration('Wait before the first retry; doubled at each further one', '200ms', RETRY_DEFAULTS.initial_backoff),
        max_backoff: duration(
          "Longest wait between attempts; a server asking (Retry-After) for longer fails the write instead of stalling the cycle",
          '30s',
          RETRY_DEFAULTS.max_backoff,
        ),
      },
    },
  };
}

export function retryPolicyOf(config: DeliveryConfig['retry'] = {}): RetryPolicy {
  return {
    maxAttempts: config.max_attempts ?? RETRY_DEFAULTS.max_attempts,
    initialBackoffMs: parseDuration(config.initial_backoff ?? RETRY_DEFAULTS.initial_backoff)!,
    maxBackoffMs: parseDuration(config.max_backoff ?? RETRY_DEFAULTS.max_backoff)!,
  };
}

/** A target's policy: its config's keys over its spec's defaults. */
export function deliveryPolicyOf(config: DeliveryConfig, defaults: BatchingDefaults): DeliveryPolicy {
  return {
    batchSize: config.batch_size ?? defaults.batch_size,
    batchBytes: config.batch_bytes ?? defaults.batch_bytes,
    lingerMs: parseDuration(config.linger ?? defaults.linger) ?? 0,
    // `concurrency` is the REST target's name for the same bound (its schema alone accepts it).
    maxInFlight: config.max_in_flight ?? config.concurrency ?? defaults.max_in_flight,
    retry: retryPolicyOf(config.retry),
  };
}
