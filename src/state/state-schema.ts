import { postgresConnectionProperties } from '../../connectors/postgres/postgres-connection.js';
import { redisSink } from '../../connectors/redis/redis-sink.js';
import type { JsonSchema } from '../../connectors/types.js';
import { duration } from '../delivery/policy.js';
import { DEFAULT_STATE_TABLE } from './postgres-state.js';
import { DEFAULT_LOCK_TTL, DEFAULT_STATE_PREFIX } from './redis-state.js';

const REDIS_CONNECTION_KEYS = ['url', 'host', 'port', 'db', 'username', 'password', 'tls', 'connect_timeout'];

/** The Redis target's own connection keys, so both are written the same way. */
function redisConnectionProperties(): Record<string, JsonSchema> {
  const all = (redisSink.configSchema as { properties: Record<string, JsonSchema> }).properties;
  return Object.fromEntries(REDIS_CONNECTION_KEYS.filter((k) => k in all).map((k) => [k, all[k]!]));
}

const postgresState: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    type: { const: 'postgresql', description: 'Keep the state in a PostgreSQL table.' },
    ...Object.fromEntries(Object.entries(postgresConnectionProperties).filter(([k]) => k !== 'pool_size')),
    table: {
      type: 'string',
      pattern: '^[A-Za-z_][A-Za-z0-9_$]*(\\.[A-Za-z_][A-Za-z0-9_$]*)?$',
      default: DEFAULT_STATE_TABLE,
      description:
        'Table (optionally schema.table) holding one row per state document; created if missing. One table per service: a second process on the same table is refused.',
      examples: ['threshold_state', 'ops.threshold_state'],
    },
  },
};

const redisState: JsonSchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    type: { const: 'redis', description: 'Keep the state as Redis keys.' },
    ...redisConnectionProperties(),
    key_prefix: {
      type: 'string',
      minLength: 1,
      default: DEFAULT_STATE_PREFIX,
      description: 'Prefix of every state key (<prefix>doc:<name>, <prefix>docs, <prefix>lock). One prefix per service: a second process on the same prefix is refused.',
      examples: ['threshold:prod:'],
    },
    lock_ttl: duration(
      'How long the lock outlives a process that stops extending it (it is extended every third of this). A process paused longer loses the state and stops saving it',
      DEFAULT_LOCK_TTL,
      DEFAULT_LOCK_TTL,
    ),
  },
};

/** settings.state: absent keeps the state in settings.state_dir. */
export const stateSettingSchema: JsonSchema = {
  type: 'object',
  required: ['type'],
  description:
    'Keep the state (watermarks, dedup keys, dead-letter spool) in PostgreSQL or Redis instead of settings.state_dir, so a service moved to another machine keeps its memory. ' +
    'Secrets as ${VAR}; they are never logged. --state-dir on the command line still picks a folder. See docs/service.md.',
  properties: { type: { type: 'string', enum: ['postgresql', 'redis'], description: 'Where: `postgresql` or `redis`.' } },
  allOf: [
    { if: { properties: { type: { const: 'postgresql' } }, required: ['type'] }, then: postgresState },
    { if: { properties: { type: { const: 'redis' } }, required: ['type'] }, then: redisState },
  ],
  examples: [
    { type: 'postgresql', url: 'postgres://threshold:${PGPASSWORD}@db.internal/ops', table: 'threshold_state' },
    { type: 'redis', url: 'redis://:${REDIS_PASSWORD}@cache.internal:6379/0', key_prefix: 'threshold:prod:' },
  ],
};
