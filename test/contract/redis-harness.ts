import type { Redis } from 'ioredis';
import type { Sink } from '../../connectors/types.js';
import { redisSink } from '../../connectors/redis/redis-sink.js';
import { keysUnder, removeKeysUnder, startOwnRedis, testClient, TEST_REDIS_URL, uniquePrefix, type OwnRedis } from '../support/redis-server.js';
import type { HarnessSinkOptions, PlainRecord, TargetHarness } from './harness.js';

const SECRET = 'contract-redis-secret-7Qx';

/**
 * The Redis target in list mode, one list per rule under a fresh key prefix on the test Redis
 * (TEST_REDIS_URL): the peer holds exactly the records' JSON, so it can be compared as it is.
 */
export function redisHarness(): TargetHarness {
  let client: Redis | undefined;
  let guarded: OwnRedis | undefined;
  let prefix = '';
  const sinks: Sink[] = [];
  const peer = () => (client ??= testClient());
  const create = async (options: HarnessSinkOptions, config: Record<string, unknown>) => {
    const sink = await redisSink.create(
      { type: 'redis', url: TEST_REDIS_URL, mode: 'list', key: '{_rule}', key_prefix: prefix, include_metadata: options.includeMetadata, ...config },
      { name: 'contract-redis', configDir: '.', log: options.log, signal: new AbortController().signal },
    );
    sinks.push(sink);
    return sink;
  };
  const received = async (): Promise<PlainRecord[]> => {
    const records: PlainRecord[] = [];
    for (const key of await keysUnder(peer(), prefix)) {
      for (const item of await peer().lrange(key, 0, -1)) records.push(JSON.parse(item) as PlainRecord);
    }
    return records;
  };
  return {
    name: 'redis',
    delivery: 'per-write',
    secret: SECRET,
    async setup() {
      prefix = uniquePrefix('contract');
    },
    create: (options) => create(options, {}),
    async createFailing(options) {
      // A server that asks for another password: the secret goes out in AUTH and is refused, the path where it could leak.
      guarded = await startOwnRedis(['--requirepass', 'another-password-than-the-secret']);
      const sink = await create(options, { url: undefined, host: '127.0.0.1', port: guarded.port, password: SECRET, connect_timeout: '2s' });
      return { sink, names: `127.0.0.1:${guarded.port}` };
    },
    received,
    visibleBeforeFlush: received,
    async traces() {
      return keysUnder(peer(), prefix);
    },
    async cleanup() {
      await Promise.all(sinks.splice(0).map((sink) => sink.close?.()));
      await removeKeysUnder(peer(), prefix);
      await guarded?.remove();
      guarded = undefined;
      // Open connections would keep the test process alive after the last test.
      client?.disconnect();
      client = undefined;
    },
  };
}
