import { readFileSync } from 'node:fs';
import { connect as connectTcp } from 'node:net';
import path from 'node:path';
import type { Pool, PoolClient, PoolConfig } from 'pg';
import type { JsonSchema } from '../types.js';
import { duration } from '../../src/delivery/policy.js';
import { parseDuration } from '../../src/rules/duration.js';
import { withDeadline } from '../../src/delivery/retry.js';
import { CancelledError, ConnectorError, codeOf } from '../../src/errors.js';

/**
 * The connection keys shared by the PostgreSQL datasource and export target: the older tool's
 * host/port/database/username/password, or a `url`, with TLS, an application name and timeouts.
 */
export interface PostgresConnectionConfig {
  url?: string;
  host?: string;
  port?: number;
  database?: string;
  username?: string;
  password?: string;
  ssl?: boolean | 'off' | 'require' | 'verify';
  ssl_ca?: string;
  application_name?: string;
  statement_timeout?: string;
  connect_timeout?: string;
  pool_size?: number;
}

export const postgresConnectionProperties: Record<string, JsonSchema> = {
  url: {
    type: 'string',
    pattern: '^postgres(ql)?://',
    description:
      'Connection URL (postgres://user:password@host:port/database). Keys given next to it (host, port, database, username, password) override its parts. ' +
      'Put the password in the environment: postgres://reporter:${PGPASSWORD}@db.internal/analytics.',
    examples: ['postgres://reporter:${PGPASSWORD}@db.internal:5432/analytics'],
  },
  host: { type: 'string', minLength: 1, description: 'Server host name or address.', default: 'localhost', examples: ['db.internal'] },
  port: { type: 'integer', minimum: 1, maximum: 65535, description: 'Server port.', default: 5432 },
  database: { type: 'string', minLength: 1, description: 'Database name.', examples: ['analytics'] },
  username: { type: 'string', minLength: 1, description: 'Role to connect as.', examples: ['reporter'] },
  password: {
    type: 'string',
    description: 'Password; write it as ${PGPASSWORD} and keep the value in the environment. Never logged.',
    examples: ['${PGPASSWORD}'],
  },
  ssl: {
    description:
      'TLS: `off` (or false), `require` (or true: encrypted, the server certificate is not verified), ' +
      '`verify` (encrypted, the certificate must be signed by ssl_ca or a system CA and match the host).',
    anyOf: [{ type: 'boolean' }, { type: 'string', enum: ['off', 'require', 'verify'] }],
    default: 'off',
    examples: ['verify'],
  },
  ssl_ca: {
    type: 'string',
    minLength: 1,
    description: 'PEM file of the CA that signed the server certificate, for ssl: verify (relative to the config file).',
    examples: ['certs/db-ca.pem'],
  },
  application_name: {
    type: 'string',
    maxLength: 63,
    default: 'threshold-processor',
    description: 'Shown in pg_stat_activity, so a DBA can tell these sessions apart.',
  },
  statement_timeout: duration('Longest a statement may run before the server cancels it; 0s for no limit', '5m', '0s'),
  connect_timeout: duration('Longest to wait for a connection: a free one in the pool, or a new one\'s TCP, TLS and authentication', '10s', '10s'),
  pool_size: {
    type: 'integer',
    minimum: 1,
    maximum: 100,
    default: 4,
    description:
      'Connections at most, shared by every datasource and target with the same connection keys. ' +
      'A datasource holds one while it reads; a target holds one for its cycle\'s transaction; the pool always has room for one per datasource and target that share it, so none waits for another.',
  },
};

/** What a connection is in this process: the pg settings plus a label safe for messages. */
export interface ResolvedConnection {
  readonly pg: PoolConfig;
  /** host:port/database as user: never the password. */
  readonly label: string;
  /** Values that must never appear in a message. */
  readonly secrets: readonly string[];
  readonly connectTimeoutMs: number;
}

const DEFAULT_APPLICATION_NAME = 'threshold-processor';

/** Reads the keys into pg's settings; a key next to `url` overrides that part of it. */
export function resolveConnection(config: PostgresConnectionConfig, configDir: string): ResolvedConnection {
  const fromUrl = config.url ? parseUrl(config.url) : {};
  const host = config.host ?? fromUrl.host ?? 'localhost';
  const port = config.port ?? fromUrl.port ?? 5432;
  const database = config.database ?? fromUrl.database;
  const user = config.username ?? fromUrl.user;
  const password = config.password ?? fromUrl.password;
  const connectTimeoutMs = parseDuration(config.connect_timeout ?? '10s') ?? 10_000;
  const statementTimeoutMs = parseDuration(config.statement_timeout ?? '0s') ?? 0;
  const pg: PoolConfig = {
    host,
    port,
    ...(database !== undefined ? { database } : {}),
    ...(user !== undefined ? { user } : {}),
    // pg would otherwise fall back to PGPASSWORD or ~/.pgpass only when the key is absent; an empty one is sent as given.
    ...(password !== undefined ? { password } : {}),
    ssl: tlsOptions(config, fromUrl.sslmode, configDir),
    application_name: config.application_name ?? DEFAULT_APPLICATION_NAME,
    // Zone-less timestamps are read as UTC, and watermarks are bound as UTC instants: the session
    // must compare them in UTC too, whatever TimeZone the server or the role sets, or a
    // `created_at >= $1` on a timestamp column skips the rows within the zone's offset.
    options: '-c TimeZone=UTC',
    ...(statementTimeoutMs > 0 ? { statement_timeout: Math.round(statementTimeoutMs) } : {}),
    connectionTimeoutMillis: Math.max(1, Math.round(connectTimeoutMs)),
    max: config.pool_size ?? 4,
    idleTimeoutMillis: 30_000,
    // Sockets left idle between cycles should not keep a finished run alive.
    allowExitOnIdle: true,
    keepAlive: true,
  };
  const label = `${host}:${port}/${database ?? user ?? '(default database)'}${user ? ` as ${user}` : ''}`;
  const secrets = [password, config.url].filter((s): s is string => typeof s === 'string' && s.length >= 3);
  return { pg, label, secrets, connectTimeoutMs };
}

interface UrlParts {
  host?: string;
  port?: number;
  database?: string;
  user?: string;
  password?: string;
  sslmode?: string;
}

function parseUrl(url: string): UrlParts {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConnectorError('url is not a valid postgres:// URL; write it as postgres://user:password@host:port/database', { code: 'INVALID_CONFIG' });
  }
  // A password holding an unencoded "/" or "@" moves the rest of it into the host and the path,
  // where it would be shown in labels and errors: refused without repeating any of it.
  if (u.pathname.includes('@') || u.pathname.slice(1).includes('/')) {
    throw new ConnectorError(
      'url does not parse as postgres://user:password@host:port/database: a "/", "@" or "?" in the password must be percent-encoded (%2F, %40, %3F), or give the password in the password key instead',
      { code: 'INVALID_CONFIG' },
    );
  }
  const decode = (text: string, what: string) => {
    try {
      return decodeURIComponent(text);
    } catch {
      throw new ConnectorError(`url: the ${what} holds a "%" that is not followed by two hex digits; write a literal % as %25, or give it in the ${what === 'password' ? 'password' : what} key instead`, {
        code: 'INVALID_CONFIG',
      });
    }
  };
  const parts: UrlParts = {};
  if (u.hostname) parts.host = decode(u.hostname.replace(/^\[|\]$/g, ''), 'host');
  if (u.port) parts.port = Number(u.port);
  const database = decode(u.pathname.replace(/^\//, ''), 'database');
  if (database) parts.database = database;
  if (u.username) parts.user = decode(u.username, 'username');
  if (u.password) parts.password = decode(u.password, 'password');
  const sslmode = u.searchParams.get('sslmode');
  if (sslmode) parts.sslmode = sslmode;
  return parts;
}

type TlsMode = 'off' | 'require' | 'verify';

function tlsModeOf(config: PostgresConnectionConfig, sslmode: string | undefined): TlsMode {
  const ssl = config.ssl;
  if (ssl === true) return 'require';
  if (ssl === false) return 'off';
  if (ssl !== undefined) return ssl;
  if (sslmode === 'require' || sslmode === 'prefer') return 'require';
  if (sslmode === 'verify-ca' || sslmode === 'verify-full') return 'verify';
  return 'off';
}

function tlsOptions(config: PostgresConnectionConfig, sslmode: string | undefined, configDir: string): PoolConfig['ssl'] {
  const mode = tlsModeOf(config, sslmode);
  if (mode === 'off') return false;
  if (mode === 'require') return { rejectUnauthorized: false };
  if (!config.ssl_ca) return { rejectUnauthorized: true };
  const file = path.resolve(configDir, config.ssl_ca);
  try {
    return { rejectUnauthorized: true, ca: readFileSync(file, 'utf8') };
  } catch (err) {
    throw new ConnectorError(`reading ssl_ca ${file}: ${(err as Error).message}; point ssl_ca at the PEM file of your server's CA`, {
      code: codeOf(err) ?? 'INVALID_CONFIG',
      cause: err,
    });
  }
}

/** Config-time checks the schema cannot express. */
export function connectionProblems(config: PostgresConnectionConfig): { key: string; message: string }[] {
  const problems: { key: string; message: string }[] = [];
  if (config.ssl_ca && tlsModeOf(config, undefined) !== 'verify') {
    problems.push({ key: 'ssl_ca', message: 'ssl_ca is only used with ssl: verify; set ssl: verify or remove ssl_ca' });
  }
  if (config.url) {
    try {
      new URL(config.url);
    } catch {
      problems.push({ key: 'url', message: 'not a valid URL; write it as postgres://user:password@host:port/database' });
    }
  }
  return problems;
}

// ---- one pool per distinct connection, shared --------------------------------------------

interface SharedPool {
  readonly pool: Pool;
  refs: number;
}

const pools = new Map<string, SharedPool>();

/**
 * Each datasource and target holds at most one connection at a time, and a datasource that
 * waits for its target to take a batch keeps its own: with fewer connections than users, four
 * datasources could hold them all while their target waited for one. So a pool has room for
 * every user, and pool_size more when it is larger.
 */
function sizeForUsers(shared: SharedPool, poolSize: number): void {
  (shared.pool as unknown as { options: { max: number } }).options.max = Math.max(poolSize, shared.refs);
}
const listening = new WeakSet<PoolClient>();

/**
 * A datasource's or target's share of the pool for its connection. Datasources and targets with
 * the same keys share one pool (so one server sees at most pool_size sessions from this process);
 * the pool ends when its last user closes. Nothing connects until a connection is asked for.
 */
export class PostgresConnection {
  #pool: SharedPool | undefined;
  readonly #key: string;
  readonly #onConnectionError: (err: unknown) => void;

  private constructor(
    readonly resolved: ResolvedConnection,
    PoolClass: typeof Pool,
    onIdleError: (err: unknown) => void,
  ) {
    this.#onConnectionError = onIdleError;
    this.#key = JSON.stringify(resolved.pg);
    let shared = pools.get(this.#key);
    if (!shared) {
      const pool = new PoolClass(resolved.pg);
      // A connection that dies while idle in the pool must not crash the process; the next use reconnects.
      pool.on('error', (err) => onIdleError(err));
      shared = { pool, refs: 0 };
      pools.set(this.#key, shared);
    }
    shared.refs++;
    this.#pool = shared;
    sizeForUsers(shared, resolved.pg.max ?? 4);
  }

  /** Loads pg (only configs that use PostgreSQL pay for it) and takes a share of the connection's pool. */
  static async open(config: PostgresConnectionConfig, configDir: string, onIdleError: (err: unknown) => void): Promise<PostgresConnection> {
    const resolved = resolveConnection(config, configDir);
    const pg = (await import('pg')).default;
    return new PostgresConnection(resolved, pg.Pool, onIdleError);
  }

  get label(): string {
    return this.resolved.label;
  }

  get pool(): Pool {
    if (!this.#pool) throw new ConnectorError(`the connection to ${this.label} is closed`, { code: 'CLOSED' });
    return this.#pool.pool;
  }

  /**
   * A client of the pool, connected within connect_timeout (pg's own) and given up on at once
   * when the signal is aborted. A client that connects after we stopped waiting is released.
   */
  async connect(signal: AbortSignal, what: string): Promise<PoolClient> {
    if (signal.aborted) throw new CancelledError(what, signal.reason);
    const connecting = this.pool.connect();
    try {
      // pg enforces connect_timeout; the extra second covers a pool waiting for a free client.
      const client = await withDeadline(connecting, this.resolved.connectTimeoutMs + 1000, signal, what);
      // The pool listens only to idle clients: a connection the server ends while we hold it
      // (a failover, pg_terminate_backend) would otherwise crash the process. The next query on
      // it fails, and that failure is what the caller reports.
      if (!listening.has(client)) {
        listening.add(client);
        client.on('error', (err) => this.#onConnectionError(err));
      }
      return client;
    } catch (err) {
      connecting.then((client) => client.release(), () => {});
      throw err;
    }
  }

  /**
   * Asks the server to cancel what `client`'s session is running, over a connection of its own
   * (PostgreSQL's CancelRequest: the session's pid and secret key, no login). Closing our end is
   * not enough: a backend busy sorting or sleeping notices a closed socket only when it next
   * talks to it. Best effort, bounded by connect_timeout, and never throws.
   */
  cancelOnServer(client: PoolClient): void {
    const { processID, secretKey } = client as unknown as { processID?: number; secretKey?: number };
    const { host, port } = this.resolved.pg;
    if (typeof processID !== 'number' || typeof secretKey !== 'number' || !host) return;
    const request = Buffer.alloc(16);
    request.writeInt32BE(16, 0);
    request.writeInt32BE(80877102, 4);
    request.writeInt32BE(processID, 8);
    request.writeInt32BE(secretKey, 12);
    const socket = host.startsWith('/') ? connectTcp(`${host}/.s.PGSQL.${port ?? 5432}`) : connectTcp(port ?? 5432, host);
    socket.setTimeout(this.resolved.connectTimeoutMs, () => socket.destroy());
    socket.on('error', () => socket.destroy());
    socket.on('connect', () => socket.end(request));
  }

  async close(): Promise<void> {
    const shared = this.#pool;
    if (!shared) return;
    this.#pool = undefined;
    if (--shared.refs > 0) return sizeForUsers(shared, this.resolved.pg.max ?? 4);
    pools.delete(this.#key);
    await shared.pool.end().catch(() => {});
  }
}

/** Pools open in this process (for tests of the sharing). */
export function openPoolCount(): number {
  return pools.size;
}
