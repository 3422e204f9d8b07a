import type { Logger } from 'pino';
import type { FieldDescriptor } from '../src/records/fields.js';
import type { RecordBatch, RowLayout } from '../src/records/layout.js';

/** A JSON Schema fragment (draft-07), as the config validator and the docs generator read it. */
export type JsonSchema = { [key: string]: unknown };

/** What a connector is handed when it is created, once per config load (and again after a failed creation). */
export interface CreateContext {
  /** The datasource's or target's name in the config. */
  readonly name: string;
  /** Relative paths in the config resolve against the config file's folder. */
  readonly configDir: string;
  readonly log: Logger;
  /** Aborted when creation takes too long or the run is stopping: creation must never wait on the network without bound. */
  readonly signal: AbortSignal;
}

/** What every call into a running connector receives: cancellation reaches the I/O it does. */
export interface OperationContext {
  /** Aborted by a second Ctrl-C or a shutdown deadline: a hung request, commit or upload is abandoned. */
  readonly signal: AbortSignal;
  readonly log: Logger;
  /**
   * The id of the run doing the operation. A batch replayed from the dead-letter spool keeps the
   * run id it was matched in, so `batch.runId` does not tell which run is writing it.
   */
  readonly cycle?: string;
}

export interface ReadContext extends OperationContext {
  /** Rows per batch handed to the rules. */
  readonly batchSize: number;
  /**
   * Set when the datasource has `incremental` and an earlier cycle committed a watermark. A
   * source MAY use it to read less (a bound query parameter, a query string); it must then still
   * return every record whose field is greater than or EQUAL to `value` (records at exactly the
   * watermark are told apart by the pipeline). The pipeline filters every batch itself, so a
   * source that ignores it is still correct.
   */
  readonly watermark?: { readonly field: string; readonly value: string | number };
}

/** Pulls records. `read` is called once per cycle and yields batches; the caller's pace is the source's pace (backpressure). */
export interface Source {
  read(ctx: ReadContext): AsyncIterable<RecordBatch>;
  /** Tests that the source can be read (the file exists, the server answers and accepts our credentials); throws a ConnectorError if not. */
  check?(ctx: OperationContext): Promise<string | void>;
  close?(): Promise<void>;
}

/** Records that matched one rule on one datasource, on their way to a target. */
export interface MatchBatch {
  readonly rule: string;
  readonly datasource: string;
  readonly runId: string;
  /** ISO 8601: when the first record of the batch matched. */
  readonly matchedAt: string;
  readonly layout: RowLayout;
  readonly rows: readonly unknown[];
  /** The source's fields (name, type, nullable) when it knows them; metadata fields are not included. */
  readonly fields?: readonly FieldDescriptor[];
}

/** A batch as a target receives it, with a stable identity so that a retried write can be recognised by the peer. */
export interface DeliveryBatch extends MatchBatch {
  /**
   * Derived from the target, the rule, the datasource and the records' content (never from the
   * run id or the time), so the same records sent again, in a retry or a later cycle, carry the
   * same key. REST sends it as `Idempotency-Key`.
   */
  readonly idempotencyKey: string;
}

/**
 * How a target's writes become visible, which decides how the cycle counts and cancels them.
 * - `atomic`: nothing written in a cycle is visible before `flush`, which publishes it all
 *   (file: rename; PostgreSQL: commit; S3: complete the upload); `abort` discards it.
 *   Records count as exported when `flush` returns.
 * - `per-write`: each `write` that returns has delivered its records for good (console, REST,
 *   Redis). They count as exported then, and nothing can take them back. A write that fails
 *   after delivering some of its records throws a PartialWriteError saying how many (never retried)
 *   and, when they are not the first ones of the batch, which were not: the dead-letter spool
 *   keeps exactly those.
 */
export type DeliveryGuarantee = 'atomic' | 'per-write';

/** Delivers matches. `write` is never called for one sink by two callers at once unless the spec allows it (`maxInFlight`). */
export interface Sink {
  readonly delivery: DeliveryGuarantee;
  write(batch: DeliveryBatch, ctx: OperationContext): Promise<void>;
  /** End of a cycle: make what was written durable and visible. A per-write target has nothing left to do but may flush buffers. */
  flush(ctx: OperationContext): Promise<void>;
  /** A cycle failed or was cut short: drop what is not yet visible. Per-write targets cannot take anything back. */
  abort?(ctx: OperationContext): Promise<void>;
  /** Tests the connection and permissions; throws a ConnectorError if the target cannot be written to. Returns a short note (e.g. the server version). */
  check?(ctx: OperationContext): Promise<string | void>;
  close?(): Promise<void>;
}

/** The shared batching keys a target accepts, with the defaults the target's spec chooses. */
export interface BatchingDefaults {
  /** Records per write. */
  readonly batch_size: number;
  /** Approximate bytes (UTF-16 units of the values) per write. */
  readonly batch_bytes: number;
  /** How long a partly filled batch may wait for more records before it is written anyway. */
  readonly linger: string;
  /** Writes one target may have in flight at once. */
  readonly max_in_flight: number;
}

/** What every connector declares: its type name, a one-line summary, its config schema, and how to create it. */
interface ConnectorSpecBase<C> {
  readonly type: string;
  readonly summary: string;
  /** JSON Schema of the connector's own keys (`type`, `description` and, for targets, the shared delivery keys are added). */
  readonly configSchema: JsonSchema;
  /** Checks that need more than the schema (a glob, an encoding name); each issue names its key, or a path below it (`['headers', name]`). */
  validate?(config: C): { key: string | readonly string[]; message: string }[];
}

export interface SourceSpec<C = any> extends ConnectorSpecBase<C> {
  readonly kind: 'source';
  /** Must not wait on the network without bound: connect lazily, or honour ctx.signal. */
  create(config: C, ctx: CreateContext): Promise<Source>;
}

export interface SinkSpec<C = any> extends ConnectorSpecBase<C> {
  readonly kind: 'target';
  /** The target's defaults for the shared batching keys (batch_size, batch_bytes, linger, max_in_flight). */
  readonly batching: BatchingDefaults;
  /** Must not wait on the network without bound: connect lazily, or honour ctx.signal. */
  create(config: C, ctx: CreateContext): Promise<Sink>;
}

export type ConnectorSpec = SourceSpec | SinkSpec;
