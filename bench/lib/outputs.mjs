// Reads what a measured run wrote, for the correctness checks: NDJSON line counts with the sum of
// the `id` fields, and the processor's run summary (a JSON log line, or the table on a terminal).
import { createReadStream, existsSync } from 'node:fs';

// The id is the first field of every exported record; quoted when the column is untyped text.
const ID = /"id":"?(\d+)/;
const RULE = /"_rule":"([^"]*)"/;

/**
 * Lines and sum of ids of an NDJSON file; a missing file counts as empty (no file when nothing
 * matched). With `byRule`, also lines and id sums per `_rule` value (`perRule`).
 */
export async function scanNdjson(path, { byRule = false } = {}) {
  const perRule = {};
  if (!existsSync(path)) return { lines: 0, idSum: 0, missingIds: 0, perRule };
  let lines = 0;
  let idSum = 0;
  let missingIds = 0;
  let rest = '';
  const takeLine = (line) => {
    if (line === '') return;
    lines++;
    const m = ID.exec(line);
    if (m) idSum += Number(m[1]);
    else missingIds++;
    if (byRule) {
      const rule = RULE.exec(line)?.[1] ?? '(none)';
      perRule[rule] ??= { lines: 0, idSum: 0 };
      perRule[rule].lines++;
      if (m) perRule[rule].idSum += Number(m[1]);
    }
  };
  for await (const chunk of createReadStream(path, { encoding: 'utf8', highWaterMark: 1 << 22 })) {
    const parts = (rest + chunk).split('\n');
    rest = parts.pop();
    for (const line of parts) takeLine(line);
  }
  takeLine(rest);
  return { lines, idSum, missingIds, perRule };
}

/** The `rules` object of the processor's JSON "run summary" log line on stderr, if there is one. */
export function runSummary(stderr) {
  for (const line of stderr.split('\n').reverse()) {
    if (!line.includes('run summary')) continue;
    try {
      const entry = JSON.parse(line);
      if (entry.msg === 'run summary') return entry.rules;
    } catch {
      // Not a JSON log line (e.g. the table printed on a terminal): no summary to check.
    }
  }
  return undefined;
}

/**
 * The same figures from the summary table the processor prints on a terminal
 * (`rule read matched invalid exported failed`, one line per rule), if there is one.
 */
export function terminalSummary(text) {
  // eslint-disable-next-line no-control-regex
  const plain = text.replace(/\x1b\[[0-9;?]*[A-Za-z]/g, '').replace(/\r/g, '\n');
  const lines = plain.split('\n');
  const header = lines.findLastIndex((line) => /^\s*rule\s+read\s+matched\s+invalid\s+exported\s+failed\s*$/.test(line));
  if (header < 0) return undefined;
  const rules = {};
  for (const line of lines.slice(header + 1)) {
    const m = /^\s*(\S+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s+(\d+)\s*$/.exec(line);
    if (!m) continue;
    const [read, matched, invalid, exported, failed] = m.slice(2).map(Number);
    rules[m[1]] = { read, matched, invalid, exported, failed };
  }
  return rules;
}
