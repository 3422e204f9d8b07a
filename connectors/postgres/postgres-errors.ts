import { CancelledError, ConnectorError, codeOf, isRetryable, type ErrorDetails } from '../../src/errors.js';

/**
 * SQLSTATEs after which the same statement may succeed: the connection broke or the server is
 * restarting (class 08 but 08P01, below; 57P01-57P03), too many sessions (53300), or the
 * transaction lost a race (serialization failure, deadlock, lock timeout).
 */
const RETRYABLE_SQLSTATES = new Set(['40001', '40P01', '55P03', '53300', '57P01', '57P02', '57P03']);

/**
 * Class 08 is about the connection, but 08P01 (protocol violation) is the server refusing what
 * was sent, such as a value bound for a parameter the query does not have: sending it again
 * gets the same answer.
 */
function isConnectionSqlstate(code: string): boolean {
  return code.startsWith('08') && code !== '08P01';
}

/** Texts pg uses for a connection that went away, which carry no code of their own. */
const CONNECTION_LOST = /Connection terminated|connection timeout|timeout expired|timeout exceeded when trying to connect|Client has encountered a connection error|read ECONNRESET/i;

function isSqlstate(code: string | undefined): code is string {
  return code !== undefined && /^[0-9A-Z]{5}$/.test(code);
}

export function isConnectionFailure(err: unknown): boolean {
  const code = codeOf(err);
  if (isSqlstate(code)) return isConnectionSqlstate(code) || code === '57P01' || code === '57P02' || code === '57P03' || code === '53300';
  return isRetryable(err) || (err instanceof Error && CONNECTION_LOST.test(err.message));
}

/** What the server said, as fields, from pg's DatabaseError. */
function serverDetails(err: Record<string, unknown>): ErrorDetails {
  const details: Record<string, string | number> = {};
  for (const key of ['severity', 'detail', 'hint', 'schema', 'table', 'column', 'constraint', 'dataType', 'where', 'routine'] as const) {
    const value = err[key];
    if (typeof value === 'string' && value !== '') details[key === 'dataType' ? 'data_type' : key] = value;
  }
  if (typeof err.position === 'string' && err.position !== '') details.position = Number(err.position);
  return details;
}

/** `line 2, column 7 (near "FORM tbl")` for a 1-based character position in the query. */
export function positionIn(query: string, position: number): string {
  const chars = [...query];
  const before = chars.slice(0, position - 1).join('');
  const line = before.split('\n').length;
  const column = position - 1 - before.lastIndexOf('\n');
  const near = chars.slice(position - 1, position + 19).join('').split('\n')[0]!.trim();
  return `line ${line}, column ${column}${near ? ` (near "${near}")` : ''}`;
}

export interface TranslateOptions {
  /** The query text, so a position can be shown as line and column. */
  readonly query?: string;
  /** Values that must not appear in the message (the password, the URL). */
  readonly secrets?: readonly string[];
}

/**
 * Any failure of a PostgreSQL call as a ConnectorError: the server's message and SQLSTATE,
 * its detail, hint, table, column, constraint and position as details, and whether trying
 * again can help. `what` says what we were doing, naming the datasource or target.
 */
export function translatePgError(what: string, err: unknown, options: TranslateOptions = {}): ConnectorError {
  if (err instanceof CancelledError) return err;
  const raw = (err ?? {}) as Record<string, unknown>;
  const code = codeOf(err);
  const serverMessage = scrub(err instanceof Error ? err.message : String(err), options.secrets);
  if (isSqlstate(code)) {
    const details = serverDetails(raw);
    const parts = [`the server said: ${serverMessage} (SQLSTATE ${code})`];
    if (typeof details.position === 'number' && options.query) parts.push(`at ${positionIn(options.query, details.position)}`);
    if (typeof details.detail === 'string') parts.push(`detail: ${details.detail}`);
    if (typeof details.hint === 'string') parts.push(`hint: ${details.hint}`);
    const advice = adviceFor(code);
    return new ConnectorError(scrub(`${what}: ${parts.join('; ')}${advice ? `; ${advice}` : ''}`, options.secrets), {
      code,
      retryable: RETRYABLE_SQLSTATES.has(code) || isConnectionSqlstate(code),
      details: scrubDetails(details, options.secrets),
      cause: cleanCause(err, options.secrets),
    });
  }
  const lost = isConnectionFailure(err);
  return new ConnectorError(scrub(`${what}: ${serverMessage}`, options.secrets), {
    code: code ?? (lost ? (/timeout/i.test(serverMessage) ? 'TIMEOUT' : 'CONNECTION_LOST') : 'ERROR'),
    retryable: err instanceof ConnectorError ? err.retryable : lost,
    cause: cleanCause(err, options.secrets),
  });
}

/** What to do about the failures a user can fix. */
function adviceFor(code: string): string | undefined {
  switch (code) {
    case '28P01':
    case '28000':
      return 'check username and password (or the server\'s pg_hba.conf)';
    case '3D000':
      return 'check the database name';
    case '42601':
      return 'fix the SQL';
    case '42P01':
      return 'check the table name, or set create_table: true on an export target';
    case '42501':
      return 'grant the role the privilege it needs';
    default:
      return undefined;
  }
}

/** The error kept as cause, with any secret removed from its message (it is logged in the cause chain). */
function cleanCause(err: unknown, secrets: readonly string[] | undefined): unknown {
  if (!(err instanceof Error) || !secrets?.length) return err;
  const message = scrub(err.message, secrets);
  if (message === err.message) return err;
  const clean = new Error(message);
  Object.assign(clean, { code: codeOf(err) });
  return clean;
}

function scrubDetails(details: ErrorDetails, secrets: readonly string[] | undefined): ErrorDetails {
  if (!secrets?.length) return details;
  const out: Record<string, string | number | boolean | undefined> = {};
  for (const [k, v] of Object.entries(details)) out[k] = typeof v === 'string' ? scrub(v, secrets) : v;
  return out;
}

export function scrub(text: string, secrets: readonly string[] | undefined): string {
  let out = text;
  for (const secret of secrets ?? []) if (secret) out = out.split(secret).join('***');
  return out;
}
