import { runCycle } from '../pipeline/run-cycle.js';
import type { Runtime } from '../pipeline/runtime.js';
import type { CycleReport } from '../pipeline/stats.js';
import type { Reloader } from '../service/reloader.js';
import { watchConfigFiles } from '../service/watch.js';
import type { StateKeeper } from '../state/state-keeper.js';
import { cancelRun, runController } from './shutdown.js';
import { timerDelay } from '../util/timer-delay.js';

/** Each of these stops a run. */
export const STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM'];
/** A single run also stops on SIGHUP (its terminal closed); the continuous service reloads on it. */
export const SINGLE_RUN_STOP_SIGNALS: readonly NodeJS.Signals[] = ['SIGINT', 'SIGTERM', 'SIGHUP'];

export interface LoopOptions {
  readonly intervalSeconds: number;
  /** After the first signal, how long the running cycle may take to finish before it is cancelled. */
  readonly shutdownTimeoutMs: number;
  /** Reload when the config, a rule file or the set of rule files changes on disk. */
  readonly watch: boolean;
  /** A SIGHUP came while the service started: reload before the first cycle. */
  readonly reloadAtStart?: boolean;
  readonly state?: StateKeeper;
  readonly onStart?: (report: CycleReport) => void;
  readonly onReport: (report: CycleReport, runtime: Runtime) => void;
}

/**
 * Starts a cycle every interval. Cycles never overlap: one that overruns is reported and the
 * next starts as soon as it ends. SIGHUP (and, with --watch, a change on disk) reloads the
 * config between cycles. The first SIGINT/SIGTERM lets the running cycle finish and ends the
 * loop; a second one, or the shutdown timeout passing, cancels the cycle (half-written output
 * is discarded, the state is not committed so its records are read again at the next start),
 * and the process then exits within CANCEL_GRACE_MS whatever is stuck. Resolves with the exit
 * code: 0, or 130 when a cycle had to be cancelled.
 */
export async function runContinuously(reloader: Reloader, options: LoopOptions): Promise<number> {
  const log = reloader.runtime.log;
  const controller = runController();
  const intervalMs = options.intervalSeconds * 1000;
  let stopping = false;
  let reloadWanted: string | undefined = options.reloadAtStart ? 'SIGHUP during start-up' : undefined;
  let wake: (() => void) | undefined;

  let deadline: NodeJS.Timeout | undefined;
  const onStop = (signal: NodeJS.Signals) => {
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
    }, timerDelay(options.shutdownTimeoutMs));
    deadline.unref();
    wake?.();
  };
  const requestReload = (reason: string) => {
    if (stopping) return;
    reloadWanted = reason;
    wake?.();
  };
  const onHangup = () => requestReload('SIGHUP');
  const watchFiles = () => watchConfigFiles(reloader.runtime.config, log, requestReload);
  let stopWatching = options.watch ? watchFiles() : undefined;
  const reloadNow = async () => {
    const reason = reloadWanted!;
    reloadWanted = undefined;
    if (await reloader.reload(reason)) {
      stopWatching?.();
      if (options.watch) stopWatching = watchFiles();
    }
  };

  for (const signal of STOP_SIGNALS) process.on(signal, onStop);
  process.on('SIGHUP', onHangup);
  log.info({ interval_s: options.intervalSeconds, rules: reloader.runtime.config.rules.length, watch: options.watch }, 'running continuously');
  let cancelled = false;
  let stateLost = false;
  // Cycle starts are timed on the monotonic clock: a step of the wall clock (NTP, a VM resumed)
  // neither stops the cycles for the length of a step back nor runs them back to back after one forward.
  const now = () => performance.now();
  try {
    while (!stopping) {
      if (reloadWanted) await reloadNow();
      const started = now();
      const runtime = reloader.runtime;
      const report = await runCycle(runtime, { signal: controller.signal, onStart: options.onStart, ...(options.state ? { state: options.state } : {}) });
      cancelled = report.cancelled;
      options.onReport(report, runtime);
      if (report.stateLost) {
        // Going on would read and send every record again each cycle, with nothing saved: stop,
        // so that the service manager starts the service again and it takes the state anew.
        log.fatal({ state: options.state?.store.label }, 'the state lock was lost: stopping; a restart takes the state again (Restart=on-failure)');
        stateLost = true;
        break;
      }
      if (stopping) break;
      const nextStart = started + intervalMs;
      if (now() >= nextStart) {
        log.warn({ duration_ms: Math.round(now() - started), interval_s: options.intervalSeconds }, 'cycle took longer than the interval; the next one starts now');
        continue;
      }
      // Idle until the next start; a reload asked for meanwhile happens now, so its errors show at once.
      while (!stopping && now() < nextStart) {
        if (reloadWanted) {
          await reloadNow();
          continue;
        }
        await new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, nextStart - now());
          wake = () => {
            clearTimeout(timer);
            resolve();
          };
        });
        wake = undefined;
      }
    }
  } finally {
    clearTimeout(deadline);
    stopWatching?.();
    for (const signal of STOP_SIGNALS) process.off(signal, onStop);
    process.off('SIGHUP', onHangup);
  }
  if (stateLost) return 1;
  log.info(cancelled ? 'stopped; the cancelled cycle is not committed, its records are read again at the next start' : 'stopped');
  return cancelled ? 130 : 0;
}
