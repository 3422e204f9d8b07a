// The reference count: the generated CSV read back with a plain line split (the generator never
// quotes) into columns, and the rules of workload.mjs applied by straightforward JS. Independent
// of the processor and of DuckDB, so either can be checked against it.
import { createReadStream } from 'node:fs';
import { referencePredicates, RULE_NAMES } from './workload.mjs';

/** Interns repeated strings as small codes so 5M rows fit in typed arrays. */
class Dictionary {
  values = [];
  #codes = new Map();
  code(s) {
    let c = this.#codes.get(s);
    if (c === undefined) {
      c = this.values.length;
      this.values.push(s);
      this.#codes.set(s, c);
    }
    return c;
  }
}

/** Reads `path` (header `id,sensor,value,status,created_at`) into columns. */
export async function loadColumns(path, expectedRows) {
  const id = new Float64Array(expectedRows);
  const value = new Float64Array(expectedRows);
  const createdMs = new Float64Array(expectedRows);
  const status = new Uint8Array(expectedRows);
  const sensor = new Uint16Array(expectedRows);
  const statuses = new Dictionary();
  const sensors = new Dictionary();
  let rows = 0;
  let header = true;
  let rest = '';
  const take = (line) => {
    if (header) {
      header = false;
      if (line !== 'id,sensor,value,status,created_at') throw new Error(`${path}: unexpected header ${line}`);
      return;
    }
    if (line === '') return;
    if (rows >= expectedRows) throw new Error(`${path}: more than ${expectedRows} rows`);
    const [i, s, v, st, at] = line.split(',');
    id[rows] = Number(i);
    value[rows] = Number(v);
    sensor[rows] = sensors.code(s);
    status[rows] = statuses.code(st);
    createdMs[rows] = Date.parse(at);
    rows++;
  };
  for await (const chunk of createReadStream(path, { encoding: 'latin1', highWaterMark: 1 << 22 })) {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop();
    for (const line of lines) take(line);
  }
  take(rest);
  if (rows !== expectedRows) throw new Error(`${path}: ${rows} rows, expected ${expectedRows}`);
  return { rows, id, value, createdMs, status, sensor, statuses: statuses.values, sensors: sensors.values };
}

/**
 * Matches per rule and for the union over the first `limit` rows, with "now" = nowMs; plus, per
 * rule, the sum of the matching ids: a cheap checksum that catches the right number of wrong rows.
 */
export function countMatches(columns, thresholds, nowMs, { limit = columns.rows, rules = RULE_NAMES } = {}) {
  const predicates = referencePredicates(thresholds);
  const counts = Object.fromEntries(rules.map((name) => [name, 0]));
  const idSums = Object.fromEntries(rules.map((name) => [name, 0]));
  counts.union = 0;
  const row = { value: 0, createdMs: 0, status: '', sensor: '' };
  for (let i = 0; i < limit; i++) {
    row.value = columns.value[i];
    row.createdMs = columns.createdMs[i];
    row.status = columns.statuses[columns.status[i]];
    row.sensor = columns.sensors[columns.sensor[i]];
    let any = false;
    for (const name of rules) {
      if (predicates[name](row, nowMs)) {
        counts[name]++;
        idSums[name] += columns.id[i];
        any = true;
      }
    }
    if (any) counts.union++;
  }
  return { counts, idSums };
}

/**
 * The reference for a processor run whose "now" is only known to lie in [fromMs, toMs] (spawn to
 * exit). Only the time-window rule depends on "now", and its matches only shrink as "now" moves
 * on, so equal counts mean equal sets: the earliest "now" at which the window rule's count is at
 * most `observedWindowCount` is the one that explains the output, if any does. Every count and
 * checksum is then compared exactly at that "now".
 */
export function referenceForRun(columns, thresholds, fromMs, toMs, observedWindowCount, windowRule = 'rule_a') {
  const countAt = (nowMs) => countMatches(columns, thresholds, nowMs, { rules: [windowRule] }).counts[windowRule];
  let lo = fromMs;
  let hi = toMs;
  while (lo < hi) {
    const mid = Math.floor((lo + hi) / 2);
    if (countAt(mid) <= observedWindowCount) hi = mid;
    else lo = mid + 1;
  }
  return { nowMs: lo, range: [countAt(toMs), countAt(fromMs)], ...countMatches(columns, thresholds, lo) };
}
