import { ConfigError, formatIssue } from '../config/issues.js';
import { loadConfig } from '../config/load-config.js';
import type { LoadedConfig } from '../config/types.js';
import { describeError, serializeError } from '../errors.js';
import type { Logger } from '../log.js';
import { closeReplaced, closeRuntime, openRuntime, type Runtime } from '../pipeline/runtime.js';

/** Settings a reload cannot apply to a running process: they are read once at start. */
const RESTART_ONLY_SETTINGS = ['state_dir', 'state', 'metrics', 'log_level', 'shutdown_timeout'] as const;

/**
 * Holds the running config and its connectors, and swaps them for a newly loaded config on
 * request (SIGHUP, --watch). A config that does not load, or that has no enabled rules where the
 * running one has some, is rejected with its errors logged, and the running one goes on.
 * Connectors whose config did not change are taken over with their connections; the others are
 * created anew, and the old ones closed.
 */
export class Reloader {
  #runtime: Runtime;

  constructor(
    runtime: Runtime,
    private readonly log: Logger,
    /** Targets with spooled batches, kept by a reload even when no rule uses them any more. */
    private readonly spooledTargets: () => readonly string[] = () => [],
  ) {
    this.#runtime = runtime;
  }

  get runtime(): Runtime {
    return this.#runtime;
  }

  /** Loads the config file again; resolves true when the new config now runs. Never call it while a cycle runs. */
  async reload(reason: string): Promise<boolean> {
    const previous = this.#runtime;
    const file = previous.config.file;
    this.log.info({ reason, config: file }, 'reloading the config');
    let config;
    try {
      config = await loadConfig(file);
    } catch (err) {
      const issues = err instanceof ConfigError ? err.issues.map(formatIssue) : [`cannot load config: ${describeError(err)}`];
      for (const issue of issues) this.log.error({ config: file }, `reload rejected: ${issue}`);
      this.log.error({ config: file, problems: issues.length }, 'reload rejected; the previous config keeps running');
      return false;
    }
    if (wouldSilenceEveryRule(previous.config, config)) {
      this.log.error(
        { config: file, rules_dir: config.rulesDir, running_rules: enabledRules(previous.config) },
        'reload rejected: the new config has no enabled rules, which would silence every alert (a rules folder removed, or still being copied?); ' +
          'it reloads once the rule files are back; to run with no rules on purpose, restart the service; the previous config keeps running',
      );
      return false;
    }
    let next: Runtime;
    try {
      next = await openRuntime(config, previous.log, { dryRun: previous.dryRun, reuse: previous, spooledTargets: this.spooledTargets() });
    } catch (err) {
      this.log.error({ err: serializeError(err) }, 'reload rejected: its connectors could not be set up; the previous config keeps running');
      return false;
    }
    this.#runtime = next;
    await closeReplaced(previous, next);
    const kept = [...next.sources, ...next.sinks].filter(([name, e]) => e.ok && (previous.sources.get(name) === e || previous.sinks.get(name) === e)).map(([n]) => n);
    for (const key of RESTART_ONLY_SETTINGS) {
      if (JSON.stringify(previous.config.settings[key]) !== JSON.stringify(config.settings[key])) {
        this.log.warn({ setting: key }, `settings.${key} changed: it takes effect at the next restart`);
      }
    }
    this.log.info({ rules: enabledRules(config), kept_connections: kept }, 'config reloaded; the next cycle uses it');
    return true;
  }

  async close(): Promise<void> {
    await closeRuntime(this.#runtime);
  }
}

function enabledRules(config: LoadedConfig): number {
  return config.rules.filter((r) => r.enabled).length;
}

/**
 * A rules folder being replaced (`rm -rf rules; cp -r ...`) reads as a valid config with no
 * rules; running it would stop every alert without a word, so a reload never goes from some
 * enabled rules to none. Starting with none is allowed: that is asked for, not half-copied.
 */
function wouldSilenceEveryRule(running: LoadedConfig, next: LoadedConfig): boolean {
  return enabledRules(running) > 0 && enabledRules(next) === 0;
}
