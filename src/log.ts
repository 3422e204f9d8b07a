import { pino, type Logger } from 'pino';
import { serializeError } from './errors.js';
import { resolveLogFormat, type LogFormat } from './log-format.js';

export type { Logger };

/** Keys that may hold secrets, wherever they appear in a logged object. */
const SECRET_PATHS = ['password', 'secret_access_key', 'token', 'authorization', 'headers.Authorization', 'headers.authorization']
  .flatMap((p) => [p, `*.${p}`]);

/** sd-daemon(3) priorities: journald reads a leading `<N>` as the line's priority, so `journalctl -p err` finds errors. */
const SYSLOG_PRIORITY: Readonly<Record<string, number>> = { fatal: 2, error: 3, warn: 4, info: 6, debug: 7, trace: 7 };

/** Where log lines go: stderr by default; a test hands in something that keeps them. */
export interface LogDestination {
  write(line: string): unknown;
  readonly isTTY?: boolean;
}

export interface LogOptions {
  readonly format?: LogFormat;
  readonly destination?: LogDestination;
  readonly env?: NodeJS.ProcessEnv;
  /** Called before each line is written (the progress line clears itself so a log line never lands inside it). */
  readonly beforeWrite?: () => void;
}

/**
 * Logs on stderr (stdout carries data: console matches, dry-run output), with the datasource,
 * rule and target names as fields: JSON lines, or readable lines on a terminal. Written
 * synchronously so nothing is lost at exit. Under journald each line starts with its priority.
 */
export async function createLogger(level: string, options: LogOptions = {}): Promise<Logger> {
  const env = options.env ?? process.env;
  const out: LogDestination = options.destination ?? stderrDestination();
  const format = resolveLogFormat(options.format ?? 'auto', out.isTTY === true);
  const journald = Boolean(env.JOURNAL_STREAM);
  let render: ((line: string) => string) | undefined;
  if (format === 'pretty') {
    // Loaded only when used: JSON runs (services, pipes) never pay for it.
    const { prettyLine } = await import('./log-pretty.js');
    const color = out.isTTY === true && !env.NO_COLOR;
    render = (line) => prettyLine(JSON.parse(line) as Record<string, unknown>, { color });
  }
  const before = options.beforeWrite;
  const stream = {
    write(line: string): void {
      before?.();
      const text = render ? render(line) : line;
      out.write(journald ? `<${SYSLOG_PRIORITY[levelOf(line)] ?? 6}>${text}` : text);
    },
  };
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      // An Error logged as `err` shows its message chain, code, causes and the peer's details, not `{}`.
      serializers: { err: (err: unknown) => (err instanceof Error ? serializeError(err) : err) },
      redact: { paths: SECRET_PATHS, censor: '***' },
    },
    stream,
  );
}

function stderrDestination(): LogDestination {
  const boom = pino.destination({ fd: 2, sync: true });
  // A terminal that closed (SIGHUP) fails every write: the run must still end as the signal asks.
  boom.on('error', () => {});
  return {
    write: (line) => {
      try {
        boom.write(line);
      } catch {
        // nowhere left to write
      }
    },
    isTTY: process.stderr.isTTY === true,
  };
}

/** Every line starts `{"level":"<label>"` (the level formatter puts it first). */
function levelOf(line: string): string {
  const start = 10;
  return line.startsWith('{"level":"') ? line.slice(start, line.indexOf('"', start)) : 'info';
}
