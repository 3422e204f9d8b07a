import type { PoolClient } from 'pg';
import type Cursor from 'pg-cursor';
import type { CreateContext, OperationContext, ReadContext, Source, SourceSpec } from '../types.js';
import type { RecordBatch } from '../../src/records/layout.js';
import type { FieldDescriptor } from '../../src/records/fields.js';
import { retryPolicyOf, deliverySchema } from '../../src/delivery/policy.js';
import { withRetry } from '../../src/delivery/retry.js';
import { CancelledError, serializeError } from '../../src/errors.js';
import { uniqueColumnNames } from '../csv/csv-header.js';
import { connectionProblems, PostgresConnection, postgresConnectionProperties, type PostgresConnectionConfig } from './postgres-connection.js';
import { isConnectionFailure, translatePgError } from './postgres-errors.js';
import { descriptorsOf, PostgresRowLayout, typeParsers, type TypeParsers } from './postgres-types.js';
import { copyableQuery, copyBatches } from './postgres-copy-reader.js';
import { highestPlaceholder } from './postgres-placeholders.js';
import { rowsPerBatch } from '../../src/records/batch-values.js';

export interface PostgresSourceConfig extends PostgresConnectionConfig {
  type: 'postgresql';
  query: string;
  params?: (string | number | boolean | null)[];
  /** The pipeline's key (src/config/schema.ts); with it, the watermark is bound after params. */
  incremental?: { field: string };
  retry?: { max_attempts?: number; initial_backoff?: string; max_backoff?: string };
}

/** The targets' retry keys, with their meaning and defaults; a datasource has no batching keys, so the numbers passed here are not used. */
const { retry: retrySchema } = deliverySchema({ batch_size: 1, batch_bytes: 1024, linger: '0s', max_in_flight: 1 });

/** Rows of a cursor's first read, before its columns are known (rowsPerBatch then sets the size). */
const FIRST_CURSOR_READ = 100;

export const postgresSource: SourceSpec<PostgresSourceConfig> = {
  kind: 'source',
  type: 'postgresql',
  summary: 'Rows of a PostgreSQL query, streamed in batches (COPY, or a cursor for a query with params); numeric and bigint stay exact, json/jsonb are objects.',
  configSchema: {
    type: 'object',
    required: ['query'],
    properties: {
      ...postgresConnectionProperties,
      query: {
        type: 'string',
        minLength: 1,
        description:
          'The SELECT whose rows the rules read, streamed in batches of settings.batch_size (through COPY TO STDOUT, or a cursor when it has params), ' +
          'so a large result never sits in memory. Refer to params as $1, $2...',
        examples: ["SELECT * FROM metrics WHERE created_at > NOW() - INTERVAL '1 hour'", 'SELECT * FROM events WHERE site = $1 AND level >= $2'],
      },
      params: {
        type: 'array',
        items: { type: ['string', 'number', 'boolean', 'null'] },
        description:
          'Values bound to $1..$n of the query by the server, never pasted into its text. With `incremental`, the watermark is bound as $n+1 ' +
          '(NULL before the first committed cycle), e.g. `WHERE $2::timestamptz IS NULL OR created_at >= $2`.',
        examples: [['paris', 3]],
      },
      retry: {
        ...(retrySchema as object),
        description:
          'How a query that cannot connect (connection refused or lost, the server restarting, too many sessions) is tried again before the datasource fails. ' +
          'Once rows have been handed to the rules a failure is not retried, so no row is read twice.',
      },
    },
  },
  validate(config) {
    const problems = connectionProblems(config);
    const highest = highestPlaceholder(config.query);
    const given = config.params?.length ?? 0;
    const bound = given + (config.incremental ? 1 : 0);
    if (highest > bound) {
      const watermark = config.incremental ? ` (and $${given + 1} is the incremental watermark)` : '';
      problems.push({ key: 'params', message: `the query refers to $${highest} but params holds ${given} value${given === 1 ? '' : 's'}${watermark}` });
    }
    return problems;
  },
  async create(config, ctx) {
    const connection = await PostgresConnection.open(config, ctx.configDir, (err) =>
      ctx.log.warn({ err: serializeError(err) }, 'a PostgreSQL connection failed; it is replaced on next use'),
    );
    const pg = (await import('pg')).default;
    const CursorClass = (await import('pg-cursor')).default;
    const copyTo = (await import('pg-copy-streams')).to;
    return new PostgresSource(config, ctx, connection, typeParsers(pg.types as TypeParsers), CursorClass, copyTo);
  },
};

interface ResultField {
  readonly name: string;
  readonly dataTypeID: number;
}

/** A query running on its connection: its columns, its batches in order (an empty one at the end), and how to stop it. */
interface OpenResult {
  readonly fields: readonly ResultField[];
  next(): Promise<unknown[][]>;
  /** `finished`: every row was read. Rejects when the connection cannot go back to the pool. */
  close(finished: boolean): Promise<void>;
}

/** Gives the connection back (or, with an error, ends it) once, whoever gets there first: the reader, or a cancellation. */
type Release = (err?: Error) => void;

function releaseOnce(client: PoolClient, connection: PostgresConnection): Release {
  let released = false;
  return (err) => {
    if (released) return;
    released = true;
    // A connection given up on with an error may still be running the query: the server is told to stop it.
    if (err) connection.cancelOnServer(client);
    client.release(err);
  };
}

class PostgresSource implements Source {
  readonly #what: string;

  constructor(
    private readonly config: PostgresSourceConfig,
    ctx: CreateContext,
    private readonly connection: PostgresConnection,
    private readonly types: TypeParsers,
    private readonly CursorClass: typeof Cursor,
    private readonly copyTo: typeof import('pg-copy-streams').to,
  ) {
    this.#what = `datasource "${ctx.name}" (postgresql, ${connection.label})`;
  }

  async *read(read: ReadContext): AsyncIterable<RecordBatch> {
    const batchSize = Math.max(1, read.batchSize);
    // Connecting and the first batch are retried: until a row is handed on, trying again repeats nothing.
    const { release, result, first } = await withRetry(() => this.open(read, batchSize), {
      policy: retryPolicyOf(this.config.retry),
      signal: read.signal,
      log: read.log,
      what: `reading ${this.#what}`,
    });
    let broken: unknown;
    let finished = false;
    const onAbort = () => release(new Error('reading cancelled'));
    read.signal.addEventListener('abort', onAbort, { once: true });
    try {
      let rows = first;
      const shape = this.shape(result.fields, read);
      while (rows.length > 0) {
        yield { layout: shape.layout, rows, fields: shape.fields };
        if (read.signal.aborted) break;
        rows = await result.next();
      }
      finished = rows.length === 0;
    } catch (err) {
      broken = err;
      throw read.signal.aborted ? new CancelledError(`reading ${this.#what}`, err) : this.translate(err);
    } finally {
      read.signal.removeEventListener('abort', onAbort);
      if (!read.signal.aborted) await this.finish(release, result, finished, broken);
    }
  }

  /** A client with the query running and its first batch read: through COPY when the query has no params, else a cursor. */
  private async open(read: ReadContext, batchSize: number): Promise<{ release: Release; result: OpenResult; first: unknown[][] }> {
    const client = await this.connection.connect(read.signal, `connecting ${this.#what}`).catch((err) => {
      throw this.translate(err);
    });
    const release = releaseOnce(client, this.connection);
    // A query may run long before its first row (a sort, a join): cancelling must not wait for it.
    const onAbort = () => release(new Error('reading cancelled'));
    read.signal.addEventListener('abort', onAbort, { once: true });
    try {
      if (read.signal.aborted) throw new CancelledError(`reading ${this.#what}`, read.signal.reason);
      const values = this.boundValues(read.watermark);
      const copy = values.length === 0 ? await this.describe(client) : undefined;
      const result = copy ? this.openCopy(client, copy, batchSize) : this.openCursor(client, values, batchSize);
      return { release, result, first: await result.next() };
    } catch (err) {
      if (read.signal.aborted) throw new CancelledError(`reading ${this.#what}`, err);
      // A connection that failed goes; one that only saw an SQL error is healthy and goes back to the pool.
      release(isConnectionFailure(err) ? (err as Error) : undefined);
      throw this.translate(err);
    } finally {
      read.signal.removeEventListener('abort', onAbort);
    }
  }

  /**
   * The result's columns without running the query (LIMIT 0 stops before the first row), for
   * the COPY path, which sends no column types. Undefined when the query cannot be wrapped so
   * (not a plain SELECT): then the cursor runs it and reports any error with its real position.
   */
  private async describe(client: PoolClient): Promise<ResultField[] | undefined> {
    try {
      const { fields } = await client.query({ text: `SELECT * FROM (${copyableQuery(this.config.query)}\n) AS tp_describe LIMIT 0`, rowMode: 'array' });
      return fields.map((f) => ({ name: f.name, dataTypeID: f.dataTypeID }));
    } catch (err) {
      if (isConnectionFailure(err)) throw err;
      return undefined;
    }
  }

  /** `COPY (query) TO STDOUT`: the server streams text, the fastest way out of PostgreSQL (see docs/postgresql.md), read with backpressure. */
  private openCopy(client: PoolClient, fields: ResultField[], batchSize: number): OpenResult {
    const stream = client.query(this.copyTo(`COPY (${copyableQuery(this.config.query)}\n) TO STDOUT`));
    const batches = copyBatches(stream, this.types, fields.map((f) => f.dataTypeID), rowsPerBatch(batchSize, fields.length));
    return {
      fields,
      async next() {
        const { value, done } = await batches.next();
        return done ? [] : value;
      },
      // A COPY cannot be stopped half-way but by ending its connection.
      close: async (finished) => {
        if (!finished) throw new Error('the COPY was stopped before its end');
      },
    };
  }

  /**
   * params, then, when the query refers to the next placeholder and the datasource is
   * incremental, the watermark: the server then returns only what is new, and the pipeline's
   * own filter (which settles ties at the watermark) has little left to skip.
   */
  private boundValues(watermark: ReadContext['watermark']): (string | number | boolean | null)[] {
    const params = this.config.params ?? [];
    if (!this.config.incremental || highestPlaceholder(this.config.query) <= params.length) return params;
    return [...params, watermark?.value ?? null];
  }

  private openCursor(client: PoolClient, values: (string | number | boolean | null)[], batchSize: number): OpenResult {
    const cursor = client.query(new this.CursorClass(this.config.query, values, { rowMode: 'array', types: this.types }));
    const fieldsOf = () => (cursor as unknown as { _result?: { fields?: ResultField[] } })._result?.fields ?? [];
    // The columns are known once the first rows come: until then a small read, so that a wide
    // result is never read 2,000 rows at a time.
    let size = Math.min(batchSize, FIRST_CURSOR_READ);
    let ended = false;
    return {
      get fields() {
        return fieldsOf();
      },
      async next() {
        if (ended) return [];
        const rows = (await cursor.read(size)) as unknown[][];
        ended = rows.length < size;
        size = rowsPerBatch(batchSize, fieldsOf().length);
        return rows;
      },
      close: () => cursor.close(),
    };
  }

  /** The layout and descriptors of this result, from its columns; repeated names get _2, _3 as a CSV header's do. */
  private shape(fields: readonly ResultField[], read: ReadContext): { layout: PostgresRowLayout; fields: FieldDescriptor[] } {
    const { names, renamed } = uniqueColumnNames(fields.map((f) => f.name));
    if (renamed.length > 0) read.log.warn({ renamed }, 'the query returns repeated column names; later ones are renamed so rules can reach them');
    const descriptors = descriptorsOf(names, fields.map((f) => f.dataTypeID));
    return { layout: new PostgresRowLayout(descriptors), fields: descriptors };
  }

  /** Returns the connection to the pool once the result is closed; a connection that failed, or a COPY stopped early, is ended instead. */
  private async finish(release: Release, result: OpenResult, finished: boolean, broken: unknown): Promise<void> {
    if (broken !== undefined && isConnectionFailure(broken)) return release(broken as Error);
    try {
      await result.close(finished);
      release();
    } catch (err) {
      release(err as Error);
    }
  }

  private translate(err: unknown) {
    return translatePgError(`reading ${this.#what}`, err, { query: this.config.query, secrets: this.connection.resolved.secrets });
  }

  async check(op: OperationContext): Promise<string> {
    const client = await this.connection.connect(op.signal, `checking ${this.#what}`).catch((err) => {
      throw translatePgError(`checking ${this.#what}`, err, { secrets: this.connection.resolved.secrets });
    });
    try {
      const { rows } = await client.query<{ version: string }>('SELECT current_setting($1) AS version', ['server_version']);
      // Describing the query (parse and plan, no execution) catches a syntax error or a missing table before the first run.
      await client.query({ text: `EXPLAIN ${this.config.query}`, values: this.boundValues(undefined) });
      client.release();
      return `connected to ${this.connection.label} (PostgreSQL ${rows[0]?.version}); the query plans`;
    } catch (err) {
      client.release(isConnectionFailure(err) ? (err as Error) : undefined);
      // The server's position counts from the start of "EXPLAIN ", which the user did not write.
      const position = (err as { position?: unknown }).position;
      if (typeof position === 'string') Object.assign(err as object, { position: String(Math.max(1, Number(position) - 'EXPLAIN '.length)) });
      throw translatePgError(`checking ${this.#what}`, err, { query: this.config.query, secrets: this.connection.resolved.secrets });
    }
  }

  async close(): Promise<void> {
    await this.connection.close();
  }
}
