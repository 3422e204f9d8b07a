import type { LoadedConfig } from '../config/types.js';
import { createLogger } from '../log.js';
import { resolveLogFormat } from '../log-format.js';
import { checkConnections, checkTable } from '../pipeline/check.js';
import type { CliOptions } from './args.js';
import { SINGLE_RUN_STOP_SIGNALS } from './continuous.js';
import { cancelRun, runController } from './shutdown.js';

/**
 * `--check`: tests the connection of every datasource and export target, prints a table on
 * stdout, and exits 1 if any check failed. A signal cancels the checks still running.
 */
export async function runCheck(config: LoadedConfig, options: CliOptions): Promise<number> {
  const level = options.logLevel ?? config.settings.log_level;
  const log = await createLogger(level, { format: resolveLogFormat(options.logFormat, process.stderr.isTTY === true) });
  const controller = runController();
  const cancel = () => cancelRun(controller, log);
  for (const signal of SINGLE_RUN_STOP_SIGNALS) process.once(signal, cancel);
  try {
    const results = await checkConnections(config, log, controller.signal);
    process.stdout.write(checkTable(results));
    if (controller.signal.aborted) return 130;
    return results.every((r) => r.ok) ? 0 : 1;
  } finally {
    for (const signal of SINGLE_RUN_STOP_SIGNALS) process.off(signal, cancel);
  }
}
