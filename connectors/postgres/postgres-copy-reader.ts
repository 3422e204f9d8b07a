import type { Readable } from 'node:stream';
import type { TypeParsers } from './postgres-types.js';

const NEWLINE = 0x0a;

/**
 * Reads the text of `COPY (query) TO STDOUT` (text format) as rows of typed values: lines end
 * with \n, fields are separated by tabs, `\N` is null, and a backslash escapes what follows.
 * Each field goes through the same type parser the cursor path uses, so both paths give the same
 * values; only the transport differs.
 *
 * Lines are found in the bytes: a newline byte never occurs inside a UTF-8 character, so a line
 * cut between chunks is kept as bytes and decoded once it is whole. Each chunk is searched only
 * once, so a row of any length costs time in proportion to its length.
 */
export class CopyTextRows {
  /** The start of a line that has not ended yet, as the chunks it came in. */
  #pending: Buffer[] = [];

  constructor(private readonly parsers: readonly ((text: string) => unknown)[]) {}

  /** The complete rows in a chunk; a line cut at the chunk's end waits for the next one. */
  push(chunk: Buffer, out: unknown[][]): void {
    const firstEnd = chunk.indexOf(NEWLINE);
    if (firstEnd === -1) {
      if (chunk.length > 0) this.#pending.push(chunk);
      return;
    }
    let start = 0;
    if (this.#pending.length > 0) {
      this.#pushLines(Buffer.concat([...this.#pending, chunk.subarray(0, firstEnd + 1)]).toString('utf8'), out);
      this.#pending = [];
      start = firstEnd + 1;
    }
    const lastEnd = chunk.lastIndexOf(NEWLINE);
    if (lastEnd >= start) this.#pushLines(chunk.toString('utf8', start, lastEnd + 1), out);
    if (lastEnd + 1 < chunk.length) this.#pending.push(chunk.subarray(lastEnd + 1));
  }

  /** Whatever is left at the end of the stream must be nothing: COPY ends every row with \n. */
  end(): void {
    if (this.#pending.length > 0) throw new Error('the COPY output ended in the middle of a row');
  }

  /** The rows of text made of whole lines, each ended by \n. */
  #pushLines(text: string, out: unknown[][]): void {
    let start = 0;
    for (let end = text.indexOf('\n'); end !== -1; end = text.indexOf('\n', start)) {
      out.push(this.#row(text, start, end));
      start = end + 1;
    }
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

/**
 * COPY's backslash escapes: \b \f \n \r \t \v, \NNN (octal), \xNN (hex), and \c for any other c.
 * Consecutive byte escapes are one UTF-8 sequence; a backslash that ends the text stays as it is.
 * The text between backslashes is copied as whole slices, so a long value with many escapes costs
 * time and memory in proportion to its length.
 */
export function unescapeCopyText(s: string): string {
  const out = new TextPieces();
  let from = 0;
  for (let at = s.indexOf('\\'); at !== -1 && at < s.length - 1; at = s.indexOf('\\', from)) {
    out.add(s.slice(from, at));
    const run = byteEscapesAt(s, at);
    if (run) {
      out.add(Buffer.from(run.bytes).toString('utf8'));
      from = run.end;
    } else {
      const escaped = s[at + 1]!;
      out.add(SIMPLE_ESCAPES[escaped] ?? escaped);
      from = at + 2;
    }
  }
  out.add(s.slice(from));
  return out.text();
}

const OCTAL = /[0-7]{1,3}/y;
const HEX = /[0-9a-fA-F]{1,2}/y;

/** The bytes of the \NNN and \xNN escapes in a row from `at`, which spell one UTF-8 sequence together, and where they end. */
function byteEscapesAt(s: string, at: number): { bytes: number[]; end: number } | undefined {
  const bytes: number[] = [];
  let end = at;
  for (let one = byteEscapeAt(s, end); one; one = byteEscapeAt(s, end)) {
    bytes.push(one.byte);
    end = one.end;
  }
  return bytes.length > 0 ? { bytes, end } : undefined;
}

function byteEscapeAt(s: string, at: number): { byte: number; end: number } | undefined {
  if (s.charCodeAt(at) !== 92) return undefined;
  OCTAL.lastIndex = at + 1;
  const octal = OCTAL.exec(s)?.[0];
  if (octal !== undefined) return { byte: parseInt(octal, 8) & 0xff, end: at + 1 + octal.length };
  if (s[at + 1] !== 'x') return undefined;
  HEX.lastIndex = at + 2;
  const hex = HEX.exec(s)?.[0];
  return hex !== undefined ? { byte: parseInt(hex, 16), end: at + 2 + hex.length } : undefined;
}

/**
 * Text made of many pieces, joined a block at a time: a string grown a piece at a time would be
 * a chain of millions of small strings, and one array of every piece nearly as large.
 */
class TextPieces {
  #done = '';
  #block: string[] = [];

  add(piece: string): void {
    if (piece === '') return;
    this.#block.push(piece);
    if (this.#block.length === 8192) {
      this.#done += this.#block.join('');
      this.#block = [];
    }
  }

  text(): string {
    return this.#done + this.#block.join('');
  }
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
