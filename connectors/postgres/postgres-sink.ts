import type { PoolClient } from 'pg';
import type { CreateContext, DeliveryBatch, OperationContext, Sink, SinkSpec } from '../types.js';
import { CancelledError, codeOf, ConnectorError, markRecordFault, serializeError } from '../../src/errors.js';
import { connectionProblems, PostgresConnection, postgresConnectionProperties, type PostgresConnectionConfig } from './postgres-connection.js';
import { isConnectionFailure, translatePgError } from './postgres-errors.js';
import { parseTableName, qualified, type TableName } from './postgres-sql.js';
import { TableWriter, type TableColumns } from './postgres-table-writer.js';

export interface PostgresSinkConfig extends PostgresConnectionConfig {
  type: 'postgresql';
  table: string;
  columns?: string[] | Record<string, string>;
  create_table?: boolean;
  mode?: 'insert' | 'upsert';
  conflict_columns?: string[];
  include_metadata?: boolean;
}

export const postgresSink: SinkSpec<PostgresSinkConfig> = {
  kind: 'target',
  type: 'postgresql',
  summary:
    "Writes matches into a PostgreSQL table with COPY, in one transaction per cycle: a cycle's records land whole or not at all. Inserts, or upserts on conflict_columns.",
  // A transaction holds one connection, so writes go one at a time; COPY pays off on large batches.
  batching: { batch_size: 5000, batch_bytes: 8 * 1024 * 1024, linger: '1s', max_in_flight: 1 },
  configSchema: {
    type: 'object',
    required: ['table'],
    properties: {
      ...postgresConnectionProperties,
      table: {
        type: 'string',
        minLength: 1,
        description: 'Table to write into, optionally schema-qualified; double-quote a part that holds dots or capitals.',
        examples: ['alerts', 'ops.alerts', '"Ops"."Alerts"'],
      },
      columns: {
        description:
          "Which columns to write. Default: every field of the records (metadata included unless include_metadata is false), each to the column of the same name. " +
          'A list names the fields to write to same-named columns; a mapping {column: field} writes a field (dotted paths reach into json) to a column of another name.',
        anyOf: [
          { type: 'array', items: { type: 'string', minLength: 1 }, minItems: 1, uniqueItems: true },
          { type: 'object', additionalProperties: { type: 'string', minLength: 1 }, minProperties: 1 },
        ],
        examples: [['sensor', 'value', '_matched_at'], { sensor_id: 'sensor', level: 'payload.level', rule: '_rule' }],
      },
      create_table: {
        type: 'boolean',
        default: false,
        description:
          'Create the table when it is missing, and add a column a record needs when the table lacks it, with types from the records\' fields: ' +
          'text, bigint, double precision, numeric (exact decimals, bigint sources), boolean, timestamptz, jsonb (objects and lists). ' +
          'In upsert mode the table gets a UNIQUE constraint on conflict_columns.',
      },
      mode: {
        type: 'string',
        enum: ['insert', 'upsert'],
        default: 'insert',
        description: 'insert: every record is a new row. upsert: a record whose conflict_columns match a row updates it (INSERT ... ON CONFLICT DO UPDATE), so a rerun adds no duplicate.',
      },
      conflict_columns: {
        type: 'array',
        items: { type: 'string', minLength: 1 },
        minItems: 1,
        uniqueItems: true,
        description: 'For mode: upsert: the columns of a unique index or primary key of the table that identify a row.',
        examples: [['sensor', '_rule']],
      },
    },
  },
  validate(config) {
    const problems = connectionProblems(config);
    try {
      parseTableName(config.table);
    } catch (err) {
      problems.push({ key: 'table', message: (err as Error).message });
    }
    if (config.mode === 'upsert' && !config.conflict_columns) {
      problems.push({ key: 'conflict_columns', message: 'mode: upsert needs conflict_columns: the columns that identify a row (a unique index or primary key)' });
    }
    if (config.conflict_columns && config.mode !== 'upsert') {
      problems.push({ key: 'conflict_columns', message: 'conflict_columns is only used with mode: upsert; set mode: upsert or remove it' });
    }
    return problems;
  },
  async create(config, ctx) {
    const connection = await PostgresConnection.open(config, ctx.configDir, (err) =>
      ctx.log.warn({ err: serializeError(err) }, 'a PostgreSQL connection failed; it is replaced on next use'),
    );
    const copyFrom = (await import('pg-copy-streams')).from;
    return new PostgresSink(config, ctx, connection, copyFrom);
  },
};

/** The cycle's transaction: one connection, BEGIN at the first write, COMMIT at flush, ROLLBACK at abort. */
interface Transaction {
  readonly client: PoolClient;
  readonly writer: TableWriter;
  writes: number;
  /** Set once the connection failed: what the transaction held is gone with it. */
  lost?: unknown;
}

class PostgresSink implements Sink {
  readonly delivery = 'atomic' as const;
  readonly #table: TableName;
  readonly #what: string;
  #tx: Transaction | undefined;
  /** Writes share one connection and one transaction, so they run one after another whatever max_in_flight says. */
  #queue: Promise<unknown> = Promise.resolve();

  constructor(
    private readonly config: PostgresSinkConfig,
    private readonly ctx: CreateContext,
    private readonly connection: PostgresConnection,
    private readonly copyFrom: typeof import('pg-copy-streams').from,
  ) {
    this.#table = parseTableName(config.table);
    this.#what = `export target "${ctx.name}" (postgresql, table ${qualified(this.#table)} on ${connection.label})`;
  }

  write(batch: DeliveryBatch, op: OperationContext): Promise<void> {
    return this.#serially(() => this.#write(batch, op));
  }

  flush(op: OperationContext): Promise<void> {
    return this.#serially(() => this.#commit(op));
  }

  abort(op: OperationContext): Promise<void> {
    return this.#serially(() => this.#rollback(op));
  }

  #serially<T>(work: () => Promise<T>): Promise<T> {
    const run = this.#queue.then(work, work);
    this.#queue = run.catch(() => {});
    return run;
  }

  async #write(batch: DeliveryBatch, op: OperationContext): Promise<void> {
    const what = `writing ${batch.rows.length} record${batch.rows.length === 1 ? '' : 's'} of rule "${batch.rule}" to ${this.#what}`;
    if (op.signal.aborted) throw new CancelledError(what, op.signal.reason);
    const tx = await this.#begin(op, what);
    if (tx.lost !== undefined) {
      throw new ConnectorError(`${what}: the connection failed earlier in this cycle and its transaction was rolled back; this cycle's records are not written`, {
        code: 'TRANSACTION_LOST',
        cause: tx.lost,
      });
    }
    let recordFault = false;
    try {
      await this.#guarded(tx, op, what, async () => {
        // A savepoint lets a write that failed (a deadlock, a bad record) be undone alone, so a retry finds the transaction usable.
        await tx.client.query('SAVEPOINT tp_write');
        try {
          await tx.writer.write(tx.client, batch, op.signal);
          await tx.client.query('RELEASE SAVEPOINT tp_write');
        } catch (err) {
          if (isConnectionFailure(err)) throw err;
          const undone = await tx.client.query('ROLLBACK TO SAVEPOINT tp_write').then(
            () => true,
            () => false,
          );
          // SQLSTATE classes 22 (data exception) and 23 (integrity constraint): the records are at fault.
          recordFault = undone && /^2[23]/.test(codeOf(err) ?? '');
          throw err;
        }
      });
    } catch (err) {
      throw recordFault && !op.signal.aborted ? markRecordFault(err) : err;
    }
    tx.writes++;
  }

  /** Runs a step of the transaction; a broken connection or a cancellation ends the transaction (the server rolls it back). */
  async #guarded(tx: Transaction, op: OperationContext, what: string, step: () => Promise<void>): Promise<void> {
    const onAbort = () => this.#drop(tx, new Error('cancelled'));
    op.signal.addEventListener('abort', onAbort, { once: true });
    try {
      await step();
    } catch (err) {
      if (op.signal.aborted) throw new CancelledError(what, err);
      if (isConnectionFailure(err)) {
        // Nothing earlier in the cycle survives a lost connection: retrying this write alone would publish part of a cycle.
        const first = tx.writes === 0;
        this.#drop(tx, err);
        // Before the first write nothing is lost, so a retry may start the transaction afresh.
        if (first && this.#tx === tx) this.#tx = undefined;
        const translated = translatePgError(what, err, { secrets: this.connection.resolved.secrets });
        if (first) throw translated;
        throw new ConnectorError(`${what}: the connection failed mid-cycle, so the cycle's transaction is rolled back`, {
          code: 'TRANSACTION_LOST',
          retryable: false,
          cause: translated,
        });
      }
      throw this.#explain(what, err);
    } finally {
      op.signal.removeEventListener('abort', onAbort);
    }
  }

  /** A server error with the table, column, constraint and the position of the first offending record. */
  #explain(what: string, err: unknown): ConnectorError {
    if (err instanceof ConnectorError) {
      return new ConnectorError(`${what}: ${err.message}`, { code: err.code, retryable: err.retryable, details: err.details, cause: err });
    }
    const where = (err as { where?: unknown }).where;
    const line = typeof where === 'string' ? /COPY [^,]+, line (\d+)/.exec(where)?.[1] : undefined;
    const at = line !== undefined ? ` (record ${line} of the batch)` : '';
    return translatePgError(`${what}${at}`, err, { secrets: this.connection.resolved.secrets });
  }

  async #begin(op: OperationContext, what: string): Promise<Transaction> {
    if (this.#tx) return this.#tx;
    const client = await this.connection.connect(op.signal, what).catch((err) => {
      throw translatePgError(what, err, { secrets: this.connection.resolved.secrets });
    });
    const tx: Transaction = { client, writer: new TableWriter(this.#tableColumns(), this.copyFrom), writes: 0 };
    this.#tx = tx;
    await this.#guarded(tx, op, what, async () => {
      await client.query('BEGIN');
    });
    return tx;
  }

  #tableColumns(): TableColumns {
    return {
      table: this.#table,
      columns: this.config.columns,
      createTable: this.config.create_table === true,
      mode: this.config.mode ?? 'insert',
      conflictColumns: this.config.conflict_columns ?? [],
      includeMetadata: this.config.include_metadata !== false,
      targetName: this.ctx.name,
    };
  }

  async #commit(op: OperationContext): Promise<void> {
    const tx = this.#tx;
    if (!tx) return;
    const what = `committing the cycle's ${tx.writes} write${tx.writes === 1 ? '' : 's'} to ${this.#what}`;
    if (op.signal.aborted) {
      this.#drop(tx, new Error('cancelled'));
      this.#tx = undefined;
      throw new CancelledError(what, op.signal.reason);
    }
    if (tx.lost !== undefined) {
      this.#tx = undefined;
      throw new ConnectorError(`${what}: the connection failed earlier in this cycle; nothing was written`, { code: 'TRANSACTION_LOST', cause: tx.lost });
    }
    await this.#guarded(tx, op, what, async () => {
      await tx.client.query('COMMIT');
    });
    this.#tx = undefined;
    tx.client.release();
  }

  async #rollback(_op: OperationContext): Promise<void> {
    const tx = this.#tx;
    if (!tx) return;
    this.#tx = undefined;
    if (tx.lost !== undefined) return;
    try {
      await tx.client.query('ROLLBACK');
      tx.client.release();
    } catch (err) {
      tx.client.release(err as Error);
    }
  }

  /** Ends the transaction by closing its connection: the server rolls it back. */
  #drop(tx: Transaction, reason: unknown): void {
    if (tx.lost !== undefined) return;
    tx.lost = reason;
    // The session may be busy (an upsert's INSERT ... SELECT): the server is told to stop; the transaction dies with the connection.
    this.connection.cancelOnServer(tx.client);
    tx.client.release(reason instanceof Error ? reason : new Error(String(reason)));
  }

  async check(op: OperationContext): Promise<string> {
    const what = `checking ${this.#what}`;
    const client = await this.connection.connect(op.signal, what).catch((err) => {
      throw translatePgError(what, err, { secrets: this.connection.resolved.secrets });
    });
    try {
      const note = await new TableWriter(this.#tableColumns(), this.copyFrom).check(client);
      client.release();
      return `${this.connection.label}: ${note}`;
    } catch (err) {
      client.release(isConnectionFailure(err) ? (err as Error) : undefined);
      if (err instanceof ConnectorError) throw new ConnectorError(`${what}: ${err.message}`, { code: err.code, details: err.details, cause: err });
      throw translatePgError(what, err, { secrets: this.connection.resolved.secrets });
    }
  }

  async close(): Promise<void> {
    const tx = this.#tx;
    if (tx) this.#drop(tx, new Error('closing'));
    this.#tx = undefined;
    await this.connection.close();
  }
}

