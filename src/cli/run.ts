import type { LoadedConfig } from '../config/types.js';
import { createLogger } from '../log.js';
import { DryRunSink } from '../pipeline/dry-run-sink.js';
import { runCycle } from '../pipeline/run-cycle.js';
import { closeRuntime, openRuntime, type Runtime } from '../pipeline/runtime.js';
import { cycleSucceeded, type CycleReport } from '../pipeline/stats.js';
import { logSummary, summaryTable } from '../pipeline/summary.js';
import type { CliOptions } from './args.js';
import { runContinuously } from './continuous.js';

/** Runs a loaded config once or in a loop, as the flags say; resolves with the exit code. */
export async function run(config: LoadedConfig, options: CliOptions): Promise<number> {
  const log = createLogger(options.logLevel ?? config.settings.log_level);
  const runtime = await openRuntime(config, log, { dryRun: options.dryRun });
  try {
    if (options.continuous) {
      return await runContinuously(runtime, { intervalSeconds: options.interval, onReport: (r) => report(runtime, r) });
    }
    return await runOnce(runtime, options);
  } finally {
    await closeRuntime(runtime);
  }
}

/**
 * One cycle. SIGINT / SIGTERM cancel it: reading stops, targets discard what they half-wrote (no
 * partial file becomes visible), and the exit code is 130.
 */
async function runOnce(runtime: Runtime, options: CliOptions): Promise<number> {
  const controller = new AbortController();
  const cancel = (signal: NodeJS.Signals) => {
    runtime.log.warn({ signal }, 'interrupted: stopping; output not yet made visible is discarded');
    controller.abort();
  };
  process.once('SIGINT', cancel);
  process.once('SIGTERM', cancel);
  try {
    const result = await runCycle(runtime, { signal: controller.signal });
    report(runtime, result);
    if (result.cancelled) return 130;
    if (options.dryRun) showDryRun(runtime);
    return cycleSucceeded(result) ? 0 : 1;
  } finally {
    process.off('SIGINT', cancel);
    process.off('SIGTERM', cancel);
  }
}

function report(runtime: Runtime, result: CycleReport): void {
  if (!process.stderr.isTTY) return logSummary(runtime.log, result, runtime.dryRun);
  const note = runtime.dryRun ? 'dry run: "exported" counts what would have been exported\n' : '';
  process.stderr.write(note + summaryTable(result));
}

function showDryRun(runtime: Runtime): void {
  let out = 'dry run: nothing was exported\n';
  for (const endpoint of runtime.sinks.values()) {
    if (endpoint.ok && endpoint.value instanceof DryRunSink) out += endpoint.value.describe();
  }
  process.stdout.write(out);
}
