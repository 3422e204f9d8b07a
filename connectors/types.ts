import type { Logger } from 'pino';
import type { RecordBatch, RowLayout } from '../src/records/layout.js';

/** A JSON Schema fragment (draft-07), as the config validator and the docs generator read it. */
export type JsonSchema = { [key: string]: unknown };

/** What a connector is handed when it is created, once per config load. */
export interface CreateContext {
  /** The datasource's or target's name in the config. */
  readonly name: string;
  /** Relative paths in the config resolve against the config file's folder. */
  readonly configDir: string;
  readonly log: Logger;
}

export interface ReadContext {
  readonly log: Logger;
  /** Rows per batch handed to the rules. */
  readonly batchSize: number;
  /** Aborted when the run is stopping; a source stops reading early. */
  readonly signal: AbortSignal;
}

/** Pulls records. `read` is called once per cycle and yields batches; the caller's pace is the source's pace (backpressure). */
export interface Source {
  read(ctx: ReadContext): AsyncIterable<RecordBatch>;
  close?(): Promise<void>;
}

/** Records that matched one rule in one batch of one datasource, on their way to a target. */
export interface MatchBatch {
  readonly rule: string;
  readonly datasource: string;
  readonly runId: string;
  /** ISO 8601, the same for every record of the batch. */
  readonly matchedAt: string;
  readonly layout: RowLayout;
  readonly rows: readonly unknown[];
}

/** Delivers matches. Calls to `write` may come from several datasources at once; a sink serialises what must be. */
export interface Sink {
  write(batch: MatchBatch): Promise<void>;
  /** End of a cycle: make what was written durable and visible (a file target renames its temp files into place). */
  flush(): Promise<void>;
  /** A cycle failed or was cut short: drop what is half-written, so no partial output becomes visible. */
  abort?(): Promise<void>;
  close?(): Promise<void>;
}

/** What every connector declares: its type name, a one-line summary, its config schema, and how to create it. */
interface ConnectorSpecBase<C> {
  readonly type: string;
  readonly summary: string;
  /** JSON Schema of the connector's own keys (`type`, `description` and, for targets, `include_metadata` are added). */
  readonly configSchema: JsonSchema;
  /** Checks that need more than the schema (a glob, an encoding name); each issue names its key. */
  validate?(config: C): { key: string; message: string }[];
}

export interface SourceSpec<C = any> extends ConnectorSpecBase<C> {
  readonly kind: 'source';
  create(config: C, ctx: CreateContext): Promise<Source>;
}

export interface SinkSpec<C = any> extends ConnectorSpecBase<C> {
  readonly kind: 'target';
  create(config: C, ctx: CreateContext): Promise<Sink>;
}

export type ConnectorSpec = SourceSpec | SinkSpec;

/** Raised when a config names a connector whose implementation is not part of this build. */
export class NotImplementedError extends Error {
  constructor(kind: 'datasource' | 'export target', type: string) {
    super(
      `${kind} type "${type}" is not implemented in this build; ` +
        `this build reads csv datasources and writes to console and file export targets`,
    );
    this.name = 'NotImplementedError';
  }
}
