// `npm run bench`: the processor's CSV throughput, memory and start-up against a bare CSV parse
// (the baseline), json-rules-engine and DuckDB. See bench/README.md.
//
// Environment: BENCH_ROWS (default 1000000), BENCH_CASES (comma list, default all of CASE_GROUPS;
// OPTIONAL_GROUPS only when named), BENCH_RUNS (default 5; fewer for the slow cases),
// BENCH_BATCH_SIZES (default 2000,5000), BENCH_TYPED_COLUMNS=1, BENCH_REGENERATE=1,
// BENCH_CLI (default dist/processor.js).
import { existsSync, mkdirSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { join, resolve } from 'node:path';
import { ensureDataset, withinShare } from './generate.mjs';
import { ensureBenchDeps } from './lib/deps.mjs';
import { caseOutput, benchDir, measureNode, SCRIPT, tail } from './lib/measure.mjs';
import { runSummary, scanNdjson, terminalSummary } from './lib/outputs.mjs';
import { countMatches, loadColumns, referenceForRun } from './lib/reference.mjs';
import { median, resultsTable, targetsText, writeResults } from './lib/report.mjs';
import { pickThresholds, processorConfigYaml, RULE_NAMES } from './lib/workload.mjs';

const CASE_GROUPS = ['baseline', 'processor', 'json-rules-engine', 'duckdb', 'processor-5x', 'batch-size', 'startup'];
// Run only when named in BENCH_CASES. `progress`: the CLI on a pseudo-terminal (through util-linux
// `script`) against the same wrapper writing to files, to measure what a progress display costs.
const OPTIONAL_GROUPS = ['progress'];
const RATES = [
  { key: '0.1', share: 0.001, label: '0.1 %' },
  { key: '50', share: 0.5, label: '50 %' },
];
const REPO = join(benchDir, '..');
// BENCH_CLI: another build of the CLI to measure, e.g. one checked out elsewhere for a before/after.
const CLI = process.env.BENCH_CLI ? resolve(process.env.BENCH_CLI) : join(REPO, 'dist', 'processor.js');
const DATA_DIR = join(benchDir, 'data');
const OUT_DIR = join(benchDir, 'out');
const TMP_DIR = join(OUT_DIR, 'tmp');
const JRE_SUBSET = 100_000;
const STARTUP_RUNS = 20;

function readSettings(env) {
  const rows = Number(env.BENCH_ROWS ?? 1_000_000);
  if (!Number.isInteger(rows) || rows < 1000) throw new Error(`BENCH_ROWS must be an integer >= 1000, got ${env.BENCH_ROWS}`);
  const runs = Number(env.BENCH_RUNS ?? 5);
  if (!Number.isInteger(runs) || runs < 1) throw new Error(`BENCH_RUNS must be an integer >= 1, got ${env.BENCH_RUNS}`);
  const known = [...CASE_GROUPS, ...OPTIONAL_GROUPS];
  const cases = env.BENCH_CASES ? env.BENCH_CASES.split(',').map((s) => s.trim()).filter(Boolean) : CASE_GROUPS;
  const unknown = cases.filter((c) => !known.includes(c));
  if (unknown.length) throw new Error(`unknown BENCH_CASES ${unknown.join(', ')}; known: ${known.join(', ')}`);
  // The first size is the reference the others are compared with.
  const batchSizes = (env.BENCH_BATCH_SIZES ?? '2000,5000').split(',').map((s) => Number(s.trim()));
  if (batchSizes.length < 2 || batchSizes.some((n) => !Number.isInteger(n) || n < 1)) {
    throw new Error(`BENCH_BATCH_SIZES must be two or more integers >= 1, got ${env.BENCH_BATCH_SIZES}`);
  }
  return { rows, bigRows: rows * 5, runs, cases, batchSizes, typedColumns: env.BENCH_TYPED_COLUMNS === '1', regenerate: env.BENCH_REGENERATE === '1' };
}

const settings = readSettings(process.env);
const selected = (group) => settings.cases.includes(group);
const progress = (message) => process.stderr.write(`[bench] ${message}\n`);

/** Problems found while running; `fatal` ones (a crash, a wrong count) make the exit code 1. */
const problems = [];
function report(caseId, message, fatal = true) {
  problems.push({ case: caseId, message, fatal });
  progress(`${fatal ? 'FAILURE' : 'WARNING'} ${caseId}: ${message}`);
}

// ---------------------------------------------------------------- datasets and references

function prepareDatasets(now) {
  const wanted = [{ key: 'main', rows: settings.rows }];
  if (selected('processor-5x')) wanted.push({ key: 'big', rows: settings.bigRows });
  const datasets = {};
  for (const { key, rows } of wanted) {
    const started = Date.now();
    const info = ensureDataset({ path: join(DATA_DIR, `sensors-${rows}.csv`), rows, now, force: settings.regenerate });
    const how = info.generated ? `generated in ${((Date.now() - started) / 1000).toFixed(1)} s` : 'reused';
    progress(`dataset ${info.path}: ${rows.toLocaleString('en-US')} rows, ${(info.bytes / 1e6).toFixed(1)} MB, ${how}`);
    datasets[key] = info;
  }
  return datasets;
}

const columnCache = new Map();
/** The dataset read back into columns (once), for the reference counts. */
async function referenceColumns(dataset) {
  if (!columnCache.has(dataset.path)) columnCache.set(dataset.path, await loadColumns(dataset.path, dataset.rows));
  return columnCache.get(dataset.path);
}

/** Thresholds for a share of matching rows, fixed at bench start so every engine runs the same rules. */
function thresholdsFor(dataset, rate, benchStart) {
  return pickThresholds(rate.share, withinShare(dataset.anchorMs, benchStart));
}

// ---------------------------------------------------------------- running a case

/**
 * A case is a spec: `{id, label, group, data, runs, prepare, inspect, selfReport, tty, quiet}`.
 * `prepare(i)` returns the node arguments of run i; `inspect(run, i)` checks the run (throwing on a
 * wrong result) and may return figures to keep for it.
 */
function newRecord({ id, label, group, data, note }) {
  return { id, label, group, dataset: data?.path, rows: data?.rows, bytes: data?.bytes, note, runs: [], failed: false };
}

/** One run of a case in a fresh child process; throws on a crash or a wrong result. */
async function runOnce(record, spec, i) {
  const { nodeArgs, env } = await spec.prepare(i);
  const run = await measureNode(nodeArgs, { tmpDir: TMP_DIR, selfReport: spec.selfReport ?? true, cwd: REPO, env, tty: spec.tty });
  // On a pseudo-terminal everything the child wrote arrives on stdout.
  if (run.code !== 0) throw new Error(`exit ${run.code ?? run.signal}: ${tail(run.stderr || run.stdout)}`);
  const extra = (await spec.inspect?.(run, i)) ?? {};
  const { wallSeconds, rssMiB, rssSelfMiB, rssTimeMiB } = run;
  record.runs.push({ wallSeconds, rssMiB, rssSelfMiB, rssTimeMiB, ...extra });
  if (!spec.quiet) progress(`  ${record.id} run ${i + 1}: ${wallSeconds.toFixed(3)} s, ${rssMiB?.toFixed(1) ?? '?'} MiB`);
}

function fail(record, err) {
  record.failed = true;
  record.error = err.message;
  report(record.id, err.message);
}

/** Runs one case `spec.runs` times, each in a fresh child process. A failure ends the case; the bench goes on. */
async function runCase(spec) {
  const record = newRecord(spec);
  progress(`${spec.label}: ${spec.runs} run(s)`);
  try {
    for (let i = 0; i < spec.runs; i++) await runOnce(record, spec, i);
  } catch (err) {
    fail(record, err);
  }
  return summarise(record);
}

/**
 * Runs several cases `runs` times each, alternating (a1 b1 a2 b2 ...), so drift on a shared
 * machine hits each alike and run i of one can be paired with run i of the other. A case that
 * fails drops out; the others go on.
 */
async function runAlternating(specs, runs) {
  const records = specs.map(newRecord);
  progress(`${specs.map((s) => s.label).join(' | ')}: ${runs} run(s) each, alternating`);
  for (let i = 0; i < runs; i++) {
    for (const [k, spec] of specs.entries()) {
      if (records[k].failed) continue;
      try {
        await runOnce(records[k], spec, i);
      } catch (err) {
        fail(records[k], err);
      }
    }
  }
  return records.map((r) => summarise(r));
}

/** Median wall time and the figures derived from it; `secondsOf` lets a case extrapolate. */
function summarise(record, secondsOf = (run) => run.wallSeconds) {
  if (record.runs.length === 0) return record;
  const times = record.runs.map(secondsOf);
  record.medianSeconds = median(times);
  // The spread shows how noisy the machine was (2 cores shared with whatever else runs).
  record.minSeconds = Math.min(...times);
  record.maxSeconds = Math.max(...times);
  const rssValues = record.runs.map((r) => r.rssMiB).filter((x) => x !== undefined);
  record.peakRssMiB = rssValues.length ? Math.max(...rssValues) : undefined;
  record.medianRssMiB = rssValues.length ? median(rssValues) : undefined;
  if (record.rows) record.rowsPerSecond = record.rows / record.medianSeconds;
  if (record.bytes) record.mbPerSecond = record.bytes / 1e6 / record.medianSeconds;
  const rate = record.runs.at(-1).matchRate;
  if (rate !== undefined) record.matchRate = rate;
  return record;
}

// ---------------------------------------------------------------- the cases

function baselineSpec({ id, label, data, runs }) {
  return {
    id,
    label,
    group: 'baseline',
    data,
    runs,
    prepare: () => ({ nodeArgs: [join(benchDir, 'cases', 'baseline.mjs'), JSON.stringify({ file: data.path })] }),
    inspect: (run) => {
      const out = caseOutput(run);
      if (out.rows !== data.rows) throw new Error(`counted ${out.rows} records, expected ${data.rows}`);
      return { innerSeconds: out.innerSeconds };
    },
  };
}

/** Matches are out of tolerance if off by more than 20 % of the target or 4 binomial sigmas, whichever is wider. */
function rateWithinTolerance(actual, target, rows) {
  const sigma = Math.sqrt((target * (1 - target)) / rows);
  return Math.abs(actual - target) <= Math.max(0.2 * target, 4 * sigma);
}

/**
 * Checks one processor run against the reference: per rule, the NDJSON line count and the id
 * checksum must equal the reference's at the "now" (between spawn and exit) that explains the
 * time-window rule's count; the run summary must agree with the files. On a terminal (`tty`)
 * the summary is the table the processor prints there instead of the JSON log line: finding it
 * also shows the processor saw a terminal.
 */
async function checkProcessorRun({ id, run, data, thresholds, outDir, fromMs, toMs, tty = false }) {
  const columns = await referenceColumns(data);
  const files = {};
  for (const name of RULE_NAMES) files[name] = await scanNdjson(join(outDir, `${name}.ndjson`));
  const reference = referenceForRun(columns, thresholds, fromMs, toMs, files.rule_a.lines);
  const summary = tty ? terminalSummary(run.stdout) : runSummary(run.stderr);
  const errors = [];
  const perRule = {};
  let total = 0;
  for (const name of RULE_NAMES) {
    const file = files[name];
    perRule[name] = file.lines;
    total += file.lines;
    const expected = reference.counts[name];
    if (file.lines !== expected) {
      const range = name === 'rule_a' ? ` (${reference.range[0]}..${reference.range[1]} for any "now" during the run)` : '';
      errors.push(`${name}: ${file.lines} lines, reference ${expected}${range}`);
    } else if (file.idSum !== reference.idSums[name]) {
      errors.push(`${name}: right count but wrong records (id checksum ${file.idSum}, reference ${reference.idSums[name]})`);
    }
    if (file.missingIds) errors.push(`${name}: ${file.missingIds} lines without an id`);
    const stats = summary?.[name];
    if (stats && (stats.matched !== file.lines || stats.exported !== file.lines)) errors.push(`${name}: summary says matched ${stats.matched}, exported ${stats.exported}; file has ${file.lines}`);
    if (stats && stats.invalid !== 0) errors.push(`${name}: ${stats.invalid} records reported invalid; the data has none`);
    if (stats && stats.read !== data.rows) errors.push(`${name}: summary says read ${stats.read}, the file has ${data.rows} rows`);
  }
  if (!summary) {
    const missing = tty ? 'no summary table in the terminal output (did the processor see a terminal?)' : 'no JSON "run summary" line on stderr';
    report(id, `${missing}; checked the output files only`, false);
  }
  if (errors.length) throw new Error(`wrong output: ${errors.join('; ')}`);
  // The rules are disjoint by status, so the union is the sum of the per-rule files.
  return { matched: total, perRule, matchRate: total / data.rows, referenceNowMs: reference.nowMs };
}

/**
 * The processor CLI on `data` with the bench's three rules writing one NDJSON file per rule.
 * `batchSize` sets settings.batch_size (default: the processor's own default); `tty` runs it on
 * a pseudo-terminal instead of with pipes (`'redirect'`: the same wrapper, output to files).
 */
function processorSpec({ id, label, group, data, rate, thresholds, runs, batchSize, tty = false }) {
  const outDir = join(OUT_DIR, id);
  const configPath = join(OUT_DIR, `${id}.config.yaml`);
  mkdirSync(outDir, { recursive: true });
  writeFileSync(configPath, processorConfigYaml({ dataPath: data.path, outDir, thresholds, typedColumns: settings.typedColumns, batchSize }));
  let fromMs = 0;
  return {
    id,
    label,
    group,
    data,
    runs,
    tty,
    prepare: () => {
      // Nothing is written for a rule that matches nothing, so clear the last run's files first.
      for (const name of RULE_NAMES) rmSync(join(outDir, `${name}.ndjson`), { force: true });
      fromMs = Date.now();
      return { nodeArgs: [CLI, '--config', configPath] };
    },
    // Checked after the exit, so Date.now() is a valid upper bound for the processor's "now".
    inspect: (run) => checkProcessorRun({ id, run, data, thresholds, outDir, fromMs, toMs: Date.now(), tty: tty === true }),
    finish: (record) => {
      record.targetShare = rate.share;
      record.config = configPath;
      if (batchSize !== undefined) record.batchSize = batchSize;
      if (tty) record.tty = tty;
      if (record.matchRate !== undefined && !rateWithinTolerance(record.matchRate, rate.share, data.rows)) {
        report(id, `match rate ${(record.matchRate * 100).toFixed(4)} % is outside the tolerance around ${rate.label}`, false);
      }
      return record;
    },
  };
}

async function processorCase(options) {
  const spec = processorSpec(options);
  return spec.finish(await runCase(spec));
}

/** Processor cases that differ in one setting, run alternately so they can be compared run by run. */
async function processorVariants(optionsList, runs) {
  const specs = optionsList.map((options) => processorSpec({ ...options, runs }));
  const records = await runAlternating(specs, runs);
  return records.map((record, k) => specs[k].finish(record));
}

async function jsonRulesEngineCase({ data, rate, thresholds }) {
  const limit = Math.min(JRE_SUBSET, data.rows);
  const partial = limit < data.rows;
  const nowMs = Date.now();
  const columns = await referenceColumns(data);
  const expected = countMatches(columns, thresholds, nowMs, { limit }).counts;
  const record = await runCase({
    id: `json-rules-engine-${rate.key}`,
    label: `json-rules-engine, ${rate.label}${partial ? ` (${limit / 1000}k subset, extrapolated)` : ''}`,
    group: 'json-rules-engine',
    data,
    runs: Math.min(settings.runs, 3), // ~3 s a run, and far from the others either way
    prepare: () => ({
      nodeArgs: [join(benchDir, 'cases', 'json-rules-engine.mjs'), JSON.stringify({ file: data.path, thresholds, nowMs, limit })],
    }),
    inspect: (run) => {
      const out = caseOutput(run);
      if (out.rows !== limit) throw new Error(`evaluated ${out.rows} records, expected ${limit}`);
      const wrong = Object.keys(expected).filter((k) => out.counts[k] !== expected[k]);
      if (wrong.length) throw new Error(`counts ${JSON.stringify(out.counts)} differ from the reference ${JSON.stringify(expected)}`);
      // Process overhead once, plus the per-record work scaled to the whole file.
      const extrapolatedSeconds = run.wallSeconds - out.innerSeconds + (out.innerSeconds * data.rows) / limit;
      return { innerSeconds: out.innerSeconds, subsetRows: limit, extrapolatedSeconds, matchRate: out.counts.union / limit };
    },
  });
  record.subsetRows = limit;
  return summarise(record, (run) => run.extrapolatedSeconds);
}

async function duckdbCase({ data, rate, thresholds, mode, threads }) {
  const nowMs = Date.now();
  const columns = await referenceColumns(data);
  const reference = countMatches(columns, thresholds, nowMs);
  const expected = reference.counts.union;
  const id = `duckdb-${mode}-${rate.key}-${threads}t`;
  const out = join(OUT_DIR, `${id}.ndjson`);
  const what = mode === 'copy' ? 'COPY matches + metadata TO ndjson, fsync' : 'count(*)';
  return runCase({
    id,
    label: `duckdb ${what}, ${rate.label}, threads=${threads}`,
    group: 'duckdb',
    data,
    runs: settings.runs,
    prepare: () => ({
      nodeArgs: [join(benchDir, 'cases', 'duckdb.mjs'), JSON.stringify({ file: data.path, thresholds, nowMs, threads, mode, out })],
    }),
    inspect: async (run) => {
      const result = caseOutput(run);
      if (result.matched !== expected) throw new Error(`matched ${result.matched}, reference ${expected}`);
      if (mode === 'copy') {
        // As for the processor: per rule (by the _rule it wrote), the line count and the id checksum.
        const file = await scanNdjson(out, { byRule: true });
        if (file.lines !== expected) throw new Error(`wrote ${file.lines} lines, reference ${expected}`);
        const wrong = RULE_NAMES.filter((name) => (file.perRule[name]?.lines ?? 0) !== reference.counts[name] || (file.perRule[name]?.idSum ?? 0) !== reference.idSums[name]);
        if (wrong.length) throw new Error(`wrong records for ${wrong.join(', ')}: ${JSON.stringify(file.perRule)}, reference counts ${JSON.stringify(reference.counts)}`);
      }
      return { innerSeconds: result.innerSeconds, matched: result.matched, matchRate: result.matched / data.rows };
    },
  });
}

/** `node -e 0` and `--validate` alternate, so drift on the machine hits both alike. */
async function startupCases() {
  const config = join(REPO, 'config.yaml');
  const variants = [
    { id: 'startup-node', label: 'start-up: node -e 0', nodeArgs: ['-e', '0'] },
    { id: 'startup-validate', label: 'start-up: processor --validate config.yaml', nodeArgs: [CLI, '--validate', '--config', config] },
  ];
  // No RSS preload here: loading even one extra module would show in a ~40 ms start.
  const specs = variants.map((v) => ({ ...v, group: 'startup', selfReport: false, quiet: true, prepare: () => ({ nodeArgs: v.nodeArgs }) }));
  return runAlternating(specs, STARTUP_RUNS);
}

// ---------------------------------------------------------------- ratios and targets

/**
 * Throughput ratios are to the baseline on the same file: a 5M-row run divided by the 1M-row
 * baseline would spread node's start-up over five times the rows and flatter the ratio.
 */
function addRatios(cases) {
  const baselineOf = (c) => cases.find((b) => b.group === 'baseline' && b.dataset === c.dataset && !b.failed);
  const node = cases.find((c) => c.id === 'startup-node' && !c.failed);
  for (const c of cases) {
    if (c.failed) continue;
    if (c.group === 'startup') {
      c.ratioKind = 'startup';
      if (node) c.ratio = c.medianSeconds / node.medianSeconds;
    } else {
      c.ratioKind = 'throughput';
      const baseline = baselineOf(c);
      if (baseline && c.rowsPerSecond) {
        c.ratio = c.rowsPerSecond / baseline.rowsPerSecond;
        c.ratioTo = baseline.id;
      }
    }
  }
}

/** Median over paired runs (run i of `a` with run i of `b`, which ran back to back) of b's wall time ÷ a's. */
function pairedTimeRatio(a, b) {
  const n = Math.min(a.runs.length, b.runs.length);
  if (n === 0) return undefined;
  const ratios = Array.from({ length: n }, (_, i) => b.runs[i].wallSeconds / a.runs[i].wallSeconds);
  return { median: median(ratios), min: Math.min(...ratios), max: Math.max(...ratios), pairs: n };
}

/** "+7.0 % (paired median of 5, range -2.1 to +12.0 %; medians 1.18 s vs 1.10 s), peak RSS +12.3 MiB (95.1 vs 82.8), median RSS +10.0 MiB". */
function comparisonText(a, b) {
  const pct = (r) => `${r >= 1 ? '+' : ''}${((r - 1) * 100).toFixed(1)} %`;
  const mib = (x) => `${x >= 0 ? '+' : ''}${x.toFixed(1)} MiB`;
  const t = pairedTimeRatio(a, b);
  if (!t) return 'not run';
  const parts = [`time ${pct(t.median)} (paired median of ${t.pairs} runs, range ${pct(t.min)} to ${pct(t.max)}; medians ${b.medianSeconds.toFixed(3)} s vs ${a.medianSeconds.toFixed(3)} s)`];
  if (a.peakRssMiB !== undefined && b.peakRssMiB !== undefined) {
    parts.push(`peak RSS ${mib(b.peakRssMiB - a.peakRssMiB)} (${b.peakRssMiB.toFixed(1)} vs ${a.peakRssMiB.toFixed(1)} MiB)`);
    parts.push(`median RSS ${mib(b.medianRssMiB - a.medianRssMiB)}`);
  }
  return parts.join(', ');
}

function verdict(ok) {
  return ok === undefined ? 'n/a' : ok ? 'PASS' : 'FAIL';
}

function evaluateTargets(cases) {
  const get = (id) => cases.find((c) => c.id === id && !c.failed);
  const ratioOf = (a, b) => (a && b ? a.rowsPerSecond / b.rowsPerSecond : undefined);
  const x = (r) => (r === undefined ? '?' : `${r.toFixed(2)}×`);
  const fmtRate = (c) => Math.round(c.rowsPerSecond).toLocaleString('en-US');
  const mib = (c) => (c?.peakRssMiB === undefined ? '?' : `${c.peakRssMiB.toFixed(1)} MiB`);
  const targets = [];
  const add = (name, ok, detail) => targets.push({ name, verdict: typeof ok === 'string' ? ok : verdict(ok), detail });
  const baseline = get('baseline');

  for (const rate of RATES) {
    const p = get(`processor-${rate.key}`);
    const r = ratioOf(p, baseline);
    const detail = r === undefined ? 'not run' : `${x(r)} (${fmtRate(p)} vs ${fmtRate(baseline)} rows/s)`;
    add(`processor >= 2× baseline at ${rate.label}`, r === undefined ? undefined : r >= 2, detail);
  }
  const small = RATES.map((rate) => get(`processor-${rate.key}`)).filter(Boolean);
  const smallPeak = small.length ? Math.max(...small.map((c) => c.peakRssMiB ?? Infinity)) : undefined;
  add(`peak RSS < 150 MiB, ${settings.rows.toLocaleString('en-US')} rows`, smallPeak === undefined ? undefined : smallPeak < 150, small.map((c) => `${c.label}: ${mib(c)}`).join('; ') || 'not run');
  const big = get('processor-5x');
  add(`peak RSS < 150 MiB, ${settings.bigRows.toLocaleString('en-US')} rows`, big ? big.peakRssMiB < 150 : undefined, big ? `${mib(big)}` : 'not run');
  const bigBaseline = get('baseline-5x');
  const bigRatio = ratioOf(big, bigBaseline);
  const oldStyle = ratioOf(big, baseline);
  add(
    `processor ÷ baseline, ${settings.bigRows.toLocaleString('en-US')} rows`,
    big ? 'INFO' : 'n/a',
    big ? `${x(bigRatio)} against the baseline on the same file${oldStyle === undefined ? '' : ` (${x(oldStyle)} against the ${settings.rows.toLocaleString('en-US')}-row baseline, which spreads start-up over fewer rows)`}` : 'not run',
  );

  for (const rate of RATES) {
    const r = ratioOf(get(`processor-${rate.key}`), get(`json-rules-engine-${rate.key}`));
    add(`processor >= 10× json-rules-engine at ${rate.label}`, r === undefined ? undefined : r >= 10, r === undefined ? 'not run' : x(r));
  }
  for (const rate of RATES) {
    const p = get(`processor-${rate.key}`);
    const parts = [1, 2].flatMap((t) => ['copy', 'count'].map((m) => {
      const d = get(`duckdb-${m}-${rate.key}-${t}t`);
      return d ? `${m} threads=${t}: ${x(ratioOf(p, d))}` : undefined;
    })).filter(Boolean);
    add(`processor / DuckDB at ${rate.label}`, p && parts.length ? 'INFO' : 'n/a', parts.join('; ') || 'not run');
  }
  for (const rate of RATES) {
    const [reference, ...others] = settings.batchSizes.map((size) => get(`batch-${size}-${rate.key}`));
    for (const [k, other] of others.entries()) {
      const name = `batch_size ${settings.batchSizes[k + 1]} vs ${settings.batchSizes[0]} at ${rate.label}`;
      add(name, reference && other ? 'INFO' : 'n/a', reference && other ? comparisonText(reference, other) : 'not run');
    }
  }
  for (const rate of RATES) {
    const files = get(`progress-files-${rate.key}`);
    const tty = get(`progress-tty-${rate.key}`);
    if (selected('progress')) add(`processor on a terminal vs not at ${rate.label}`, files && tty ? 'INFO' : 'n/a', files && tty ? comparisonText(files, tty) : 'not run');
  }
  const node = get('startup-node');
  const validate = get('startup-validate');
  const s = node && validate ? validate.medianSeconds / node.medianSeconds : undefined;
  add('start-up < 2.5× node -e 0', s === undefined ? undefined : s < 2.5, s === undefined ? 'not run' : `${s.toFixed(2)}× (${(validate.medianSeconds * 1000).toFixed(1)} ms vs ${(node.medianSeconds * 1000).toFixed(1)} ms; lower is better)`);
  return targets;
}

// ---------------------------------------------------------------- main

async function main() {
  if ((selected('processor') || selected('processor-5x') || selected('startup')) && !existsSync(CLI)) {
    throw new Error(`${CLI} not found; build first (npm run build)`);
  }
  // DuckDB and json-rules-engine come from bench/package.json, not the project's devDependencies.
  if (selected('duckdb') || selected('json-rules-engine')) ensureBenchDeps();
  mkdirSync(TMP_DIR, { recursive: true });
  // Other work on the machine skews every figure; the load average at both ends tells the reader.
  const loadAtStart = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  const benchStart = Date.now();
  const datasets = prepareDatasets(benchStart);
  const data = datasets.main;
  const thresholds = Object.fromEntries(RATES.map((rate) => [rate.key, thresholdsFor(data, rate, benchStart)]));
  const cases = [];

  if (selected('baseline')) cases.push(await runCase(baselineSpec({ id: 'baseline', label: 'baseline: csv-parse columns:true (count)', data, runs: settings.runs })));
  if (selected('processor')) {
    for (const rate of RATES) {
      const id = `processor-${rate.key}`;
      cases.push(await processorCase({ id, label: `processor CLI, ${rate.label} match`, group: 'processor', data, rate, thresholds: thresholds[rate.key], runs: settings.runs }));
    }
  }
  if (selected('batch-size')) {
    for (const rate of RATES) {
      const variants = settings.batchSizes.map((size) => ({
        id: `batch-${size}-${rate.key}`,
        label: `processor CLI, ${rate.label} match, batch_size ${size}`,
        group: 'batch-size',
        data,
        rate,
        thresholds: thresholds[rate.key],
        batchSize: size,
      }));
      cases.push(...(await processorVariants(variants, settings.runs)));
    }
  }
  if (selected('json-rules-engine')) {
    for (const rate of RATES) cases.push(await jsonRulesEngineCase({ data, rate, thresholds: thresholds[rate.key] }));
  }
  if (selected('duckdb')) {
    for (const rate of RATES) {
      for (const mode of ['copy', 'count']) {
        for (const threads of [1, 2]) cases.push(await duckdbCase({ data, rate, thresholds: thresholds[rate.key], mode, threads }));
      }
    }
  }
  if (selected('processor-5x')) {
    const big = datasets.big;
    const rate = RATES[1];
    const runs = Math.min(settings.runs, 2);
    const rowsText = `${(big.rows / 1e6).toLocaleString('en-US')}M rows`;
    columnCache.clear(); // the 1M columns are no longer needed; keep the parent small
    // Its own baseline on the same file, so the ratio compares like with like.
    cases.push(await runCase(baselineSpec({ id: 'baseline-5x', label: `baseline: csv-parse columns:true (count), ${rowsText}`, data: big, runs })));
    cases.push(await processorCase({ id: 'processor-5x', label: `processor CLI, ${rate.label} match, ${rowsText}`, group: 'processor-5x', data: big, rate, thresholds: thresholdsFor(big, rate, benchStart), runs }));
  }
  if (selected('progress')) {
    if (!SCRIPT) {
      report('progress', '`script` (util-linux; Debian/Ubuntu package bsdutils) is not installed, so the processor cannot be run on a pseudo-terminal; skipped', false);
    } else {
      for (const rate of RATES) {
        // Both under script (the same few ms of wrapper start-up); only where the output goes differs.
        const variants = ['redirect', true].map((tty) => ({
          id: `progress-${tty === true ? 'tty' : 'files'}-${rate.key}`,
          label: `processor CLI, ${rate.label} match, under script, ${tty === true ? 'output to the terminal' : 'output to files'}`,
          group: 'progress',
          data,
          rate,
          thresholds: thresholds[rate.key],
          tty,
        }));
        cases.push(...(await processorVariants(variants, settings.runs)));
      }
    }
  }
  if (selected('startup')) cases.push(...(await startupCases()));

  addRatios(cases);
  const targets = evaluateTargets(cases);
  const datasetInfo = Object.values(datasets).map(({ path, rows, bytes, seed, anchorIso }) => ({ path, rows, bytes, seed, anchor: anchorIso }));
  const thresholdInfo = RATES.map((rate) => ({ rate: rate.label, ...thresholds[rate.key] }));
  writeResults(join(benchDir, 'results.json'), { settings: { ...settings, thresholds: thresholdInfo }, datasets: datasetInfo, cases, targets, problems });

  const load = os.loadavg().map((x) => x.toFixed(2)).join(' ');
  console.log(`\nthreshold-processor bench: ${data.rows.toLocaleString('en-US')} rows, ${(data.bytes / 1e6).toFixed(1)} MB, node ${process.version}, ${os.cpus().length} cpus, load average at the end ${load} (at the start ${loadAtStart})\n`);
  console.log(resultsTable(cases));
  console.log('\ntargets (informational)\n');
  console.log(targetsText(targets));
  if (problems.length) {
    console.log('\nproblems\n');
    for (const p of problems) console.log(`${p.fatal ? 'FAILURE' : 'WARNING'}  ${p.case}: ${p.message}`);
  }
  console.log(`\nresults: ${join(benchDir, 'results.json')}`);
  return problems.some((p) => p.fatal) ? 1 : 0;
}

main().then(
  (code) => {
    process.exitCode = code;
  },
  (err) => {
    console.error(`bench failed: ${err.stack ?? err}`);
    process.exitCode = 1;
  },
);
