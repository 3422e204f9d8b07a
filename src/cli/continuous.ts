import { runCycle } from '../pipeline/run-cycle.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { CycleReport } from '../pipeline/stats.js';
import { cancelRun, runController } from './shutdown.js';

/** Each of these stops a run. SIGHUP (the terminal closed) counts as SIGTERM until the config can be reloaded. */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface LoopOptions {
  readonly intervalSeconds: number;
  /** After the first signal, how long the running cycle may take to finish before it is cancelled. */
  readonly shutdownTimeoutMs: number;
  readonly onStart?: (report: CycleReport) => void;
  readonly onReport: (report: CycleReport) => void;
}

/**
 * Starts a cycle every interval. Cycles never overlap: one that overruns is reported and the
 * next starts as soon as it ends. The first SIGINT/SIGTERM/SIGHUP lets the running cycle finish and
 * ends the loop; a second one, or the shutdown timeout passing, cancels the cycle (half-written
 * output is discarded), and the process then exits within CANCEL_GRACE_MS whatever is stuck.
 * Resolves with the exit code.
 */
export async function runContinuously(runtime: Runtime, options: LoopOptions): Promise<number> {
  const { log } = runtime;
  const controller = runController();
  const intervalMs = options.intervalSeconds * 1000;
  let stopping = false;
  let wake: (() => void) | undefined;

  let deadline: NodeJS.Timeout | undefined;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.warn({ signal }, 'second signal: aborting the current cycle');
      cancelRun(controller, log);
      return;
    }
    stopping = true;
    log.info({ signal, shutdown_timeout_ms: options.shutdownTimeoutMs }, 'stopping after the current cycle');
    deadline = setTimeout(() => {
      log.warn({ shutdown_timeout_ms: options.shutdownTimeoutMs }, 'the current cycle did not finish within the shutdown timeout: cancelling it');
      cancelRun(controller, log);
    }, options.shutdownTimeoutMs);
    deadline.unref();
    wake?.();
  };
  for (const signal of STOP_SIGNALS) process.on(signal, onSignal);
  log.info({ interval_s: options.intervalSeconds, rules: runtime.config.rules.length }, 'running continuously');
  let cancelled = false;
  try {
    while (!stopping) {
      const started = Date.now();
      const report = await runCycle(runtime, { signal: controller.signal, onStart: options.onStart });
      cancelled = report.cancelled;
      options.onReport(report);
      if (stopping) break;
      const elapsed = Date.now() - started;
      if (elapsed >= intervalMs) {
        log.warn({ duration_ms: elapsed, interval_s: options.intervalSeconds }, 'cycle took longer than the interval; the next one starts now');
        continue;
      }
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, intervalMs - elapsed);
        wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      wake = undefined;
    }
  } finally {
    clearTimeout(deadline);
    for (const signal of STOP_SIGNALS) process.off(signal, onSignal);
  }
  log.info('stopped');
  return cancelled ? 130 : 0;
}
