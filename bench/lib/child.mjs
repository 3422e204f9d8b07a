// Shared by the case scripts (each runs in its own child process): read the parameters the
// bench passes as one JSON argument, and print the result as one JSON line on stdout.

/** The case's parameters: process.argv[2] as JSON. */
export function caseParams() {
  return JSON.parse(process.argv[2] ?? '{}');
}

/** Times `work` (an async function returning an object) and prints its result with the elapsed seconds. */
export async function runCase(work) {
  const started = process.hrtime.bigint();
  const result = await work();
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  process.stdout.write(JSON.stringify({ ...result, innerSeconds: seconds }) + '\n');
}
