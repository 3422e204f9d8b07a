import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Logger } from '../log.js';
import type { CycleReport } from '../pipeline/stats.js';

/** Health allows two cycles to fail or overrun before it says so: the last success must be within this many intervals. */
export const HEALTHY_INTERVALS = 3;

/** What the service tells Prometheus: counters fed from each cycle's report. */
export class ServiceMetrics {
  readonly registry = new Registry();
  readonly #read = this.counter('threshold_records_read_total', 'Records read, per datasource', ['datasource']);
  readonly #skipped = this.counter('threshold_records_skipped_total', 'Records skipped as already processed (incremental), per datasource', ['datasource']);
  readonly #matched = this.counter('threshold_records_matched_total', 'Records that matched, per rule', ['rule']);
  readonly #deduplicated = this.counter('threshold_records_deduplicated_total', 'Matches not exported again (dedup_key, realert), per rule', ['rule']);
  readonly #exported = this.counter('threshold_records_exported_total', 'Records delivered, per rule and target', ['rule', 'target']);
  readonly #failed = this.counter('threshold_records_failed_total', 'Records a target did not take (spooled when there is state), per rule and target', ['rule', 'target']);
  readonly #retries = this.counter('threshold_delivery_retries_total', 'Writes tried again, per target', ['target']);
  readonly #datasourceFailures = this.counter('threshold_datasource_failures_total', 'Cycles in which a datasource failed', ['datasource']);
  readonly #cycles = this.counter('threshold_cycles_total', 'Cycles run, by outcome (ok, failed, cancelled)', ['outcome']);
  readonly #spool = new Gauge({ name: 'threshold_dead_letter_records', help: 'Records waiting in the dead-letter spool, per target', labelNames: ['target'], registers: [this.registry] });
  readonly #duration = new Histogram({
    name: 'threshold_cycle_duration_seconds',
    help: 'How long a cycle took',
    buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300],
    registers: [this.registry],
  });
  readonly #lastSuccess = new Gauge({ name: 'threshold_last_success_timestamp_seconds', help: 'When the last successful cycle ended (Unix time)', registers: [this.registry] });
  #lastSuccessAt: number | undefined;
  #lastOutcome = 'none yet';
  /** The longest recent cycle (decaying by a tenth per cycle), which bounds how stale "healthy" may be. */
  #longestCycleMs = 0;

  constructor(private readonly intervalMs: number) {}

  private counter(name: string, help: string, labelNames: string[]): Counter {
    return new Counter({ name, help, labelNames, registers: [this.registry] });
  }

  /** Adds one cycle's counts. */
  record(report: CycleReport, succeeded: boolean, endedAt = performance.now()): void {
    for (const [name, status] of report.datasources) {
      this.#read.inc({ datasource: name }, status.records);
      if (status.skipped) this.#skipped.inc({ datasource: name }, status.skipped);
      if (!status.ok) this.#datasourceFailures.inc({ datasource: name });
    }
    for (const [rule, stats] of report.rules) {
      this.#matched.inc({ rule }, stats.matched);
      this.#deduplicated.inc({ rule }, stats.deduplicated);
    }
    for (const { rule, target, exported, failed } of report.deliveries?.values() ?? []) {
      this.#exported.inc({ rule, target }, exported);
      this.#failed.inc({ rule, target }, failed);
    }
    for (const [target, status] of report.targets) if (status.retries) this.#retries.inc({ target }, status.retries);
    this.#spool.reset();
    for (const [target, records] of report.spool ?? []) this.#spool.set({ target }, records);
    this.#duration.observe(report.durationMs / 1000);
    const outcome = report.cancelled ? 'cancelled' : succeeded ? 'ok' : 'failed';
    this.#cycles.inc({ outcome });
    this.#lastOutcome = outcome;
    this.#longestCycleMs = Math.max(this.#longestCycleMs * 0.9, report.durationMs);
    if (outcome === 'ok') {
      this.#lastSuccessAt = endedAt;
      this.#lastSuccess.set(Date.now() / 1000);
    }
  }

  /**
   * Healthy while a cycle succeeded within the last HEALTHY_INTERVALS intervals, or within as
   * many of the recent cycles' durations when cycles take longer than the interval (a slow but
   * working service is not to be restarted mid-cycle). Ages are on the monotonic clock: a step of
   * the wall clock makes none negative or huge.
   */
  health(now = performance.now()): { healthy: boolean; text: string } {
    if (this.#lastSuccessAt === undefined) return { healthy: false, text: `unhealthy: no successful cycle yet (last: ${this.#lastOutcome})\n` };
    const age = now - this.#lastSuccessAt;
    const limit = HEALTHY_INTERVALS * Math.max(this.intervalMs, this.#longestCycleMs);
    const healthy = age <= limit;
    return {
      healthy,
      text: `${healthy ? 'ok' : 'unhealthy'}: last successful cycle ${(age / 1000).toFixed(1)}s ago (limit ${(limit / 1000).toFixed(1)}s); last cycle: ${this.#lastOutcome}\n`,
    };
  }
}

/** Serves /metrics (Prometheus text) and /healthz (200 or 503). Resolves once listening; the port is logged (0 picks one). */
export async function serveMetrics(metrics: ServiceMetrics, port: number, host: string, log: Logger): Promise<Server> {
  const server = createServer((req, res) => {
    const url = (req.url ?? '/').split('?')[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
      return;
    }
    if (url === '/metrics') {
      metrics.registry.metrics().then(
        (text) => res.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
        (err: Error) => res.writeHead(500, { 'content-type': 'text/plain' }).end(`${err.message}\n`),
      );
    } else if (url === '/healthz') {
      const { healthy, text } = metrics.health();
      res.writeHead(healthy ? 200 : 503, { 'content-type': 'text/plain; charset=utf-8' }).end(text);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: try /metrics or /healthz\n');
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.unref();
  const address = server.address() as AddressInfo;
  log.info({ host: address.address, port: address.port }, `serving metrics on http://${host}:${address.port}/metrics and health on /healthz`);
  return server;
}
