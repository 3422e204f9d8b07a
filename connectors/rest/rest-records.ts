/**
 * Turning a REST response into records: its body parsed as JSON, then the array found at
 * `records_path`. Anything else (HTML, a cut-off body, no array where one was promised) is an
 * error that shows the status, the content type and the first bytes of the body.
 */
import { ConnectorError } from '../../src/errors.js';

/** How much of a bad body a message shows. */
const EXCERPT_CHARS = 200;

export interface RawResponse {
  readonly status: number;
  readonly contentType: string | undefined;
  readonly text: string;
}

/** A value by dot path (`data.items`); a key that itself holds the dot wins, as in rules. Own keys only. */
export function valueAtPath(value: unknown, path: string): unknown {
  if (isObject(value) && Object.hasOwn(value, path)) return value[path];
  let at: unknown = value;
  for (const step of path.split('.')) {
    if (!isObject(at) || !Object.hasOwn(at, step)) return undefined;
    at = at[step];
  }
  return at;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return value !== null && typeof value === 'object' && !Array.isArray(value);
}

/** The body as JSON, or INVALID_JSON with status, content type and the first bytes (already redacted by the caller's `redact`). */
export function parseBody(response: RawResponse, redact: (text: string) => string): unknown {
  try {
    // A byte order mark is not JSON, but some servers (often on Windows) put one before it.
    const text = response.text.charCodeAt(0) === 0xfeff ? response.text.slice(1) : response.text;
    return JSON.parse(text);
  } catch (err) {
    // JSON.parse quotes the start of the text: it goes through the redaction like the excerpt.
    const why = response.text.trim() === '' ? 'the body is empty' : redact((err as Error).message);
    throw badResponse(`the response is not JSON (${why})`, 'INVALID_JSON', response, redact);
  }
}

/**
 * The records of a parsed body: the array at `path`; without a path, the body itself when it is
 * an array, or the body as one record when it is an object. Every record must be an object.
 */
export function recordsOf(body: unknown, path: string | undefined, response: RawResponse, redact: (text: string) => string): readonly Record<string, unknown>[] {
  const found = path === undefined ? body : valueAtPath(body, path);
  let records: unknown[];
  if (Array.isArray(found)) records = found;
  else if (path === undefined && isObject(found)) records = [found];
  else {
    const where = path === undefined ? 'the response' : `records_path "${path}"`;
    const what = found === undefined ? 'nothing' : found === null ? 'null' : Array.isArray(found) ? 'a list' : `${typeof found === 'object' ? 'an object' : `a ${typeof found}`}`;
    const hint = path === undefined ? 'set records_path to where the list is' : 'check records_path';
    throw badResponse(`no array of records at ${where} (found ${what}); ${hint}`, 'NO_RECORDS_ARRAY', response, redact);
  }
  for (let i = 0; i < records.length; i++) {
    if (!isObject(records[i])) {
      const value = records[i];
      const kind = value === null ? 'null' : Array.isArray(value) ? 'a list' : `a ${typeof value}`;
      throw badResponse(`record ${i + 1} of the page is ${kind}, not an object`, 'INVALID_RECORD', response, redact);
    }
  }
  return records as Record<string, unknown>[];
}

export function badResponse(why: string, code: string, response: RawResponse, redact: (text: string) => string): ConnectorError {
  const excerpt = redact(response.text.slice(0, 500));
  const shown = excerpt.length > EXCERPT_CHARS ? `${excerpt.slice(0, EXCERPT_CHARS)}...` : excerpt;
  return new ConnectorError(`${why}: HTTP ${response.status}, ${response.contentType ?? 'no content type'}, body starts ${JSON.stringify(shown)}`, {
    code,
    details: { status: response.status, content_type: response.contentType, body: excerpt },
  });
}
