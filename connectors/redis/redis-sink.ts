import { createHash } from 'node:crypto';
import type { CreateContext, DeliveryBatch, OperationContext, Sink, SinkSpec } from '../types.js';
import { duration } from '../../src/delivery/policy.js';
import { withDeadline } from '../../src/delivery/retry.js';
import { CancelledError, ConnectorError, isRetryable, PartialWriteError } from '../../src/errors.js';
import { parseDuration } from '../../src/rules/duration.js';
import { compileTemplate, templateIssues, type CompileOptions, type Template } from '../../src/template/template.js';
import { planCommands, recordsOf, WRITE_THEN_EXPIRE, type CommandOptions, type KeyedRecord, type PlannedCommand, type RedisMode } from './redis-commands.js';
import type { BatchReplies, CommandArgs, RespSocket } from './redis-wire.js';
import { commandError, onAbort, parseRedisUrl, RedisConnection, resolveConnection, type RedisConnectionConfig } from './redis-connection.js';
import { timerDelay } from '../../src/util/timer-delay.js';

export interface RedisSinkConfig extends RedisConnectionConfig {
  type: 'redis';
  mode?: RedisMode;
  /** The older tool's name for `mode`. */
  data_type?: 'hash' | 'list' | 'string';
  key?: string;
  key_prefix?: string;
  ttl?: number;
  expire_streams?: boolean;
  push?: 'left' | 'right';
  max_length?: number;
  timeout?: string;
  include_metadata?: boolean;
}

const DEFAULT_KEY = 'threshold:{rule}';
const DEFAULT_TIMEOUT = '10s';

/** A key is rendered per record: any record field, and the run's names but {part}. */
const KEY_TEMPLATE: CompileOptions = { context: 'key', names: ['rule', 'datasource', 'date', 'time', 'run_id'], what: 'the key' };

const tlsSchema = {
  oneOf: [
    { type: 'boolean' },
    {
      type: 'object',
      additionalProperties: false,
      properties: {
        ca: { type: 'string', description: 'PEM file of the certificate authority to trust, relative to the config file.', examples: ['certs/redis-ca.pem'] },
        cert: { type: 'string', description: 'PEM file of a client certificate (mutual TLS).' },
        key: { type: 'string', description: 'PEM file of the client certificate\'s private key.' },
        servername: { type: 'string', description: 'Name the server certificate must carry; default: the host.' },
        reject_unauthorized: { type: 'boolean', default: true, description: 'false accepts any server certificate (testing only).' },
      },
    },
  ],
  description: 'Connect with TLS: true, or the files and checks to use. A rediss:// url turns it on too.',
  examples: [true, { ca: 'certs/redis-ca.pem' }],
};

export const redisSink: SinkSpec<RedisSinkConfig> = {
  kind: 'target',
  type: 'redis',
  summary:
    'Stores matches in Redis: one hash or string per record, or entries pushed to lists or added to streams; pipelined, one round trip per batch.',
  batching: { batch_size: 1000, batch_bytes: 4 * 1024 * 1024, linger: '100ms', max_in_flight: 1 },
  configSchema: {
    type: 'object',
    properties: {
      url: {
        type: 'string',
        description: 'Where Redis is, as one URL: redis://[user:password@]host:port/db, rediss:// for TLS. Or give host, port and db.',
        examples: ['redis://127.0.0.1:6379/0', 'rediss://alerts.example.com:6380/2'],
      },
      host: { type: 'string', default: 'localhost', description: 'Redis host (instead of url).' },
      port: { type: 'integer', minimum: 1, maximum: 65535, default: 6379, description: 'Redis port.' },
      db: { type: 'integer', minimum: 0, default: 0, description: 'Database number.' },
      username: { type: 'string', description: 'ACL user (Redis 6 and later); default: the default user.' },
      password: { type: 'string', description: 'Password; write it as ${REDIS_PASSWORD} and keep the value in the environment.', examples: ['${REDIS_PASSWORD}'] },
      tls: tlsSchema,
      mode: {
        type: 'string',
        enum: ['hash', 'list', 'string', 'stream'],
        default: 'list',
        description:
          'hash: one hash per record (HSET, nested values as JSON); list: the record\'s JSON pushed to a list (RPUSH, or LPUSH with push: left); ' +
          'string: SET key to the record\'s JSON; stream: XADD an entry of the record\'s fields.',
      },
      data_type: { type: 'string', enum: ['hash', 'list', 'string'], description: 'The older name of mode; give one or the other.' },
      key: {
        type: 'string',
        minLength: 1,
        description:
          `Key template: {rule}, {datasource}, {date}, {time}, {run_id}, any record field ({id}, {meta.host}, {_rule}) and defaults ({host:-unknown}). ` +
          `Required in hash mode; otherwise default ${DEFAULT_KEY}. A record missing a field the key needs is not written (see docs/redis.md).`,
        examples: ['alert:{_rule}:{id}', 'alerts:{rule}', 'latest:{sensor}'],
      },
      key_prefix: { type: 'string', description: 'Text put before every key, as written (no placeholders).', examples: ['threshold:'] },
      ttl: {
        type: 'integer',
        minimum: 1,
        description: 'Seconds until a written key expires; every write sets it again. Streams expire only with expire_streams: true.',
        examples: [86400],
      },
      expire_streams: {
        type: 'boolean',
        default: false,
        description: 'In stream mode, apply ttl to the stream: the whole stream, consumer groups included, then expires after ttl seconds without a write.',
      },
      push: { type: 'string', enum: ['right', 'left'], default: 'right', description: 'list mode: RPUSH (right: oldest first) or LPUSH (left: newest first).' },
      max_length: {
        type: 'integer',
        minimum: 1,
        description: 'list mode: keep the newest N entries (LTRIM after each push). stream mode: XADD MAXLEN ~ N (at least N kept, trimmed in whole nodes).',
        examples: [10000],
      },
      connect_timeout: duration('Longest wait for a connection (TCP, TLS, AUTH, SELECT)', '5s', '5s'),
      timeout: duration("Longest wait for a batch's replies; then the connection is dropped and the write fails (and is retried)", '10s', DEFAULT_TIMEOUT),
    },
  },
  validate(config) {
    const issues: { key: string; message: string }[] = [];
    if (config.url !== undefined) {
      try {
        parseRedisUrl(config.url);
      } catch (err) {
        issues.push({ key: 'url', message: (err as Error).message.replace(/^url:? /, '') });
      }
      if (config.host !== undefined || config.port !== undefined) issues.push({ key: 'url', message: 'give either url or host/port, not both' });
    }
    if (config.mode !== undefined && config.data_type !== undefined) issues.push({ key: 'data_type', message: 'give mode or its older name data_type, not both' });
    const mode = modeOf(config);
    if (config.key !== undefined) issues.push(...templateIssues(config.key, KEY_TEMPLATE, 'key'));
    else if (mode === 'hash') issues.push({ key: 'key', message: 'hash mode stores one hash per record: give a key naming a record field, such as alert:{_rule}:{id}' });
    if (config.push !== undefined && mode !== 'list') issues.push({ key: 'push', message: `push applies to list mode only (mode is ${mode})` });
    if (config.max_length !== undefined && mode !== 'list' && mode !== 'stream') {
      issues.push({ key: 'max_length', message: `max_length applies to list and stream modes only (mode is ${mode})` });
    }
    if (config.ttl !== undefined && mode === 'stream' && config.expire_streams !== true) {
      issues.push({
        key: 'ttl',
        message: 'a ttl on a stream expires the whole stream, consumer groups included; set expire_streams: true if that is what you want, or use max_length',
      });
    }
    if (config.expire_streams !== undefined && mode !== 'stream') issues.push({ key: 'expire_streams', message: `expire_streams applies to stream mode only (mode is ${mode})` });
    return issues;
  },
  async create(config, ctx) {
    return new RedisSink(config, ctx);
  },
};

function modeOf(config: RedisSinkConfig): RedisMode {
  return config.mode ?? config.data_type ?? 'list';
}

/** What became of each record of a batch across the attempts at writing it. */
const PENDING = 0;
const STORED = 1;
const FAILED = 2;

class BatchProgress {
  readonly state: Uint8Array;
  stored = 0;
  failed = 0;
  /** The first record that will not be stored, and why: the error the write reports. */
  firstFailure: ConnectorError | undefined;

  constructor(readonly count: number) {
    this.state = new Uint8Array(count);
  }

  get pending(): number {
    return this.count - this.stored - this.failed;
  }

  /** Positions of the records not stored (failed or still pending): what the dead-letter spool must keep. */
  unstored(): number[] {
    const out: number[] = [];
    for (let i = 0; i < this.count; i++) if (this.state[i] !== STORED) out.push(i);
    return out;
  }

  store(index: number): void {
    if (this.state[index] !== PENDING) return;
    this.state[index] = STORED;
    this.stored++;
  }

  fail(index: number, error: ConnectorError): void {
    if (this.state[index] !== PENDING) return;
    this.state[index] = FAILED;
    this.failed++;
    this.firstFailure ??= error;
  }
}

/**
 * Per-write: each batch goes out as one pipeline (no MULTI/EXEC), and the write returns once
 * every reply is in. Records whose commands failed for good (a key of another type, a key
 * template missing a field) are reported, the others stay written; records whose replies were
 * lost with the connection are sent again on the next attempt, and only they.
 */
export class RedisSink implements Sink {
  readonly delivery = 'per-write' as const;
  readonly #connection: RedisConnection;
  readonly #key: Template;
  readonly #prefix: string;
  readonly #mode: RedisMode;
  readonly #ttl: number | undefined;
  readonly #timeoutMs: number;
  readonly #includeMetadata: boolean;
  /** Across the retries of one batch (the queue retries with the same batch object): what is already stored. */
  readonly #progress = new WeakMap<DeliveryBatch, BatchProgress>();
  readonly #scriptSha: string | undefined;

  constructor(
    private readonly config: RedisSinkConfig,
    ctx: CreateContext,
  ) {
    const { endpoint, options } = resolveConnection(config, ctx.configDir);
    this.#connection = new RedisConnection(endpoint, options, ctx.log);
    this.#key = compileTemplate(config.key ?? DEFAULT_KEY, KEY_TEMPLATE);
    this.#prefix = config.key_prefix ?? '';
    this.#mode = modeOf(config);
    this.#ttl = this.#mode === 'stream' && config.expire_streams !== true ? undefined : config.ttl;
    this.#timeoutMs = parseDuration(config.timeout ?? DEFAULT_TIMEOUT)!;
    this.#includeMetadata = config.include_metadata !== false;
    // Keys that expire are written through a script, so the TTL is set only where the write succeeded.
    this.#scriptSha = this.#ttl !== undefined && this.#mode !== 'string' ? createHash('sha1').update(WRITE_THEN_EXPIRE).digest('hex') : undefined;
  }

  get endpoint() {
    return this.#connection.endpoint;
  }

  async write(batch: DeliveryBatch, ctx: OperationContext): Promise<void> {
    if (batch.rows.length === 0) return;
    const where = `Redis at ${this.#connection.endpoint.label}`;
    if (ctx.signal.aborted) throw new CancelledError(`writing to ${where}`, ctx.signal.reason);
    let progress = this.#progress.get(batch);
    if (!progress) {
      progress = new BatchProgress(batch.rows.length);
      this.#progress.set(batch, progress);
    }
    try {
      await this.attempt(batch, progress, ctx.signal, where);
    } catch (err) {
      // Records stored by this or an earlier attempt stay stored, whatever ends this one: the queue must count them.
      if (progress.stored === 0) throw err;
      if (err instanceof CancelledError) throw new CancelledError(`writing to ${where}`, this.partial(progress, where, err));
      if (!isRetryable(err)) throw this.partial(progress, where, progress.firstFailure ?? err);
      const partial = this.partial(progress, where, err);
      throw new ConnectorError(`writing to ${where}`, { code: partial.code, retryable: true, cause: partial });
    }
  }

  /** One attempt: sends the records not stored yet; throws if any is left unstored. */
  private async attempt(batch: DeliveryBatch, progress: BatchProgress, signal: AbortSignal, where: string): Promise<void> {
    if (progress.pending > 0) {
      let socket: RespSocket;
      try {
        socket = await this.#connection.socket(signal);
      } catch (err) {
        // Records whose key cannot be filled in fail for that, whatever the connection does.
        this.keyPending(batch, progress, 0, progress.count);
        if (progress.pending === 0) throw this.failure(progress, where);
        throw err;
      }
      const transient = await this.send(socket, batch, progress, signal);
      if (transient && signal.aborted) throw new CancelledError(`writing to ${where}`, transient);
      // The connection broke or the server was busy: the policy tries again, and the next attempt sends only what is not stored.
      if (transient) throw new ConnectorError(`writing to ${where}`, { code: transient.code, retryable: true, cause: transient });
    }
    if (progress.failed > 0) throw this.failure(progress, where);
  }

  /** Keys for the records from..to still to store; a record whose key cannot be filled in fails alone. */
  private keyPending(batch: DeliveryBatch, progress: BatchProgress, from: number, to: number): KeyedRecord[] {
    const keyOf = this.#key.bind({ rule: batch.rule, datasource: batch.datasource, runId: batch.runId, matchedAt: batch.matchedAt });
    const records = recordsOf(batch, this.#includeMetadata, from, to);
    const out: KeyedRecord[] = [];
    for (let index = from; index < to; index++) {
      if (progress.state[index] !== PENDING) continue;
      const record = records[index - from]!;
      try {
        out.push({ index, key: this.#prefix + keyOf(record), record });
      } catch (err) {
        // Whatever the reason (a field the template needs is missing, a value that cannot be written as text), it is this record's alone.
        const code = err instanceof ConnectorError ? err.code : 'INVALID_RECORD';
        const details = err instanceof ConnectorError ? err.details : {};
        progress.fail(index, new ConnectorError(`record #${index + 1} of the batch (rule "${batch.rule}", datasource "${batch.datasource}")`, {
          code,
          details: { record: index + 1, ...details },
          cause: err,
        }));
      }
    }
    return out;
  }

  private commandOptions(): CommandOptions {
    return { mode: this.#mode, ttl: this.#ttl, maxLength: this.config.max_length, push: this.config.push ?? 'right', scriptSha: this.#scriptSha };
  }

  /**
   * Records per slice: each slice is keyed, planned and written before the next is prepared, so
   * the server works on one while the next is made (with a whole batch prepared first, the
   * process sat idle half the time waiting for replies). Lists and MSET group a batch's records
   * into few commands, so they take the batch as one slice.
   */
  private sliceSize(count: number): number {
    const grouped = this.#mode === 'list' || (this.#mode === 'string' && this.#ttl === undefined);
    return grouped ? count : RECORD_SLICE;
  }

  /**
   * Sends the pending records' commands as one pipeline, written slice by slice as they are
   * made, and marks each record stored or failed by its reply. Returns the error of records left
   * pending (connection lost, server busy), if any.
   */
  private async send(socket: RespSocket, batch: DeliveryBatch, progress: BatchProgress, signal: AbortSignal): Promise<ConnectorError | undefined> {
    const commands: PlannedCommand[] = [];
    // The reply that tells each command's fate, by the command's position.
    const replyAt: number[] = [];
    const options = this.commandOptions();
    const slice = this.sliceSize(progress.count);
    // A slice that could not be prepared, and where: its records and the later ones were not sent.
    let unprepared: { from: number; error: unknown } | undefined;
    const { replies, lost, cut } = await this.sendBounded(socket, signal, (write) => {
      let sent = 0;
      for (let from = 0; from < progress.count; from += slice) {
        let planned: PlannedCommand[];
        try {
          const keyed = this.keyPending(batch, progress, from, Math.min(progress.count, from + slice));
          if (keyed.length === 0) continue;
          planned = this.plan(batch, keyed, options, progress);
          storeUncarried(keyed, planned, progress);
        } catch (error) {
          // What is already written stays written and its replies are read; nothing more is sent.
          unprepared = { from, error };
          return;
        }
        // Loaded in the same pipeline, ahead of its first use: no round trip of its own, and a restarted server (or SCRIPT FLUSH) is no trouble.
        if (sent === 0 && planned.length > 0 && this.#scriptSha !== undefined) {
          write(['SCRIPT', 'LOAD', WRITE_THEN_EXPIRE]);
          sent++;
        }
        for (const p of planned) {
          commands.push(p);
          replyAt.push(sent++);
          write(p.args);
          if (p.followUp) {
            write(p.followUp);
            sent++;
          }
        }
      }
    });
    if (unprepared) this.failUnsent(batch, progress, unprepared.from, unprepared.error);
    const endpoint = this.#connection.endpoint;
    let transient: ConnectorError | undefined;
    for (let i = 0; i < commands.length; i++) {
      const planned = commands[i]!;
      const at = replyAt[i]!;
      const reply = at < replies.length ? replies[at] : undefined;
      if (at < replies.length && !(reply instanceof Error)) {
        for (const index of planned.records) progress.store(index);
        continue;
      }
      // No reply: our own timeout or cancel cut the connection (say so), or it broke.
      const failure = at < replies.length ? commandError(reply, endpoint) : cut ? lostReply(cut, this.#timeoutMs) : commandError(lost, endpoint);
      if (failure.retryable) {
        transient ??= failure;
        continue;
      }
      const keyNote = new ConnectorError(`record #${planned.records[0]! + 1} of the batch (key "${planned.key}")`, {
        code: failure.code,
        details: { record: planned.records[0]! + 1, key: planned.key, ...failure.details },
        cause: failure,
      });
      for (const index of planned.records) progress.fail(index, keyNote);
    }
    // A lost reply leaves the connection in doubt; a busy server's reply (LOADING, BUSY) does not.
    if (transient && transient.details.reply === undefined) socket.destroy();
    return transient;
  }

  /**
   * The commands for the keyed records. A record whose fields cannot be written (a value whose
   * JSON form throws) would stop the whole slice: then each record is planned alone, and only
   * the ones that fail to plan fail.
   */
  private plan(batch: DeliveryBatch, keyed: KeyedRecord[], options: CommandOptions, progress: BatchProgress): PlannedCommand[] {
    try {
      return planCommands(keyed, options);
    } catch {
      const planned: PlannedCommand[] = [];
      for (const record of keyed) {
        try {
          planned.push(...planCommands([record], options));
        } catch (err) {
          progress.fail(record.index, new ConnectorError(`record #${record.index + 1} of the batch (rule "${batch.rule}", key "${record.key}") could not be written: ${(err as Error).message}`, {
            code: 'INVALID_RECORD',
            details: { record: record.index + 1, key: record.key },
            cause: err,
          }));
        }
      }
      return planned;
    }
  }

  /** Records from `from` on that were never sent fail with the error that stopped their preparation. */
  private failUnsent(batch: DeliveryBatch, progress: BatchProgress, from: number, error: unknown): void {
    const reason = error instanceof Error ? error.message : String(error);
    const failure = new ConnectorError(`records #${from + 1} to #${progress.count} of the batch (rule "${batch.rule}") could not be prepared: ${reason}`, {
      code: error instanceof ConnectorError ? error.code : 'INVALID_RECORD',
      details: { record: from + 1 },
      cause: error,
    });
    for (let index = from; index < progress.count; index++) progress.fail(index, failure);
  }

  /** Waits for the replies, at most `timeout`; on a timeout or a cancel the connection is dropped, which settles the batch at once with the replies already in. */
  private async sendBounded(
    socket: RespSocket,
    signal: AbortSignal,
    produce: (write: (args: CommandArgs) => void) => void,
  ): Promise<BatchReplies & { cut?: 'timeout' | 'cancel' }> {
    const sent = socket.sendEach(produce);
    let timer: NodeJS.Timeout | undefined;
    let unsubscribe = () => {};
    const cutOff = new Promise<'timeout' | 'cancel'>((resolve) => {
      timer = setTimeout(() => resolve('timeout'), timerDelay(this.#timeoutMs));
      unsubscribe = onAbort(signal, () => resolve('cancel'));
    });
    try {
      const first = await Promise.race([sent, cutOff]);
      if (first !== 'timeout' && first !== 'cancel') return first;
      socket.destroy();
      return { ...(await sent), cut: first };
    } finally {
      clearTimeout(timer);
      unsubscribe();
    }
  }

  private partial(progress: BatchProgress, where: string, cause: unknown): PartialWriteError {
    return new RedisPartialWrite(
      `${progress.count - progress.stored} of ${progress.count} records not stored in ${where} (the other ${progress.stored} were)`,
      progress.stored,
      cause,
      progress.unstored(),
    );
  }

  private failure(progress: BatchProgress, where: string): ConnectorError {
    const n = progress.count;
    const cause = progress.firstFailure!;
    return new ConnectorError(`${n === 1 ? 'the record was not' : `none of the ${n} records was`} stored in ${where}`, {
      code: cause.code,
      details: { failed: progress.failed },
      cause,
    });
  }

  async flush(): Promise<void> {}

  async abort(): Promise<void> {}

  /** PING, timed: the connection, TLS, AUTH and SELECT all work, and the server is a standalone one. */
  async check(ctx: OperationContext): Promise<string> {
    const socket = await this.#connection.socket(ctx.signal);
    const started = performance.now();
    const reply = await withDeadline(socket.call(['PING']), this.#timeoutMs, ctx.signal, `PING to Redis at ${this.#connection.endpoint.label}`);
    const ms = performance.now() - started;
    const { version, mode } = this.#connection.info;
    return `${reply} in ${ms.toFixed(1)} ms; Redis ${version ?? '(version not told)'}${mode ? ` ${mode}` : ''} at ${this.#connection.endpoint.label}, ${this.#mode} mode`;
  }

  async close(): Promise<void> {
    await this.#connection.close();
  }
}

/** Records of a pipeline are not a prefix of it: "n of m not stored" says it better than "stopped after". */
class RedisPartialWrite extends PartialWriteError {
  constructor(message: string, delivered: number, cause: unknown, undelivered: readonly number[]) {
    super(message, delivered, cause, undelivered);
    this.message = message;
  }
}

/** Records per slice of a pipeline in the modes with a command per record; measured in bench/connectors/redis.mjs. */
const RECORD_SLICE = 200;

/** A record no command carries had nothing to store (a hash of null fields only): it counts as stored. */
function storeUncarried(keyed: readonly KeyedRecord[], planned: readonly PlannedCommand[], progress: BatchProgress): void {
  if (planned.length === keyed.length) return;
  const carried = new Set<number>();
  for (const c of planned) for (const index of c.records) carried.add(index);
  for (const r of keyed) if (!carried.has(r.index)) progress.store(r.index);
}

function lostReply(cut: 'timeout' | 'cancel' | undefined, timeoutMs: number): ConnectorError {
  return cut === 'cancel'
    ? new ConnectorError('no reply: the write was cancelled and the connection dropped', { code: 'CANCELLED', retryable: true })
    : new ConnectorError(`no reply within ${timeoutMs / 1000}s (timeout); the connection was dropped`, { code: 'TIMEOUT', retryable: true });
}

