import { pino } from 'pino';
import { csvSource, type CsvSourceConfig } from '../../connectors/csv/csv-source.js';
import type { MatchBatch, ReadContext, Sink, Source } from '../../connectors/types.js';
import type { ConnectorConfig, LoadedConfig } from '../config/types.js';
import { exportRecords } from '../records/export-record.js';
import { OBJECT_LAYOUT, type PlainRecord, type RecordBatch } from '../records/layout.js';
import { runCycle } from '../pipeline/run-cycle.js';
import type { Endpoint, Runtime } from '../pipeline/runtime.js';
import type { RuleStats } from '../pipeline/stats.js';
import type { CaseInput, RuleTestCase } from './test-file.js';

/** What the real pipeline did with one case's records. */
export interface CaseRun {
  /** Each rule's matches as its first export target received them, datasource by datasource in config order. */
  readonly matches: ReadonlyMap<string, PlainRecord[]>;
  readonly stats: ReadonlyMap<string, RuleStats>;
  /** Inputs whose records could not be read (a malformed CSV fixture), with the reader's message. */
  readonly unreadable: readonly { input: CaseInput; message: string }[];
}

// The pipeline logs for operators of a running service; a test run reports through its own output.
const silent = pino({ level: 'silent' });

/**
 * Runs one case through the real cycle: the config's compiled rules read in-memory sources
 * holding the case's records, and every export target is replaced by a sink that keeps what it
 * is sent. Nothing outside the process is read or written.
 */
export async function runCase(config: LoadedConfig, testCase: RuleTestCase): Promise<CaseRun> {
  const inputs = new Map(testCase.inputs.map((input) => [input.datasource, input]));
  const sources = new Map<string, Endpoint<Source>>();
  for (const [name, datasource] of Object.entries(config.datasources)) {
    const input = inputs.get(name);
    const source = input ? await sourceFor(input, datasource) : new RecordsSource([]);
    sources.set(name, { ok: true, value: source, type: datasource.type });
  }
  const sinks = new Map<string, CaptureSink>(Object.keys(config.targets).map((name) => [name, new CaptureSink()]));
  const runtime: Runtime = {
    config,
    log: silent,
    sources,
    sinks: new Map([...sinks].map(([name, sink]) => [name, { ok: true, value: sink, type: config.targets[name]!.type }])),
    dryRun: false,
  };
  const report = await runCycle(runtime, testCase.now === undefined ? {} : { now: testCase.now });
  await Promise.allSettled([...sources.values()].map((s) => (s.ok ? s.value.close?.() : undefined)));
  const unreadable = testCase.inputs.flatMap((input) => {
    const status = report.datasources.get(input.datasource);
    return status?.ok === false ? [{ input, message: status.error ?? 'could not be read' }] : [];
  });
  return { matches: matchesByRule(config, sinks), stats: report.rules, unreadable };
}

async function sourceFor(input: CaseInput, datasource: ConnectorConfig): Promise<Source> {
  const { source } = input;
  if (source.kind === 'records') return new RecordsSource(source.records);
  const csvConfig: CsvSourceConfig = { ...csvReadingSettings(datasource), type: 'csv', path: source.file };
  return csvSource.create(csvConfig, { name: input.datasource, configDir: process.cwd(), log: silent, signal: new AbortController().signal });
}

/** A CSV fixture is read as the datasource reads its files (same delimiter, quote, encoding and column types). */
function csvReadingSettings(datasource: ConnectorConfig): Partial<CsvSourceConfig> {
  if (datasource.type !== 'csv') return {};
  const { delimiter, quote, encoding, columns } = datasource as Partial<CsvSourceConfig>;
  return { delimiter, quote, encoding, columns };
}

/** Each rule's matches, taken from one of its targets only: every target of a rule receives the same records. */
function matchesByRule(config: LoadedConfig, sinks: ReadonlyMap<string, CaptureSink>): Map<string, PlainRecord[]> {
  const order = Object.keys(config.datasources);
  const matches = new Map<string, PlainRecord[]>();
  for (const rule of config.rules) {
    const received = sinks.get(rule.targets[0]!)?.received.filter((r) => r.rule === rule.name) ?? [];
    // Datasources are read concurrently; a stable sort gives one order the test can state.
    received.sort((a, b) => order.indexOf(a.datasource) - order.indexOf(b.datasource));
    matches.set(rule.name, received.flatMap((r) => r.records));
  }
  return matches;
}

/** Yields records written in a test, in batches of the configured size, as a database or an API source would. */
export class RecordsSource implements Source {
  constructor(private readonly records: readonly PlainRecord[]) {}

  async *read(ctx: ReadContext): AsyncIterable<RecordBatch> {
    for (let start = 0; start < this.records.length; start += ctx.batchSize) {
      yield { layout: OBJECT_LAYOUT, rows: this.records.slice(start, start + ctx.batchSize) };
    }
  }
}

/** Keeps the records a target would have exported, with their metadata, instead of sending them. */
export class CaptureSink implements Sink {
  readonly delivery = 'per-write' as const;
  readonly received: { rule: string; datasource: string; records: PlainRecord[] }[] = [];

  async write(batch: MatchBatch): Promise<void> {
    this.received.push({ rule: batch.rule, datasource: batch.datasource, records: exportRecords(batch, true) });
  }

  async flush(): Promise<void> {}
}
