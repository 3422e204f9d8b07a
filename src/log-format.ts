// Apart from log.ts so that parsing the flags does not load pino: --validate and --help stay fast.

export const LOG_FORMATS = ['auto', 'json', 'pretty'] as const;
export type LogFormat = (typeof LOG_FORMATS)[number];

/** `pretty` for a person at a terminal, `json` for everything else (journald, a pipe, a file). */
export function resolveLogFormat(format: LogFormat, isTTY: boolean): 'json' | 'pretty' {
  return format === 'auto' ? (isTTY ? 'pretty' : 'json') : format;
}
