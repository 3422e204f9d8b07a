/**
 * Work that must not be cut off by the process exiting: a target making a run's objects visible
 * one after another (S3 has no transaction: cut half-way, half the set is visible), or undoing
 * them (aborting uploads, removing objects: cut, their parts stay). A cancelled run's exit
 * deadline (src/cli/shutdown.ts) waits for it, within a bound.
 */
let held = 0;
let started = 0;

/** Runs `work` with the exit held: the cancel deadline does not end the process while it runs. */
export async function whileExitHeld<T>(work: () => Promise<T>): Promise<T> {
  held++;
  started++;
  try {
    return await work();
  } finally {
    held--;
  }
}

/** How many pieces of work hold the exit now. */
export function exitHeldNow(): number {
  return held;
}

/** How many pieces of work have held the exit so far: tells whether one came and went unseen. */
export function exitHoldsStarted(): number {
  return started;
}
