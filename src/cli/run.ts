import type { LoadedConfig } from '../config/types.js';
import { resolveLogFormat, type LogFormat } from '../log-format.js';
import { createLogger } from '../log.js';
import { parseDuration } from '../rules/duration.js';
import { DryRunSink } from '../pipeline/dry-run-sink.js';
import { runCycle } from '../pipeline/run-cycle.js';
import { closeRuntime, openRuntime, type Runtime } from '../pipeline/runtime.js';
import { cycleSucceeded, type CycleReport } from '../pipeline/stats.js';
import { logSummary, summaryTable } from '../pipeline/summary.js';
import type { CliOptions } from './args.js';
import { runContinuously, STOP_SIGNALS } from './continuous.js';
import { ProgressLine } from './progress.js';
import { cancelRun, runController } from './shutdown.js';

/** What stderr shows, decided once per run from the terminal, the level and the format asked for. */
export interface OutputChoice {
  readonly logFormat: 'json' | 'pretty';
  /** `table` for a person, `log` as a `run summary` log line, `none` when silent. */
  readonly summary: 'table' | 'log' | 'none';
  /** The in-place progress line: a person at a terminal, reading readable logs. */
  readonly progress: boolean;
}

export function chooseOutput(stderr: { readonly isTTY: boolean; readonly level: string; readonly format: LogFormat }): OutputChoice {
  const logFormat = resolveLogFormat(stderr.format, stderr.isTTY);
  const silent = stderr.level === 'silent';
  return {
    logFormat,
    summary: silent ? 'none' : logFormat === 'pretty' ? 'table' : 'log',
    progress: stderr.isTTY && !silent && logFormat === 'pretty',
  };
}

/** Runs a loaded config once or in a loop, as the flags say; resolves with the exit code. */
export async function run(config: LoadedConfig, options: CliOptions): Promise<number> {
  const level = options.logLevel ?? config.settings.log_level;
  const output = chooseOutput({ isTTY: process.stderr.isTTY === true, level, format: options.logFormat });
  const progress = output.progress ? new ProgressLine(process.stderr) : undefined;
  // A log line written while the progress line is shown would land inside it: the line clears first.
  const log = await createLogger(level, { format: output.logFormat, beforeWrite: progress && (() => progress.clear()) });
  const runtime = await openRuntime(config, log, { dryRun: options.dryRun });
  const onStart = progress && ((report: CycleReport) => progress.start(report));
  const finished = (result: CycleReport, cycle?: string) => {
    progress?.stop();
    report(runtime, result, output);
    if (options.dryRun && !result.cancelled) showDryRun(runtime, cycle);
  };
  try {
    if (options.continuous) {
      const shutdownTimeoutMs = parseDuration(config.settings.shutdown_timeout)!;
      return await runContinuously(runtime, { intervalSeconds: options.interval, shutdownTimeoutMs, onStart, onReport: (r) => finished(r, r.runId) });
    }
    return await runOnce(runtime, onStart, finished);
  } finally {
    progress?.stop();
    await closeRuntime(runtime);
  }
}

/**
 * One cycle. SIGINT / SIGTERM / SIGHUP cancel it: reading stops, targets discard what they
 * half-wrote (no partial file becomes visible), and the exit code is 130.
 */
async function runOnce(runtime: Runtime, onStart: ((r: CycleReport) => void) | undefined, finished: (r: CycleReport) => void): Promise<number> {
  const controller = runController();
  const cancel = (signal: NodeJS.Signals) => {
    runtime.log.warn({ signal }, 'interrupted: stopping; output not yet made visible is discarded');
    cancelRun(controller, runtime.log);
  };
  for (const signal of STOP_SIGNALS) process.once(signal, cancel);
  try {
    const result = await runCycle(runtime, { signal: controller.signal, onStart });
    finished(result);
    if (result.cancelled) return 130;
    return cycleSucceeded(result) ? 0 : 1;
  } finally {
    for (const signal of STOP_SIGNALS) process.off(signal, cancel);
  }
}

function report(runtime: Runtime, result: CycleReport, output: OutputChoice): void {
  if (output.summary === 'none') return;
  if (output.summary === 'log') return logSummary(runtime.log, result, runtime.dryRun);
  const note = runtime.dryRun ? 'dry run: "exported" counts what would have been exported\n' : '';
  process.stderr.write(note + summaryTable(result));
}

/** What the cycle would have exported, on stdout. Each cycle reports its own records: the counts start again. */
function showDryRun(runtime: Runtime, cycle?: string): void {
  let out = `dry run${cycle ? ` (cycle ${cycle})` : ''}: nothing was exported\n`;
  for (const endpoint of runtime.sinks.values()) {
    if (!endpoint.ok || !(endpoint.value instanceof DryRunSink)) continue;
    out += endpoint.value.describe();
    endpoint.value.counts.clear();
    endpoint.value.samples.clear();
  }
  process.stdout.write(out);
}
