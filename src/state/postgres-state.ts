import { createHash } from 'node:crypto';
import { hostname } from 'node:os';
import type { Client } from 'pg';
import { resolveConnection, type PostgresConnectionConfig, type ResolvedConnection } from '../../connectors/postgres/postgres-connection.js';
import { withDeadline } from '../delivery/retry.js';
import { redactSecrets } from './redact.js';
import { changedDocuments, stateFromDocuments } from './state-documents.js';
import { type ServiceState, type StateBackend, StateInUseError, StateLockLostError } from './state-store.js';

export interface PostgresStateConfig extends PostgresConnectionConfig {
  readonly type: 'postgresql';
  readonly table?: string;
}

export const DEFAULT_STATE_TABLE = 'threshold_state';
/** Longest a state statement may wait for the server before the session is given up (and with it the lock). */
const QUERY_TIMEOUT_MS = 60_000;

/** `name` or `schema.name`, quoted for SQL. */
export function quoteTable(table: string): string {
  return table
    .split('.')
    .map((part) => `"${part.replace(/"/g, '""')}"`)
    .join('.');
}

/**
 * The state as rows of one table (name text primary key, body text, updated_at), one row per
 * document. A commit is one transaction, so a cycle's watermarks, dedup keys and spool change
 * together or not at all. The state is taken with a session-level advisory lock on a session of
 * its own, held while the process runs: if that session is lost, so is the lock, and commits fail
 * rather than write state another process may have taken since.
 */
export class PostgresStateBackend implements StateBackend {
  readonly #resolved: ResolvedConnection;
  readonly #table: string;
  #lockKey: { high: number; low: number } | undefined;
  #client: Client | undefined;
  #lost: string | undefined;
  #readOnly = false;

  constructor(config: PostgresStateConfig, configDir: string) {
    const resolved = resolveConnection(config, configDir);
    // Who holds the lock is read from pg_stat_activity: the application name says which process.
    const application_name = `threshold-processor pid ${process.pid} on ${hostname()}`.slice(0, 63);
    this.#resolved = { ...resolved, pg: { ...resolved.pg, application_name, query_timeout: QUERY_TIMEOUT_MS, max: 1 } };
    this.#table = config.table ?? DEFAULT_STATE_TABLE;
  }

  get label(): string {
    return `PostgreSQL state table ${this.#table} at ${this.#resolved.label}`;
  }

  spoolLocation(target: string): string {
    return `row "spool/${target}" of ${this.label}`;
  }

  async open(options: { readOnly?: boolean } = {}): Promise<void> {
    const pg = (await import('pg')).default;
    const client = new pg.Client(this.#resolved.pg);
    client.on('error', (err) => (this.#lost ??= err.message));
    client.on('end', () => (this.#lost ??= 'the session ended'));
    try {
      await withDeadline(client.connect(), this.#resolved.connectTimeoutMs + 1000, new AbortController().signal, `connecting to ${this.label}`);
      if (options.readOnly) {
        this.#client = client;
        this.#readOnly = true;
        return;
      }
      await this.createTable(client);
      // The lock is the table's own, not its name's: `state` and `public.state` are one table.
      const { rows: [table] } = await client.query<{ oid: string }>('SELECT to_regclass($1)::oid::text AS oid', [quoteTable(this.#table)]);
      this.#lockKey = lockKeyOf(`threshold-processor state table oid ${table!.oid}`);
      const { rows } = await client.query<{ ok: boolean }>('SELECT pg_try_advisory_lock($1::int, $2::int) AS ok', [this.#lockKey.high, this.#lockKey.low]);
      if (!rows[0]?.ok) throw new StateInUseError(`${this.label} is in use by ${await this.holder(client)}; two processes must not share one state (stop the other, or give this config its own settings.state.table)`);
    } catch (err) {
      await client.end().catch(() => {});
      throw this.clean(err);
    }
    this.#client = client;
  }

  /**
   * Two processes starting at once on a new table both run CREATE TABLE IF NOT EXISTS, neither
   * seeing the other's uncommitted table, and the second fails on the catalog's unique index
   * (23505, or 42P07) once the first commits. The table then exists: asking again succeeds, and
   * the lock that follows tells the second process who holds the state.
   */
  private async createTable(client: import('pg').Client): Promise<void> {
    const sql = `CREATE TABLE IF NOT EXISTS ${quoteTable(this.#table)} (name text PRIMARY KEY, body text NOT NULL, updated_at timestamptz NOT NULL DEFAULT now())`;
    try {
      await client.query(sql);
    } catch (err) {
      const code = (err as { code?: string }).code;
      if (code !== '23505' && code !== '42P07') throw err;
      await client.query(sql);
    }
  }

  async load(): Promise<ServiceState> {
    const { rows } = await this.session()
      .query<{ name: string; body: string }>(`SELECT name, body FROM ${quoteTable(this.#table)}`)
      .catch((err: { code?: string }) => {
        // A dry run before the first real one: no table yet, nothing remembered.
        if (this.#readOnly && err.code === '42P01') return { rows: [] };
        throw this.clean(err);
      });
    return stateFromDocuments(
      rows.map((r) => [r.name, r.body]),
      (name) => `row "${name}" of ${this.label}`,
    );
  }

  async commit(next: ServiceState, previous: ServiceState): Promise<void> {
    if (this.#readOnly) throw new Error(`${this.label} was opened read-only`);
    const client = this.session();
    const table = quoteTable(this.#table);
    try {
      await client.query('BEGIN');
      for (const [name, body] of changedDocuments(next, previous)) {
        if (body === undefined) await client.query(`DELETE FROM ${table} WHERE name = $1`, [name]);
        else {
          await client.query(
            `INSERT INTO ${table} (name, body, updated_at) VALUES ($1, $2, now()) ON CONFLICT (name) DO UPDATE SET body = excluded.body, updated_at = excluded.updated_at`,
            [name, body],
          );
        }
      }
      await client.query('COMMIT');
    } catch (err) {
      await client.query('ROLLBACK').catch(() => {});
      if (this.#lost !== undefined) throw this.lockLost();
      throw this.clean(err);
    }
  }

  async close(): Promise<void> {
    const client = this.#client;
    this.#client = undefined;
    if (!client) return;
    // Ending the session releases the advisory lock with it.
    await client.end().catch(() => {});
  }

  /** The session that holds the lock; once it is lost, nothing more is written. */
  private session(): Client {
    if (this.#lost !== undefined) throw this.lockLost();
    if (!this.#client) throw new Error(`${this.label} is not open`);
    return this.#client;
  }

  private lockLost(): StateLockLostError {
    return new StateLockLostError(
      `lost the session to ${this.label} (${redactSecrets(this.#lost ?? '', this.#resolved.secrets)}), and with it the lock on the state: ` +
        'nothing more is saved, since another process may have taken it; restart the service once the server is reachable',
    );
  }

  /** Who holds the lock, as the server sees them. */
  private async holder(client: Client): Promise<string> {
    const { rows } = await client
      .query<{ pid: number; application_name: string; client: string | null }>(
        `SELECT a.pid, a.application_name, host(a.client_addr) AS client FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
          WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2 AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
            AND l.classid::text::bigint = $1 AND l.objid::text::bigint = $2`,
        [this.#lockKey!.high >>> 0, this.#lockKey!.low >>> 0],
      )
      .catch(() => ({ rows: [] }));
    const row = rows[0];
    if (!row) return 'another session';
    return `"${row.application_name || 'an unnamed session'}" (server pid ${row.pid}${row.client ? `, from ${row.client}` : ''})`;
  }

  private clean(err: unknown): Error {
    if (err instanceof StateInUseError || err instanceof StateLockLostError) return err;
    const message = redactSecrets(err instanceof Error ? err.message : String(err), this.#resolved.secrets);
    return new Error(`${this.label}: ${message}`, { cause: err });
  }
}

/** Two int4 halves of a stable hash of the lock's name: the same table, the same lock, in every process. */
function lockKeyOf(name: string): { high: number; low: number } {
  const digest = createHash('sha256').update(name).digest();
  return { high: digest.readInt32BE(0), low: digest.readInt32BE(4) };
}
