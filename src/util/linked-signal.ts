/**
 * A signal aborted as soon as any of `signals` is, with the reason of the first, and `release`
 * to unlink it once its operation is over. AbortSignal.any would do the first part, but a
 * composite of a long-lived signal (a service's, which lives as long as the process) stays
 * reachable from it after a full collection when something listened to it, as every HTTP
 * request does: measured on Node 20, the heap grew by 3-8 MiB per 100,000 requests, without end
 * (nodejs/node#64476).
 */
export function linkedSignal(...signals: AbortSignal[]): { readonly signal: AbortSignal; release(): void } {
  const controller = new AbortController();
  const aborted = signals.find((s) => s.aborted);
  if (aborted) {
    controller.abort(aborted.reason);
    return { signal: controller.signal, release: () => {} };
  }
  const listeners = signals.map((source) => {
    const onAbort = () => {
      controller.abort(source.reason);
      release();
    };
    source.addEventListener('abort', onAbort, { once: true });
    return { source, onAbort };
  });
  const release = () => {
    for (const { source, onAbort } of listeners) source.removeEventListener('abort', onAbort);
  };
  return { signal: controller.signal, release };
}
