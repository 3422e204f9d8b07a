import { pino, type Logger } from 'pino';

export type { Logger };

/** Keys that may hold secrets, wherever they appear in a logged object. */
const SECRET_PATHS = ['password', 'secret_access_key', 'token', 'authorization', 'headers.Authorization', 'headers.authorization']
  .flatMap((p) => [p, `*.${p}`]);

/**
 * Structured JSON logs on stderr (stdout carries data: console matches, dry-run output), with
 * the datasource, rule and target names as fields. Written synchronously so nothing is lost at exit.
 */
export function createLogger(level: string): Logger {
  return pino(
    {
      level,
      base: undefined,
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
      redact: { paths: SECRET_PATHS, censor: '***' },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}
