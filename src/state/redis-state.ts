import { randomBytes } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { commandError, RedisConnection, resolveConnection, type RedisConnectionConfig, type RedisEndpoint } from '../../connectors/redis/redis-connection.js';
import type { CommandArgs } from '../../connectors/redis/redis-wire.js';
import { withDeadline } from '../delivery/retry.js';
import { parseDuration } from '../rules/duration.js';
import { changedDocuments, stateFromDocuments } from './state-documents.js';
import { type ServiceState, type StateBackend, StateInUseError, StateLockLostError } from './state-store.js';

export interface RedisStateConfig extends RedisConnectionConfig {
  readonly type: 'redis';
  readonly key_prefix?: string;
  readonly lock_ttl?: string;
}

export const DEFAULT_STATE_PREFIX = 'threshold:state:';
export const DEFAULT_LOCK_TTL = '30s';
const COMMAND_TIMEOUT_MS = 30_000;

/** Extends the lock only while it is still ours. */
const REFRESH = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end return 0`;

/**
 * The whole commit, run by Redis as one script (atomic: no other command runs in between): it
 * checks that the lock still holds this process's token, extends it, then writes and deletes the
 * documents. A process that lost its lock writes nothing. KEYS: lock, index, then one per
 * document; ARGV: token, ttl, then name, "set"/"del", body for each document.
 */
const COMMIT = `
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return redis.error_reply('LOCKLOST the state lock is not held by this process') end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
for i = 3, #KEYS do
  local j = 3 + (i - 3) * 3
  if ARGV[j + 1] == 'set' then
    redis.call('SET', KEYS[i], ARGV[j + 2])
    redis.call('SADD', KEYS[2], ARGV[j])
  else
    redis.call('DEL', KEYS[i])
    redis.call('SREM', KEYS[2], ARGV[j])
  end
end
return 1`;

/** Gives the lock back only if it is still ours. */
const RELEASE = `if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0`;

/**
 * The state as Redis keys under a prefix: `<prefix>doc:<name>` per document and `<prefix>docs`,
 * the set of their names. The lock is `<prefix>lock`, set with NX and a TTL that a timer extends
 * while the process runs; a process stopped longer than the TTL loses it, and its next commit
 * then fails instead of overwriting the state of whoever took it.
 */
export class RedisStateBackend implements StateBackend {
  readonly #connection: RedisConnection;
  readonly #endpoint: RedisEndpoint;
  readonly #prefix: string;
  readonly #ttlMs: number;
  readonly #token = `threshold-processor pid ${process.pid} on ${hostname()} (${randomBytes(6).toString('hex')})`;
  #refresh: NodeJS.Timeout | undefined;
  #lost: string | undefined;
  #readOnly = false;

  constructor(config: RedisStateConfig, configDir: string, log: Logger) {
    const { endpoint, options } = resolveConnection(config, configDir);
    this.#endpoint = endpoint;
    // A command the server never answers must not hold a cycle's commit for ever.
    this.#connection = new RedisConnection(endpoint, options, log);
    this.#prefix = config.key_prefix ?? DEFAULT_STATE_PREFIX;
    this.#ttlMs = parseDuration(config.lock_ttl ?? DEFAULT_LOCK_TTL)!;
  }

  get label(): string {
    return `Redis state ${this.#prefix}* at ${this.#endpoint.label}`;
  }

  spoolLocation(target: string): string {
    return `key ${this.docKey(`spool/${target}`)} at ${this.#endpoint.label}`;
  }

  async open(options: { readOnly?: boolean } = {}): Promise<void> {
    const client = await this.client();
    if (options.readOnly) {
      this.#readOnly = true;
      return;
    }
    const taken = await client.set(this.lockKey, this.#token, 'PX', this.#ttlMs, 'NX').catch((err) => this.fail(err));
    if (taken !== 'OK') {
      const holder = await client.get(this.lockKey).catch(() => null);
      await this.#connection.close();
      throw new StateInUseError(
        `${this.label} is in use by ${holder ?? 'another process'}; two processes must not share one state (stop the other, or give this config its own settings.state.key_prefix)`,
      );
    }
    this.#refresh = setInterval(() => void this.extendLock(), Math.max(100, Math.floor(this.#ttlMs / 3)));
    this.#refresh.unref();
  }

  async load(): Promise<ServiceState> {
    const client = await this.client();
    const names = (await client.smembers(this.indexKey).catch((err) => this.fail(err))).sort();
    const bodies = names.length === 0 ? [] : await client.mget(names.map((n) => this.docKey(n))).catch((err) => this.fail(err));
    const docs: [string, string][] = [];
    names.forEach((name, i) => {
      const body = bodies[i];
      if (typeof body === 'string') docs.push([name, body]);
    });
    return stateFromDocuments(docs, (name) => `key ${this.docKey(name)} at ${this.#endpoint.label}`);
  }

  async commit(next: ServiceState, previous: ServiceState): Promise<void> {
    if (this.#readOnly) throw new Error(`${this.label} was opened read-only`);
    if (this.#lost !== undefined) throw this.lockLost();
    const docs = [...changedDocuments(next, previous)];
    const keys = [this.lockKey, this.indexKey, ...docs.map(([name]) => this.docKey(name))];
    const args = [this.#token, String(this.#ttlMs), ...docs.flatMap(([name, body]) => [name, body === undefined ? 'del' : 'set', body ?? ''])];
    const client = await this.client();
    try {
      await client.eval(COMMIT, keys.length, ...keys, ...args);
    } catch (err) {
      if (err instanceof Error && /^LOCKLOST/.test(err.message)) {
        this.#lost = 'the lock expired or was taken by another process';
        throw this.lockLost();
      }
      this.fail(err);
    }
  }

  async close(): Promise<void> {
    if (this.#refresh) clearInterval(this.#refresh);
    this.#refresh = undefined;
    if (!this.#readOnly && this.#lost === undefined) {
      const client = await this.client().catch(() => undefined);
      await client?.eval(RELEASE, 1, this.lockKey, this.#token).catch(() => {});
    }
    await this.#connection.close();
  }

  private get lockKey(): string {
    return `${this.#prefix}lock`;
  }

  private get indexKey(): string {
    return `${this.#prefix}docs`;
  }

  private docKey(name: string): string {
    return `${this.#prefix}doc:${name}`;
  }

  private async client(): Promise<StateClient> {
    try {
      await this.#connection.socket(new AbortController().signal);
      return new StateClient(this.#connection);
    } catch (err) {
      return this.fail(err);
    }
  }

  /** Extends the lock; a lock found gone or another's is lost for good. A server briefly away is tried again next time. */
  private async extendLock(): Promise<void> {
    if (this.#lost !== undefined) return;
    try {
      const client = await this.client();
      const extended = await client.eval(REFRESH, 1, this.lockKey, this.#token, String(this.#ttlMs));
      if (extended !== 1) this.#lost = 'the lock expired or was taken by another process';
    } catch {
      // The commit checks the lock itself; a failed extension only matters if the TTL runs out.
    }
  }

  private lockLost(): StateLockLostError {
    return new StateLockLostError(
      `${this.label}: ${this.#lost}; nothing more is saved, since another process may now hold the state; ` +
        'restart the service (and check that no other process uses this key_prefix, or raise lock_ttl if this one was paused)',
    );
  }

  private fail(err: unknown): never {
    const cause = commandError(err, this.#endpoint);
    throw new Error(`${this.label}: ${cause.message}`, { cause });
  }
}

/**
 * The few commands the state needs, on the Redis target's own connection (RESP on a socket).
 * Each is bounded by COMMAND_TIMEOUT_MS: a server that never answers must not hold a cycle's
 * commit for ever; past it the connection is dropped (the next command connects anew).
 */
class StateClient {
  constructor(private readonly connection: RedisConnection) {}

  private async call(args: CommandArgs): Promise<unknown> {
    const socket = await this.connection.socket(new AbortController().signal);
    try {
      return await withDeadline(socket.call(args), COMMAND_TIMEOUT_MS, new AbortController().signal, `waiting for Redis to answer ${args[0]}`);
    } catch (err) {
      if (!(err instanceof Error && err.name === 'ReplyError')) this.connection.drop();
      throw err;
    }
  }

  set(key: string, value: string, px: 'PX', ttlMs: number, nx: 'NX'): Promise<unknown> {
    return this.call(['SET', key, value, px, ttlMs, nx]);
  }

  async get(key: string): Promise<string | null> {
    return (await this.call(['GET', key])) as string | null;
  }

  async smembers(key: string): Promise<string[]> {
    return (await this.call(['SMEMBERS', key])) as string[];
  }

  async mget(keys: string[]): Promise<(string | null)[]> {
    return (await this.call(['MGET', ...keys] as unknown as CommandArgs)) as (string | null)[];
  }

  eval(script: string, keyCount: number, ...args: (string | number)[]): Promise<unknown> {
    return this.call(['EVAL', script, keyCount, ...args]);
  }
}
