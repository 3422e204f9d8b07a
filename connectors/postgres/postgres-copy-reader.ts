import { StringDecoder } from 'node:string_decoder';
import type { Readable } from 'node:stream';
import type { TypeParsers } from './postgres-types.js';

/**
 * Reads the text of `COPY (query) TO STDOUT` (text format) as rows of typed values: lines end
 * with \n, fields are separated by tabs, `\N` is null, and a backslash escapes what follows.
 * Each field goes through the same type parser the cursor path uses, so both paths give the same
 * values; only the transport differs.
 */
export class CopyTextRows {
  readonly #decoder = new StringDecoder('utf8');
  #rest = '';

  constructor(private readonly parsers: readonly ((text: string) => unknown)[]) {}

  /** The complete rows in a chunk; a line cut at the chunk's end waits for the next one. */
  push(chunk: Buffer, out: unknown[][]): void {
    const text = this.#rest + this.#decoder.write(chunk);
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      out.push(this.#row(text, start, end));
      start = end + 1;
    }
    this.#rest = text.slice(start);
  }

  /** Whatever is left at the end of the stream must be nothing: COPY ends every row with \n. */
  end(): void {
    const text = this.#rest + this.#decoder.end();
    if (text !== '') throw new Error('the COPY output ended in the middle of a row');
  }

  #row(text: string, start: number, end: number): unknown[] {
    const count = this.parsers.length;
    const row = new Array<unknown>(count);
    let fieldStart = start;
    // A tab inside a value is written as \t, so every raw tab separates fields.
    for (let column = 0; column < count; column++) {
      let tab = column === count - 1 ? end : text.indexOf('\t', fieldStart);
      if (tab === -1 || tab > end) tab = end;
      row[column] = this.#value(column, text, fieldStart, tab);
      fieldStart = tab + 1;
    }
    return row;
  }

  #value(column: number, text: string, start: number, end: number): unknown {
    if (end - start === 2 && text.charCodeAt(start) === 92 && text.charCodeAt(start + 1) === 78) return null;
    const raw = text.slice(start, end);
    const parse = this.parsers[column]!;
    return parse(raw.includes('\\') ? unescapeCopyText(raw) : raw);
  }
}

const SIMPLE_ESCAPES: Record<string, string> = { b: '\b', f: '\f', n: '\n', r: '\r', t: '\t', v: '\v' };

/** COPY's backslash escapes: \b \f \n \r \t \v, \NNN (octal), \xNN (hex), and \c for any other c. */
export function unescapeCopyText(s: string): string {
  let out = '';
  let bytes: number[] | undefined;
  const flushBytes = () => {
    if (bytes) out += Buffer.from(bytes).toString('utf8');
    bytes = undefined;
  };
  for (let i = 0; i < s.length; i++) {
    const c = s[i]!;
    if (c !== '\\' || i === s.length - 1) {
      flushBytes();
      out += c;
      continue;
    }
    const next = s[++i]!;
    const octal = /^[0-7]{1,3}/.exec(s.slice(i, i + 3));
    const hex = next === 'x' ? /^[0-9a-fA-F]{1,2}/.exec(s.slice(i + 1, i + 3)) : null;
    if (octal) {
      (bytes ??= []).push(parseInt(octal[0], 8) & 0xff);
      i += octal[0].length - 1;
    } else if (hex) {
      (bytes ??= []).push(parseInt(hex[0], 16));
      i += hex[0].length;
    } else {
      flushBytes();
      out += SIMPLE_ESCAPES[next] ?? next;
    }
  }
  flushBytes();
  return out;
}

/** The query as COPY's parenthesised statement takes it: without a trailing semicolon. */
export function copyableQuery(query: string): string {
  return query.replace(/[\s;]+$/, '');
}

/** Batches of rows from a COPY stream, at most `size` rows each; the stream is read only as fast as batches are taken. */
export async function* copyBatches(stream: Readable, parsers: TypeParsers, oids: readonly number[], size: number): AsyncGenerator<unknown[][]> {
  const rows = new CopyTextRows(oids.map((oid) => parsers.getTypeParser(oid, 'text') as (text: string) => unknown));
  let pending: unknown[][] = [];
  for await (const chunk of stream) {
    rows.push(chunk as Buffer, pending);
    while (pending.length >= size) {
      yield pending.slice(0, size);
      pending = pending.slice(size);
    }
  }
  rows.end();
  if (pending.length > 0) yield pending;
}
