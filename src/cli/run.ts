import path from 'node:path';
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
import { describeError, serializeError } from '../errors.js';
import type { Logger } from '../log.js';
import { serveMetrics, ServiceMetrics } from '../service/metrics.js';
import { Reloader } from '../service/reloader.js';
import { StateKeeper, stateDirOf } from '../state/state-keeper.js';
import { StateInUseError } from '../state/state-store.js';
import { DamagedStateError } from '../state/damaged-state-error.js';
import { stateBackendOf } from '../state/state-backend.js';
import { runContinuously, SINGLE_RUN_STOP_SIGNALS } from './continuous.js';
import { catchHangupsAtStart, releaseHangupsAtStart } from './early-hangup.js';
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
  if (options.continuous) catchHangupsAtStart();
  const state = await openState(config, options, log);
  if (state === 'failed') {
    releaseHangupsAtStart();
    return 1;
  }
  try {
    return await runWithState(config, options, log, output, progress, state);
  } finally {
    await state?.close();
  }
}

async function runWithState(
  config: LoadedConfig,
  options: CliOptions,
  log: Logger,
  output: OutputChoice,
  progress: ProgressLine | undefined,
  state: StateKeeper | undefined,
): Promise<number> {
  const spooledTargets = () => [...(state?.state.spool.keys() ?? [])];
  const runtime = await openRuntime(config, log, { dryRun: options.dryRun, spooledTargets: spooledTargets() });
  const onStart = progress && ((report: CycleReport) => progress.start(report));
  const finished = (result: CycleReport, current: Runtime, cycle?: string) => {
    progress?.stop();
    report(current, result, output);
    if (options.dryRun && !result.cancelled) showDryRun(current, cycle);
  };
  if (options.continuous) {
    const reloader = new Reloader(runtime, log, spooledTargets);
    try {
      return await runService(reloader, config, options, state, onStart, finished);
    } finally {
      progress?.stop();
      await reloader.close();
    }
  }
  try {
    return await runOnce(runtime, state, options.replayDeadLetters, onStart, (r) => finished(r, runtime));
  } finally {
    progress?.stop();
    await closeRuntime(runtime);
  }
}

async function runService(
  reloader: Reloader,
  config: LoadedConfig,
  options: CliOptions,
  state: StateKeeper | undefined,
  onStart: ((r: CycleReport) => void) | undefined,
  finished: (r: CycleReport, runtime: Runtime, cycle?: string) => void,
): Promise<number> {
  const log = reloader.runtime.log;
  const shutdownTimeoutMs = options.shutdownTimeoutMs ?? parseDuration(config.settings.shutdown_timeout)!;
  const metrics = new ServiceMetrics(options.interval * 1000);
  const port = options.metricsPort ?? config.settings.metrics?.port;
  let server;
  if (port !== undefined) {
    try {
      server = await serveMetrics(metrics, port, config.settings.metrics?.host ?? '127.0.0.1', log);
    } catch (err) {
      log.error({ err: serializeError(err), port }, 'cannot serve metrics on this port; choose another with --metrics-port or settings.metrics.port');
      return 1;
    }
  }
  try {
    const hangupAtStart = releaseHangupsAtStart();
    return await runContinuously(reloader, {
      reloadAtStart: hangupAtStart,
      intervalSeconds: options.interval,
      shutdownTimeoutMs,
      watch: options.watch,
      ...(state ? { state } : {}),
      onStart,
      onReport: (r, runtime) => {
        metrics.record(r, cycleSucceeded(r));
        finished(r, runtime, r.runId);
      },
    });
  } finally {
    server?.close();
  }
}

/**
 * The state: a folder, or PostgreSQL or Redis (settings.state). A dry run only reads it. A single
 * run that cannot use it (read-only, damaged, a server down) goes on without it, and says so; the
 * service refuses to run without it, since it would then alert again on every cycle and could not spool.
 */
async function openState(config: LoadedConfig, options: CliOptions, log: Logger): Promise<StateKeeper | undefined | 'failed'> {
  // A --state-dir given on the command line is relative to where the command runs, as --config is.
  const override = options.stateDir !== undefined ? path.resolve(options.stateDir) : undefined;
  let where = override ?? stateDirOf(config);
  try {
    const backend = await stateBackendOf(config, log, override);
    where = backend.label;
    const keeper = await StateKeeper.open(backend, { readOnly: options.dryRun });
    log.debug({ state: where }, 'state loaded');
    return keeper;
  } catch (err) {
    if (options.continuous || options.replayDeadLetters || err instanceof StateInUseError) {
      const message =
        err instanceof DamagedStateError
          ? 'cannot use the state: a stored document is damaged; restore or remove it as the error says'
          : config.settings.state && !override
          ? 'cannot use the state; check settings.state: the server must be reachable, and its table or key_prefix used by no other process'
          : 'cannot use the state folder; set settings.state_dir to a folder this user can write, used by no other process';
      log.error({ state: where, err: serializeError(err) }, message);
      return 'failed';
    }
    log.warn({ state: where, reason: describeError(err) }, 'running without state: no dedup, no watermarks, no dead-letter spool this run');
    return undefined;
  }
}

/**
 * One cycle. SIGINT / SIGTERM / SIGHUP cancel it: reading stops, targets discard what they
 * half-wrote (no partial file becomes visible), and the exit code is 130.
 */
async function runOnce(
  runtime: Runtime,
  state: StateKeeper | undefined,
  replayOnly: boolean,
  onStart: ((r: CycleReport) => void) | undefined,
  finished: (r: CycleReport) => void,
): Promise<number> {
  const controller = runController();
  const cancel = (signal: NodeJS.Signals) => {
    runtime.log.warn({ signal }, 'interrupted: stopping; output not yet made visible is discarded');
    cancelRun(controller, runtime.log);
  };
  for (const signal of SINGLE_RUN_STOP_SIGNALS) process.once(signal, cancel);
  try {
    const result = await runCycle(runtime, { signal: controller.signal, onStart, replayOnly, ...(state ? { state } : {}) });
    finished(result);
    if (result.cancelled) return 130;
    if (replayOnly) return [...(result.spool?.values() ?? [])].some((n) => n > 0) || result.stateError ? 1 : 0;
    return cycleSucceeded(result) ? 0 : 1;
  } finally {
    for (const signal of SINGLE_RUN_STOP_SIGNALS) process.off(signal, cancel);
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
