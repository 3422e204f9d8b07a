import path from 'node:path';
import { ConfigError } from '../config/issues.js';
import { loadConfig } from '../config/load-config.js';
import type { LoadedConfig } from '../config/types.js';
import { displayPath, printIssues, type Output } from './output.js';

/**
 * The configs under test, each loaded (and its errors printed) once however many test files
 * name it. A config that does not load is undefined: its tests cannot run.
 */
export class ConfigCache {
  readonly #loaded = new Map<string, Promise<LoadedConfig | undefined>>();

  constructor(
    /** The --config flag's file, for test files that do not name one. */
    readonly defaultFile: string,
    private readonly io: Output,
  ) {}

  load(file: string): Promise<LoadedConfig | undefined> {
    const key = path.resolve(file);
    let loading = this.#loaded.get(key);
    if (loading === undefined) {
      loading = this.loadAndReport(displayPath(key));
      this.#loaded.set(key, loading);
    }
    return loading;
  }

  private async loadAndReport(shown: string): Promise<LoadedConfig | undefined> {
    try {
      return await loadConfig(shown);
    } catch (err) {
      if (!(err instanceof ConfigError)) throw err;
      printIssues(this.io, err.issues, `${shown}: {problems} in the config; the tests that use it were not run`);
      return undefined;
    }
  }
}
