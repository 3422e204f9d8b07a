// The bench's output: the results table, the targets section, and bench/results.json.
import { writeFileSync } from 'node:fs';
import os from 'node:os';

export function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

const fmtInt = (x) => (x === undefined ? '—' : Math.round(x).toLocaleString('en-US'));
const fmt = (x, digits = 1) => (x === undefined ? '—' : x.toFixed(digits));

function seconds(x) {
  if (x === undefined) return '—';
  return x < 1 ? `${(x * 1000).toFixed(1)} ms` : `${x.toFixed(2)} s`;
}

function ratioText(c) {
  if (c.failed) return 'FAILED';
  if (c.ratio === undefined) return '—';
  return c.ratioKind === 'startup' ? `${c.ratio.toFixed(2)}× node -e 0 (lower is better)` : `${c.ratio.toFixed(2)}×`;
}

/** Fixed-width text table, first column left-aligned, the others right-aligned. */
function textTable(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (cells) => cells.map((c, i) => (i === 0 || i === cells.length - 1 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ');
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n').replace(/ +$/gm, '');
}

export function resultsTable(cases) {
  const header = ['case', 'runs', 'median', 'rows/s', 'MB/s', 'peak RSS MiB', 'matched', 'ratio to baseline (same file)'];
  const rows = cases.map((c) => [
    c.label,
    String(c.runs.length),
    seconds(c.medianSeconds),
    fmtInt(c.rowsPerSecond),
    fmt(c.mbPerSecond),
    fmt(c.peakRssMiB),
    c.matchRate === undefined ? '—' : `${(c.matchRate * 100).toFixed(c.matchRate < 0.01 ? 3 : 1)} %`,
    ratioText(c),
  ]);
  return textTable(header, rows);
}

export function targetsText(targets) {
  const width = Math.max(...targets.map((t) => t.name.length));
  return targets.map((t) => `${t.verdict.padEnd(4)}  ${t.name.padEnd(width)}  ${t.detail}`).join('\n');
}

export function machineInfo() {
  const cpus = os.cpus();
  return {
    cpus: cpus.length,
    cpuModel: cpus[0]?.model,
    totalMemoryGiB: Number((os.totalmem() / 2 ** 30).toFixed(1)),
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    node: process.version,
    loadAverage: os.loadavg(),
    date: new Date().toISOString(),
  };
}

/** Per-run figures kept in results.json; process output is dropped (logs can be large). */
function caseRecord(c) {
  const { runs, ...rest } = c;
  return { ...rest, runs: runs.length, perRun: runs };
}

export function writeResults(path, { settings, datasets, cases, targets, problems }) {
  const doc = { machine: machineInfo(), settings, datasets, cases: cases.map(caseRecord), targets, problems };
  writeFileSync(path, JSON.stringify(doc, null, 2) + '\n');
}
