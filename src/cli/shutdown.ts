import { setMaxListeners } from 'node:events';
import type { Logger } from '../log.js';

/**
 * Once a run has been cancelled, it gets this long to stop cleanly (discard temp files, roll
 * back, close connections). Past it the process exits anyway: some calls cannot be stopped (a
 * recursive mkdir under /proc spins forever in Node's thread pool, a driver may ignore its
 * signal), and a service that ignores SIGTERM is worse than one that leaves a temp file.
 */
export const CANCEL_GRACE_MS = 10_000;

/** Ends the process with `code` if it is still running `ms` from now; the timer does not keep it alive. */
export function exitAfter(ms: number, code: number, log: Logger, reason: string): NodeJS.Timeout {
  const timer = setTimeout(() => {
    log.error({ waited_ms: ms, exit_code: code }, `${reason}; exiting now`);
    process.exit(code);
  }, ms);
  timer.unref();
  return timer;
}

/** Aborts `controller` and arms the deadline: the run stops within CANCEL_GRACE_MS whatever is stuck. */
export function cancelRun(controller: AbortController, log: Logger, graceMs = CANCEL_GRACE_MS): void {
  if (controller.signal.aborted) return;
  controller.abort();
  exitAfter(graceMs, 130, log, 'the cancelled run did not stop in time (a call that cannot be interrupted)');
}

/**
 * The controller of a run (or of the service's life): every connector's in-flight operation
 * listens on its signal, so a config with a few dozen targets passes Node's default of 10
 * listeners without any leak. The limit stays finite so that a real leak, listeners added each
 * cycle and never removed, still shows up as a warning in a long-running service.
 */
export function runController(): AbortController {
  const controller = new AbortController();
  setMaxListeners(1000, controller.signal);
  return controller;
}
