import type { Logger } from 'pino';
import type { LoadedConfig } from '../config/types.js';
import type { PostgresStateConfig } from './postgres-state.js';
import type { RedisStateConfig } from './redis-state.js';
import { stateDirOf } from './state-keeper.js';
import { type StateBackend, StateStore } from './state-store.js';

/** settings.state: where the state lives when not in the folder. */
export type StateConfig = PostgresStateConfig | RedisStateConfig;

/**
 * Where this config's state is kept: a --state-dir given on the command line, else settings.state
 * (PostgreSQL or Redis), else the folder settings.state_dir. The database drivers load only when used.
 */
export async function stateBackendOf(config: LoadedConfig, log: Logger, stateDirOverride?: string): Promise<StateBackend> {
  const state = config.settings.state;
  if (stateDirOverride !== undefined || state === undefined) return new StateStore(stateDirOverride ?? stateDirOf(config));
  if (state.type === 'postgresql') {
    const { PostgresStateBackend } = await import('./postgres-state.js');
    return new PostgresStateBackend(state, config.dir);
  }
  const { RedisStateBackend } = await import('./redis-state.js');
  return new RedisStateBackend(state, config.dir, log);
}
