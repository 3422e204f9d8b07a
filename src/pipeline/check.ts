import type { OperationContext } from '../../connectors/types.js';
import type { LoadedConfig } from '../config/types.js';
import { withDeadline } from '../delivery/retry.js';
import { describeError } from '../errors.js';
import type { Logger } from '../log.js';
import { closeRuntime, endpointError, openRuntime, type Endpoint } from './runtime.js';

/** How long one connection test may take before it counts as failed. */
export const CHECK_TIMEOUT_MS = 15_000;

export interface CheckResult {
  readonly name: string;
  readonly kind: 'datasource' | 'target';
  readonly type: string;
  readonly ok: boolean;
  readonly latencyMs: number;
  /** What the check found (a server version, the folder written to) or, when it failed, why. */
  readonly detail: string;
}

/**
 * `--check`: creates every datasource and export target of the config, used by a rule or not,
 * and tests each one's connection at once, each bounded by CHECK_TIMEOUT_MS. Nothing is read
 * past a probe and nothing is written but a probe a target removes again.
 */
export async function checkConnections(config: LoadedConfig, log: Logger, signal: AbortSignal): Promise<CheckResult[]> {
  const runtime = await openRuntime(config, log, { all: true, signal });
  try {
    const checks = [
      ...[...runtime.sources].map(([name, e]) => checkOne(name, 'datasource', e, log.child({ datasource: name }), signal)),
      ...[...runtime.sinks].map(([name, e]) => checkOne(name, 'target', e, log.child({ target: name }), signal)),
    ];
    return await Promise.all(checks);
  } finally {
    await closeRuntime(runtime);
  }
}

async function checkOne(
  name: string,
  kind: CheckResult['kind'],
  endpoint: Endpoint<{ check?(ctx: OperationContext): Promise<string | void> }>,
  log: Logger,
  signal: AbortSignal,
): Promise<CheckResult> {
  const started = performance.now();
  const result = (ok: boolean, detail: string): CheckResult => ({ name, kind, type: endpoint.type, ok, latencyMs: performance.now() - started, detail });
  if (!endpoint.ok) return result(false, endpointError(endpoint)!);
  if (!endpoint.value.check) return result(true, 'created (this connector has no connection test)');
  const controller = new AbortController();
  const onAbort = () => controller.abort();
  signal.addEventListener('abort', onAbort, { once: true });
  try {
    const note = await withDeadline(endpoint.value.check({ signal: controller.signal, log }), CHECK_TIMEOUT_MS, signal, `checking ${kind} "${name}"`);
    return result(true, note || 'ok');
  } catch (err) {
    return result(false, describeError(err));
  } finally {
    controller.abort();
    signal.removeEventListener('abort', onAbort);
  }
}

/** The results as a table for people: name, kind, type, ok/FAILED, latency, detail. */
export function checkTable(results: readonly CheckResult[]): string {
  const header = ['name', 'kind', 'type', 'status', 'latency', 'detail'];
  const rows = results.map((r) => [r.name, r.kind, r.type, r.ok ? 'ok' : 'FAILED', `${Math.round(r.latencyMs)} ms`, r.detail.replace(/\s+/g, ' ')]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((row) => row[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!))).join('  ').trimEnd();
  const failed = results.filter((r) => !r.ok).length;
  return [line(header), ...rows.map(line), '', failed ? `${failed} of ${results.length} checks failed` : `all ${results.length} checks passed`].join('\n') + '\n';
}
