import path from 'node:path';
import type { LoadedConfig } from '../config/types.js';
import { spoolRecords } from './spool.js';
import { copyState, type ServiceState, type StateBackend, StateStore } from './state-store.js';

/**
 * The remembered state of a running service and where it is kept. A cycle works on a copy
 * (`begin`) and hands it back to `commit` once every target has delivered or spooled; a cycle
 * that is cancelled, or whose commit fails, leaves the remembered state as it was, so its
 * records are read and sent again (at least once, never lost).
 */
export class StateKeeper {
  #state: ServiceState;

  private constructor(
    readonly store: StateBackend,
    state: ServiceState,
    /** A dry run applies the state (what would be exported) but never changes it. */
    readonly readOnly: boolean,
  ) {
    this.#state = state;
  }

  /** Takes the state (a folder, or a backend) for this process and loads it; a read-only keeper takes no lock. */
  static async open(where: string | StateBackend, options: { readOnly?: boolean } = {}): Promise<StateKeeper> {
    const store = typeof where === 'string' ? new StateStore(where) : where;
    const readOnly = options.readOnly === true;
    await store.open({ readOnly });
    try {
      return new StateKeeper(store, await store.load(), readOnly);
    } catch (err) {
      await store.close();
      throw err;
    }
  }

  /** Gives the state back (a read-only keeper only closes its connection). */
  async close(): Promise<void> {
    await this.store.close();
  }

  get state(): ServiceState {
    return this.#state;
  }

  begin(): ServiceState {
    return copyState(this.#state);
  }

  async commit(next: ServiceState): Promise<void> {
    if (this.readOnly) return;
    await this.store.commit(next, this.#state);
    this.#state = next;
  }

  /** Records waiting in the spool, per target. */
  spoolSizes(): Map<string, number> {
    return new Map([...this.#state.spool].map(([target, batches]) => [target, spoolRecords(batches)]));
  }
}

/** settings.state_dir, resolved against the config's folder. */
export function stateDirOf(config: LoadedConfig, override?: string): string {
  return path.resolve(config.dir, override ?? config.settings.state_dir ?? '.state');
}
