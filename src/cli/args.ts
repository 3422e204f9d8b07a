import { parseArgs } from 'node:util';
import { LOG_LEVELS } from '../config/schema.js';
import { parseDuration } from '../rules/duration.js';
import { LOG_FORMATS, type LogFormat } from '../log-format.js';

export interface CliOptions {
  readonly config: string;
  readonly validate: boolean;
  readonly check: boolean;
  readonly dryRun: boolean;
  readonly continuous: boolean;
  readonly interval: number;
  readonly logLevel: string | undefined;
  readonly logFormat: LogFormat;
  readonly help: boolean;
  readonly version: boolean;
  /** --continuous: reload when the config or a rule file changes on disk. */
  readonly watch: boolean;
  /** Overrides settings.shutdown_timeout (milliseconds). */
  readonly shutdownTimeoutMs: number | undefined;
  /** Overrides settings.metrics.port. */
  readonly metricsPort: number | undefined;
  /** Overrides settings.state_dir (relative to the working directory, like --config). */
  readonly stateDir: string | undefined;
  /** A single run that sends the dead-letter spool again and reads nothing. */
  readonly replayDeadLetters: boolean;
}

export class UsageError extends Error {}

/** Node's timers hold at most 2^31-1 ms; a longer wait would fire at once. */
const MAX_INTERVAL_SECONDS = 2_073_600;

export const USAGE = `Usage: threshold-processor [options]
       threshold-processor test [FILE | FOLDER ...] [--config FILE]

Reads the datasources of a config, applies its threshold rules, and exports the matches.
\`test\` runs the rule tests (default: rules/**/*.test.yaml) against the config's rules;
see \`threshold-processor test --help\`.

Options:
  --config FILE      config file (default: ./config.yaml)
  --validate         check the config and its rule files, then exit (0 valid, 2 invalid)
  --check            test the connection of every datasource and export target, print a table,
                     then exit (0 all ok, 1 any failed); nothing is read or exported
  --dry-run          evaluate and show what would be exported; export nothing
  --continuous       run a cycle every --interval seconds until SIGINT/SIGTERM; SIGHUP reloads
                     the config and rule files
  --interval N       seconds between cycle starts in --continuous mode (default: 60)
  --watch            with --continuous: reload when the config or a rule file changes
  --shutdown-timeout DURATION
                     how long the running cycle may go on after SIGTERM before it is
                     cancelled (default: settings.shutdown_timeout, else 60s)
  --metrics-port N   with --continuous: serve /metrics (Prometheus) and /healthz on this port
                     (default: settings.metrics.port; none)
  --state-dir DIR    where watermarks, dedup memory and the dead-letter spool are kept
                     (default: settings.state_dir, else .state/ beside the config)
  --replay-dead-letters
                     send the dead-letter spool (settings.state_dir) again, read nothing, exit
                     (0 spool empty, 1 something is still spooled)
  --log-level LEVEL  ${LOG_LEVELS.join(', ')} (default: settings.log_level, else info)
  --log-format FMT   auto (readable lines on a terminal, else JSON lines), json, pretty
  --help             show this help
  --version          show the version

Exit codes: 0 all went well; 1 a datasource or export target failed; 2 invalid config or
arguments; 130 interrupted (a single run cancelled, or a --continuous cycle cancelled by a
second signal or at the shutdown timeout). A single run counts SIGHUP as SIGTERM.
`;

export function parseCli(argv: readonly string[]): CliOptions {
  let parsed;
  try {
    parsed = parseArgs({
      args: [...argv],
      strict: true,
      allowPositionals: false,
      options: {
        config: { type: 'string', short: 'c', default: 'config.yaml' },
        validate: { type: 'boolean', default: false },
        check: { type: 'boolean', default: false },
        'dry-run': { type: 'boolean', default: false },
        continuous: { type: 'boolean', default: false },
        interval: { type: 'string', default: '60' },
        'log-level': { type: 'string' },
        'log-format': { type: 'string', default: 'auto' },
        watch: { type: 'boolean', default: false },
        'shutdown-timeout': { type: 'string' },
        'metrics-port': { type: 'string' },
        'state-dir': { type: 'string' },
        'replay-dead-letters': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
        version: { type: 'boolean', short: 'v', default: false },
      },
    });
  } catch (err) {
    throw new UsageError((err as Error).message.replace(/\. To specify a positional argument.*$/s, ''));
  }
  const { values } = parsed;
  const interval = Number(values.interval);
  if (!Number.isFinite(interval) || interval <= 0 || interval > MAX_INTERVAL_SECONDS) {
    throw new UsageError(`--interval needs a number of seconds above 0 and at most ${MAX_INTERVAL_SECONDS} (24 days), got "${values.interval}"`);
  }
  const logLevel = values['log-level'];
  if (logLevel !== undefined && !(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new UsageError(`--log-level must be one of ${LOG_LEVELS.join(', ')}, got "${logLevel}"`);
  }
  const logFormat = values['log-format']!;
  if (!(LOG_FORMATS as readonly string[]).includes(logFormat)) {
    throw new UsageError(`--log-format must be one of ${LOG_FORMATS.join(', ')}, got "${logFormat}"`);
  }
  const shutdownText = values['shutdown-timeout'];
  const shutdownTimeoutMs = shutdownText === undefined ? undefined : parseDuration(shutdownText);
  if (shutdownText !== undefined && (shutdownTimeoutMs === undefined || shutdownTimeoutMs > MAX_INTERVAL_SECONDS * 1000)) {
    throw new UsageError(`--shutdown-timeout needs a duration such as 30s or 2m (at most 24 days), got "${shutdownText}"`);
  }
  const portText = values['metrics-port'];
  const metricsPort = portText === undefined ? undefined : Number(portText);
  if (metricsPort !== undefined && (!Number.isInteger(metricsPort) || metricsPort < 0 || metricsPort > 65535 || portText!.trim() === '')) {
    throw new UsageError(`--metrics-port needs a TCP port from 0 to 65535, got "${portText}"`);
  }
  if (values.watch && !values.continuous) throw new UsageError('--watch needs --continuous: a single run has nothing to reload');
  if (metricsPort !== undefined && !values.continuous) throw new UsageError('--metrics-port needs --continuous: a single run ends before anyone could scrape it');
  if (values['replay-dead-letters'] && (values.continuous || values['dry-run'])) {
    throw new UsageError('--replay-dead-letters is a single run of its own: leave out --continuous and --dry-run');
  }
  return {
    watch: values.watch!,
    shutdownTimeoutMs,
    metricsPort,
    stateDir: values['state-dir'],
    replayDeadLetters: values['replay-dead-letters']!,
    config: values.config!,
    validate: values.validate!,
    check: values.check!,
    dryRun: values['dry-run']!,
    continuous: values.continuous!,
    interval,
    logLevel,
    logFormat: logFormat as LogFormat,
    help: values.help!,
    version: values.version!,
  };
}
