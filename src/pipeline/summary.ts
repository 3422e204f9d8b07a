import type { Logger } from '../log.js';
import type { CycleReport } from './stats.js';

const COLUMNS = ['read', 'matched', 'invalid', 'deduplicated', 'exported', 'failed'] as const;

/** The end-of-run summary as a table, for a person at a terminal. */
export function summaryTable(report: CycleReport): string {
  const header = ['rule', ...COLUMNS];
  const rows = [...report.rules].map(([name, s]) => [name, ...COLUMNS.map((c) => String(s[c]))]);
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]!.length)));
  const line = (cells: string[]) => cells.map((c, i) => (i === 0 ? c.padEnd(widths[i]!) : c.padStart(widths[i]!))).join('  ');
  let out = `run ${report.runId} finished in ${(report.durationMs / 1000).toFixed(2)}s\n`;
  out += line(header) + '\n' + rows.map(line).join('\n') + (rows.length ? '\n' : '');
  for (const [kind, map] of [['datasource', report.datasources], ['target', report.targets]] as const) {
    for (const [name, status] of map) if (!status.ok) out += `${kind} "${name}" FAILED: ${status.error}\n`;
  }
  for (const [name, status] of report.datasources) if (status.skipped) out += `datasource "${name}": ${records(status.skipped)} skipped as already processed (incremental)\n`;
  for (const [name, count] of report.spool ?? []) if (count > 0) out += `target "${name}": ${records(count)} in the dead-letter spool (sent again next cycle; refused ones by --replay-dead-letters)\n`;
  if (report.stateError) out += `state NOT saved: ${report.stateError}\n`;
  return out;
}

function records(count: number): string {
  return `${count} record${count === 1 ? '' : 's'}`;
}

/** The same summary as one structured log line, for journald and log shippers. */
export function logSummary(log: Logger, report: CycleReport, dryRun = false): void {
  log.info(
    {
      run_id: report.runId,
      ...(dryRun ? { dry_run: true } : {}),
      duration_ms: report.durationMs,
      rules: Object.fromEntries(report.rules),
      datasources: Object.fromEntries(report.datasources),
      targets: Object.fromEntries(report.targets),
      ...(report.spool ? { spool: Object.fromEntries(report.spool) } : {}),
      ...(report.stateError ? { state_error: report.stateError } : {}),
    },
    'run summary',
  );
}
