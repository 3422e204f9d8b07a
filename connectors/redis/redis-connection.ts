/**
 * One connection to one Redis server, opened when first needed and opened again after it breaks.
 * Nothing reconnects, queues or resends behind the write's back: the delivery policy decides when
 * to try again, and a command never waits, unseen, for a server that is gone.
 */
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { isIP, connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import { withDeadline } from '../../src/delivery/retry.js';
import { CancelledError, ConnectorError, codeOf, wrapError } from '../../src/errors.js';
import { ConnectionLostError, RespSocket, type CommandArgs } from './redis-wire.js';
import { parseDuration } from '../../src/rules/duration.js';

export interface RedisTlsConfig {
  ca?: string;
  cert?: string;
  key?: string;
  servername?: string;
  reject_unauthorized?: boolean;
}

export interface RedisConnectionConfig {
  url?: string;
  host?: string;
  port?: number;
  db?: number;
  username?: string;
  password?: string;
  tls?: boolean | RedisTlsConfig;
  connect_timeout?: string;
}

/** Where the server is, for messages: never holds a credential. */
export interface RedisEndpoint {
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly tls: boolean;
  /** `127.0.0.1:6379/0`, or `rediss://host:6380/2` with TLS. */
  readonly label: string;
}

export const DEFAULT_CONNECT_TIMEOUT = '5s';

/** How to reach the server; holds the password, so it is never logged or put in an error. */
export interface RedisConnectOptions {
  readonly host: string;
  readonly port: number;
  readonly db: number;
  readonly username?: string;
  readonly password?: string;
  readonly tls?: ConnectionOptions;
  readonly connectTimeout: number;
  readonly connectionName: string;
}

/** What the server said about itself when we connected: shown by --check. */
export interface ServerInfo {
  readonly version: string | undefined;
  readonly mode: string | undefined;
}

/** The connection settings from the config: a URL's parts, then host/port/db/username/password over them. */
export function resolveConnection(config: RedisConnectionConfig, configDir: string): { endpoint: RedisEndpoint; options: RedisConnectOptions } {
  const fromUrl = config.url !== undefined ? parseRedisUrl(config.url) : {};
  const host = config.host ?? fromUrl.host ?? 'localhost';
  const port = config.port ?? fromUrl.port ?? 6379;
  const db = config.db ?? fromUrl.db ?? 0;
  const useTls = config.tls !== undefined ? config.tls !== false : fromUrl.tls === true;
  const tls = useTls ? tlsOptions(typeof config.tls === 'object' ? config.tls : {}, host, configDir) : undefined;
  // An empty value means none, so `password: "${REDIS_PASSWORD:-}"` works with and without one.
  const username = config.username || fromUrl.username;
  const password = config.password || fromUrl.password;
  const options: RedisConnectOptions = {
    host,
    port,
    db,
    ...(username !== undefined ? { username } : {}),
    ...(password !== undefined ? { password } : {}),
    ...(tls ? { tls } : {}),
    connectTimeout: parseDuration(config.connect_timeout ?? DEFAULT_CONNECT_TIMEOUT)!,
    connectionName: 'threshold-processor',
  };
  const label = `${useTls ? 'rediss://' : ''}${host.includes(':') ? `[${host}]` : host}:${port}/${db}`;
  return { endpoint: { host, port, db, tls: useTls, label }, options };
}

interface UrlParts {
  host?: string;
  port?: number;
  db?: number;
  username?: string;
  password?: string;
  tls?: boolean;
}

/** `redis://[user[:password]@]host[:port][/db]`, or `rediss://` for TLS. Messages never quote the URL: it may hold a password. */
export function parseRedisUrl(url: string): UrlParts {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    throw new ConnectorError('url is not a URL; write it as redis://host:6379/0 (rediss:// for TLS)', { code: 'INVALID_CONFIG' });
  }
  if (u.protocol !== 'redis:' && u.protocol !== 'rediss:') {
    throw new ConnectorError(`url must start with redis:// or rediss://, not ${u.protocol}//`, { code: 'INVALID_CONFIG' });
  }
  if (u.search !== '' || u.hash !== '') {
    throw new ConnectorError('url: options after "?" or "#" are not read; give db, tls and timeouts as keys of the target', { code: 'INVALID_CONFIG' });
  }
  const dbText = u.pathname.replace(/^\//, '');
  if (dbText !== '' && !/^\d+$/.test(dbText)) {
    throw new ConnectorError('url: the path must be a database number, as in redis://host:6379/2', { code: 'INVALID_CONFIG' });
  }
  return {
    ...(u.hostname ? { host: u.hostname.replace(/^\[|\]$/g, '') } : {}),
    ...(u.port ? { port: Number(u.port) } : {}),
    ...(dbText !== '' ? { db: Number(dbText) } : {}),
    ...(u.username ? { username: decodeURIComponent(u.username) } : {}),
    ...(u.password ? { password: decodeURIComponent(u.password) } : {}),
    tls: u.protocol === 'rediss:',
  };
}

function tlsOptions(config: RedisTlsConfig, host: string, configDir: string): ConnectionOptions {
  const read = (file: string | undefined) => (file === undefined ? undefined : readFileSync(path.resolve(configDir, file)));
  // SNI takes names only (RFC 6066); an address is checked against the certificate's IP entries without it.
  const servername = config.servername ?? (isIP(host) ? undefined : host);
  return {
    ...(servername !== undefined ? { servername } : {}),
    rejectUnauthorized: config.reject_unauthorized !== false,
    ...(config.ca !== undefined ? { ca: read(config.ca) } : {}),
    ...(config.cert !== undefined ? { cert: read(config.cert) } : {}),
    ...(config.key !== undefined ? { key: read(config.key) } : {}),
  };
}

/**
 * Hands out a ready connection, connecting (bounded by connect_timeout and the signal) when there
 * is none or the last one broke. Concurrent writers share one connection attempt.
 */
export class RedisConnection {
  #socket: RespSocket | undefined;
  #connecting: Promise<RespSocket> | undefined;
  #info: ServerInfo = { version: undefined, mode: undefined };
  #closed = false;

  constructor(
    readonly endpoint: RedisEndpoint,
    private readonly options: RedisConnectOptions,
    private readonly log: Logger,
  ) {}

  get info(): ServerInfo {
    return this.#info;
  }

  async socket(signal: AbortSignal): Promise<RespSocket> {
    if (signal.aborted) throw new CancelledError(`connecting to Redis at ${this.endpoint.label}`, signal.reason);
    if (this.#socket?.open) return this.#socket;
    this.#connecting ??= this.connect().finally(() => (this.#connecting = undefined));
    const what = `connecting to Redis at ${this.endpoint.label}`;
    // The shared attempt is bounded by connect_timeout itself; a cancelled caller stops waiting at once.
    let unsubscribe = () => {};
    const cancelled = new Promise<never>((_, reject) => (unsubscribe = onAbort(signal, () => reject(new CancelledError(what, signal.reason)))));
    try {
      return await Promise.race([this.#connecting, cancelled]);
    } finally {
      unsubscribe();
    }
  }

  /** Drops the connection: commands waiting for replies fail at once (the next write connects anew). */
  drop(): void {
    const socket = this.#socket;
    this.#socket = undefined;
    socket?.destroy();
  }

  async close(): Promise<void> {
    this.#closed = true;
    const socket = this.#socket;
    this.#socket = undefined;
    await socket?.quit(1000);
  }

  private async connect(): Promise<RespSocket> {
    this.drop();
    const what = `connecting to Redis at ${this.endpoint.label}`;
    let resp: RespSocket | undefined;
    try {
      // connect_timeout bounds the whole handshake (TCP, TLS, AUTH, SELECT, INFO): a peer that accepts and never answers must not hold the write.
      const handshake = (async () => {
        const socket = await openSocket(this.options, (s) => (resp = new RespSocket(s)));
        socket.on('error', (err: NodeJS.ErrnoException) => this.log.debug({ err: { message: err.message, code: err.code } }, 'redis connection error'));
        return hello(resp!, this.options);
      })();
      this.#info = await withDeadline(handshake, this.options.connectTimeout, new AbortController().signal, 'waiting for the server to answer');
      refuseUnsupportedMode(this.#info, this.endpoint);
    } catch (err) {
      resp?.destroy();
      throw connectError(what, err);
    }
    if (this.#closed) {
      resp!.destroy();
      throw new CancelledError(what);
    }
    this.#socket = resp;
    return resp!;
  }
}

/** The TCP (or TLS) connection, open: resolves once connected; a failure before that rejects. */
function openSocket(options: RedisConnectOptions, attach: (socket: Socket) => void): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const ready = options.tls ? 'secureConnect' : 'connect';
    const socket = options.tls ? tlsConnect({ host: options.host, port: options.port, ...options.tls }) : netConnect({ host: options.host, port: options.port });
    const fail = (err: Error) => reject(err);
    const closed = () => reject(new ConnectionLostError('Connection is closed.'));
    socket.once('error', fail);
    socket.once('close', closed);
    socket.once(ready, () => {
      socket.off('error', fail);
      socket.off('close', closed);
      socket.setNoDelay(true);
      resolve(socket);
    });
    // Replies are read from the first byte on; the socket's own errors end it as a lost connection.
    attach(socket);
  });
}

/** Redis 6+ and older servers' replies to AUTH when no password is configured. */
const NO_PASSWORD_SET = /without any password configured|no password is set/i;

/**
 * AUTH, SELECT, CLIENT SETNAME and INFO server, written together: one round trip. The first
 * error reply (a wrong password makes the later ones NOAUTH too) is the one that counts.
 */
async function hello(resp: RespSocket, options: RedisConnectOptions): Promise<ServerInfo> {
  const commands: CommandArgs[] = [];
  // A username alone is still sent (with an empty password, which a `nopass` ACL user accepts): left out, the writes would run as the default user.
  if (options.username !== undefined) commands.push(['AUTH', options.username, options.password ?? '']);
  else if (options.password !== undefined) commands.push(['AUTH', options.password]);
  if (options.db !== 0) commands.push(['SELECT', options.db]);
  commands.push(['CLIENT', 'SETNAME', options.connectionName], ['INFO', 'server']);
  const { replies, lost } = await resp.send(commands);
  if (lost) throw lost;
  const named = commands.length - 2;
  for (let i = 0; i < named; i++) {
    const reply = replies[i];
    if (!(reply instanceof Error)) continue;
    // A password given to a server that asks for none is not worth failing for (ioredis let it pass too).
    if (i === 0 && options.password !== undefined && options.username === undefined && NO_PASSWORD_SET.test(reply.message)) continue;
    throw reply;
  }
  // The name only labels the connection in CLIENT LIST: a server that refuses it is still a server we can write to.
  const info = replies[commands.length - 1];
  if (info instanceof Error) {
    if (/unknown command|NOPERM/i.test(info.message)) return { version: undefined, mode: undefined };
    throw info;
  }
  const text = String(info);
  return { version: /^redis_version:(.*)$/m.exec(text)?.[1]?.trim(), mode: /^redis_mode:(.*)$/m.exec(text)?.[1]?.trim() };
}

/** The target speaks to one server: a Sentinel holds no data, and a Cluster node only some keys. */
function refuseUnsupportedMode(info: ServerInfo, endpoint: RedisEndpoint): void {
  if (info.mode === 'sentinel') {
    throw new ConnectorError(
      `${endpoint.host}:${endpoint.port} is a Redis Sentinel, which stores no data; point the target at the primary it names ` +
        '(redis-cli -p <sentinel port> SENTINEL get-master-addr-by-name <name>)',
      { code: 'REDIS_SENTINEL', details: { redis_mode: 'sentinel' } },
    );
  }
  if (info.mode === 'cluster') {
    throw new ConnectorError(
      `${endpoint.host}:${endpoint.port} is a Redis Cluster node; this target writes to a single server (standalone or a primary) ` +
        'and does not follow MOVED redirections: point it at a standalone Redis',
      { code: 'REDIS_CLUSTER', details: { redis_mode: 'cluster' } },
    );
  }
}

export function isReplyError(err: unknown): boolean {
  return err instanceof Error && err.name === 'ReplyError';
}

/**
 * Error replies that say the server is busy or starting, or full (OOM under maxmemory: keys
 * expire and get evicted): the same command may succeed in a moment.
 */
const TRANSIENT_REPLIES = /^(LOADING|BUSY|TRYAGAIN|MASTERDOWN|CLUSTERDOWN|OOM)\b/;

/**
 * What a failed command means for the write: a reply error about the record's key (WRONGTYPE,
 * OOM...) is permanent; a broken connection or a server still loading may work on another attempt.
 */
export function commandError(err: unknown, endpoint: RedisEndpoint): ConnectorError {
  if (err instanceof ConnectorError) return err;
  const message = err instanceof Error ? err.message : String(err);
  if (isReplyError(err)) {
    const code = /^[A-Z]+/.exec(message)?.[0] ?? 'ERR';
    if (code === 'MOVED' || code === 'ASK') {
      return new ConnectorError(
        `${endpoint.host}:${endpoint.port} is a Redis Cluster node and redirected the write (${message}); this target writes to a single server: point it at a standalone Redis`,
        { code: 'REDIS_CLUSTER', details: { reply: message }, cause: err },
      );
    }
    if (code === 'READONLY') {
      return new ConnectorError(`${endpoint.host}:${endpoint.port} is a read-only replica; point the target at the primary`, {
        code,
        details: { reply: message },
        cause: err,
      });
    }
    if (code === 'NOAUTH' || code === 'WRONGPASS' || code === 'NOPERM') {
      return new ConnectorError(`Redis at ${endpoint.label} refused the credentials or the command; check username and password (or the user's ACL)`, {
        code,
        details: { reply: message },
        cause: err,
      });
    }
    if (/unknown command/i.test(message)) {
      return new ConnectorError(`Redis at ${endpoint.label} does not know the command (${message}); is it a Redis Sentinel, or a server older than the command?`, {
        code: 'UNKNOWN_COMMAND',
        details: { reply: message },
        cause: err,
      });
    }
    return new ConnectorError(message, { code, retryable: TRANSIENT_REPLIES.test(message), details: { reply: message }, cause: err });
  }
  // Not a reply: the connection broke (closed, reset, timed out) before the reply came.
  return new ConnectorError(message, { code: codeOf(err) ?? 'CONNECTION_LOST', retryable: true, cause: err });
}

/** A failed connection attempt: refused, timed out, TLS or authentication trouble, in the user's words. */
function connectError(what: string, err: unknown): ConnectorError {
  if (err instanceof ConnectorError) return wrapError(what, err);
  const message = err instanceof Error ? err.message : String(err);
  if (isReplyError(err) && /WRONGPASS|NOAUTH|invalid password|invalid username/i.test(message)) {
    return wrapError(`${what}: the server refused the username or password`, err, { code: /^[A-Z]+/.exec(message)?.[0] ?? 'NOAUTH', retryable: false });
  }
  if (isReplyError(err) && /DB index is out of range|invalid DB index/i.test(message)) {
    return wrapError(`${what}: the server has no database of that number (see its "databases" setting)`, err, { code: 'ERR', retryable: false });
  }
  if (isReplyError(err)) return wrapError(what, err, { code: /^[A-Z]+/.exec(message)?.[0] ?? 'ERR', retryable: TRANSIENT_REPLIES.test(message) });
  if (/CERT|SELF_SIGNED|UNABLE_TO_VERIFY|ERR_TLS|ERR_SSL|HOSTNAME_MISMATCH/.test(codeOf(err) ?? '')) {
    return wrapError(`${what}: the TLS handshake failed (check tls.ca, tls.servername, or that the server speaks TLS)`, err, { retryable: false });
  }
  if (/ETIMEDOUT|timed? ?out/i.test(message)) return wrapError(`${what}: no connection within connect_timeout`, err, { code: 'ETIMEDOUT', retryable: true });
  // Refused, reset, unreachable, closed during the handshake (a TLS client on a plain port): trying later may work.
  return wrapError(what, err, { retryable: true });
}

/**
 * One abort listener per signal, however many writes are in flight on it: a listener each made
 * Node warn of a leak past ten concurrent writes (max_in_flight allows 64).
 */
const abortWaiters = new WeakMap<AbortSignal, Set<() => void>>();

export function onAbort(signal: AbortSignal, callback: () => void): () => void {
  if (signal.aborted) {
    callback();
    return () => {};
  }
  let waiters = abortWaiters.get(signal);
  if (!waiters) {
    const set = new Set<() => void>();
    waiters = set;
    abortWaiters.set(signal, set);
    signal.addEventListener('abort', () => [...set].forEach((f) => f()), { once: true });
  }
  waiters.add(callback);
  return () => waiters.delete(callback);
}

