import { setMaxListeners } from 'node:events';
import { exitHeldNow, exitHoldsStarted } from '../delivery/exit-hold.js';
import type { Logger } from '../log.js';
import { timerDelay } from '../util/timer-delay.js';

/**
 * Once a run has been cancelled, it gets this long to stop cleanly (discard temp files, roll
 * back, close connections). Past it the process exits anyway: some calls cannot be stopped (a
 * recursive mkdir under /proc spins forever in Node's thread pool, a driver may ignore its
 * signal), and a service that ignores SIGTERM is worse than one that leaves a temp file.
 */
export const CANCEL_GRACE_MS = 10_000;

/**
 * How long past the grace the deadline waits for output being made visible or undone
 * (src/delivery/exit-hold.ts): exiting in the middle would leave half of a run's objects visible,
 * or parts stored. With the default shutdown_timeout (60 s) and the grace it stays under the
 * 90 s systemd gives the unit to stop (deploy/threshold-processor.service).
 */
export const EXIT_HOLD_MS = 10_000;

/**
 * Once held work ends, the run it belonged to finishes by itself (its summary, closing sockets,
 * up to 2 s for idle sockets): the deadline gives it this long before calling it stuck.
 */
export const AFTER_HOLD_MS = 5_000;

/**
 * Ends the process with `code` if it is still running `ms` from now. While output is being made
 * visible or undone, it waits for that, then gives the run `afterHoldMs` to end by itself; all
 * within `ms + holdMs + afterHoldMs`. The timers do not keep the process alive.
 */
export function exitAfter(ms: number, code: number, log: Logger, reason: string, holdMs = 0, afterHoldMs = AFTER_HOLD_MS): NodeJS.Timeout {
  let waited = ms;
  const exit = () => {
    log.error({ waited_ms: waited, exit_code: code }, `${reason}; exiting now`);
    process.exit(code);
  };
  let told = false;
  /** Held work started after this count (work running when the deadline is armed included) earns the run a pause once it ends. */
  let pausedAt = exitHoldsStarted() - exitHeldNow();
  const bound = ms + holdMs + afterHoldMs;
  const fire = () => {
    if (exitHeldNow() > 0 && waited < bound) {
      if (!told) log.warn({ waited_ms: waited, hold_ms: holdMs }, 'waiting for output being made visible or undone before exiting (exiting now would leave part of it)');
      told = true;
      waited += HOLD_POLL_MS;
      setTimeout(fire, HOLD_POLL_MS).unref();
      return;
    }
    // The held work ended (not the hold's time): its run is about to end by itself. Held work
    // that starts meanwhile (another target's discard) is waited for again; all within `bound`.
    if (exitHeldNow() === 0 && exitHoldsStarted() > pausedAt && waited < bound) {
      pausedAt = exitHoldsStarted();
      const pause = Math.min(afterHoldMs, bound - waited);
      waited += pause;
      setTimeout(fire, pause).unref();
      return;
    }
    exit();
  };
  const timer = setTimeout(fire, timerDelay(ms));
  timer.unref();
  return timer;
}

const HOLD_POLL_MS = 100;

/** Aborts `controller` and arms the deadline: the run stops within CANCEL_GRACE_MS whatever is stuck (publishing or undoing output within EXIT_HOLD_MS + AFTER_HOLD_MS more). */
export function cancelRun(controller: AbortController, log: Logger, graceMs = CANCEL_GRACE_MS, holdMs = EXIT_HOLD_MS): void {
  if (controller.signal.aborted) return;
  controller.abort();
  exitAfter(graceMs, 130, log, 'the cancelled run did not stop in time (a call that cannot be interrupted)', holdMs);
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
