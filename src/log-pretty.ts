/**
 * Readable log lines for a terminal: `12:00:05.123 ERROR message  key=value ...`. Nested
 * fields are flattened to dotted keys (`err.code=ENOENT`). Hand-written and synchronous: a
 * log line is formatted where it is written, with no worker thread and no dependency to load.
 */

const LEVEL_COLORS: Readonly<Record<string, string>> = { fatal: '35', error: '31', warn: '33', info: '32', debug: '90', trace: '90' };
const OMITTED = new Set(['level', 'time', 'msg']);

export function prettyLine(entry: Record<string, unknown>, options: { color: boolean }): string {
  const paint = (code: string, text: string) => (options.color ? `\x1b[${code}m${text}\x1b[0m` : text);
  const level = String(entry.level ?? 'info');
  const label = paint(LEVEL_COLORS[level] ?? '0', level.toUpperCase().padEnd(5));
  const time = paint('90', clock(entry.time));
  const fields: string[] = [];
  for (const [key, value] of Object.entries(entry)) if (!OMITTED.has(key) && key !== 'run_id') flatten(key, value, fields);
  // The run id is the same on every line of a cycle: last, so the fields that differ come first.
  if (entry.run_id !== undefined) flatten('run_id', entry.run_id, fields);
  const rest = fields.map((f) => {
    const eq = f.indexOf('=');
    return paint('2', f.slice(0, eq)) + f.slice(eq);
  });
  return `${time} ${label} ${String(entry.msg ?? '')}${rest.length ? '  ' + rest.join(' ') : ''}\n`;
}

function clock(time: unknown): string {
  const date = new Date(typeof time === 'string' || typeof time === 'number' ? time : Date.now());
  const pad = (n: number, w = 2) => String(n).padStart(w, '0');
  return `${pad(date.getHours())}:${pad(date.getMinutes())}:${pad(date.getSeconds())}.${pad(date.getMilliseconds(), 3)}`;
}

function flatten(key: string, value: unknown, into: string[]): void {
  if (value !== null && typeof value === 'object') {
    const entries = Object.entries(value);
    if (entries.length === 0) into.push(`${key}=${Array.isArray(value) ? '[]' : '{}'}`);
    for (const [k, v] of entries) flatten(Array.isArray(value) ? `${key}[${k}]` : `${key}.${k}`, v, into);
    return;
  }
  into.push(`${key}=${scalar(value)}`);
}

/** Bare when it reads unambiguously, JSON-quoted when it holds spaces, quotes, `=` or control characters. */
function scalar(value: unknown): string {
  if (typeof value !== 'string') return String(value);
  return value === '' || /[\s"=\\\x00-\x1f\x7f]/.test(value) ? JSON.stringify(value) : value;
}
