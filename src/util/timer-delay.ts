/**
 * Node's timers hold a signed 32-bit count of milliseconds: a longer delay (a `40d` backoff, a
 * Retry-After of a month, a timeout of a million seconds) fires after 1 ms with a warning
 * instead. Every delay taken from config or from a server goes through this: past about 24.8
 * days it is held at the longest a timer can wait, which is "not in this run" for any purpose
 * here.
 */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export function timerDelay(ms: number): number {
  return ms > MAX_TIMER_MS ? MAX_TIMER_MS : ms;
}
