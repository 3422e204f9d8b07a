/**
 * A streaming RFC 4180 tokenizer, written for the hot path: a row without a quote character is
 * cut with indexOf and split(), both native; only rows that hold the quote character go through
 * the character-by-character path. Text may arrive split anywhere (inside a quoted field,
 * between \r and \n): an unfinished row is kept and parsed again with the next piece.
 *
 * Semantics match csv-parse with relax_quotes, relax_column_count and skip_empty_lines: rows end
 * at \n, \r\n or a lone \r; empty lines are skipped; a quote inside an unquoted field is literal;
 * a field with text after its closing quote is read as written (`"ab"c` reads `"ab"c`); rows keep their own length.
 */

export interface CsvDialect {
  readonly delimiter: string;
  readonly quote: string;
}

export interface CsvTokenizer {
  /** Feeds the next piece of decoded text; returns the rows it completed. */
  push(text: string): string[][];
  /** End of input: returns the last row if the text did not end with a line break. */
  end(): string[][];
}

export class CsvSyntaxError extends Error {
  constructor(
    message: string,
    readonly line: number,
  ) {
    super(message);
    this.name = 'CsvSyntaxError';
  }
}

const LF = 10;
const CR = 13;

/** What the character-level parser found: a row and where the next one starts, or "need more text". */
type SlowResult = { row: string[]; next: number; lines: number; blank: boolean } | undefined;

export function createCsvTokenizer(dialect: CsvDialect): CsvTokenizer {
  const { delimiter, quote } = dialect;
  if (delimiter.length !== 1 || quote.length !== 1) throw new Error('delimiter and quote must be single characters');
  const D = delimiter.charCodeAt(0);
  const Q = quote.charCodeAt(0);
  const doubledQuote = quote + quote;
  let carry = '';
  /** Line breaks consumed so far, for the line number of a syntax error. */
  let line = 0;

  /** Parses one row that contains the quote character (or a lone CR), starting at `p`. */
  function parseSlow(s: string, p: number, final: boolean): SlowResult {
    const n = s.length;
    const row: string[] = [];
    let lines = 0;
    let quotedAny = false;
    for (;;) {
      let value: string;
      if (p < n && s.charCodeAt(p) === Q) {
        quotedAny = true;
        let i = p + 1;
        let j: number;
        for (;;) {
          j = s.indexOf(quote, i);
          if (j < 0) {
            if (final) throw new CsvSyntaxError(unterminated(line + lines + 1), line + lines + 1);
            return undefined;
          }
          if (j + 1 < n && s.charCodeAt(j + 1) === Q) {
            i = j + 2;
            continue;
          }
          if (j + 1 >= n && !final) return undefined; // the next piece may start with the second quote
          break;
        }
        const inner = s.slice(p + 1, j);
        lines += countLineBreaks(inner);
        const k = scanUnquoted(s, j + 1, D);
        if (k >= n && !final) return undefined;
        // Text after the closing quote: the quotes were not field quotes after all; keep it all as written.
        value = k > j + 1 ? s.slice(p, k) : inner.includes(doubledQuote) ? inner.split(doubledQuote).join(quote) : inner;
        p = k;
      } else {
        const k = scanUnquoted(s, p, D);
        if (k >= n && !final) return undefined;
        value = s.slice(p, k);
        p = k;
      }
      row.push(value);
      if (p >= n) return { row, next: p, lines, blank: isBlank(row, quotedAny) };
      const c = s.charCodeAt(p);
      if (c === D) {
        p++;
        continue;
      }
      if (c === CR) {
        if (p + 1 >= n && !final) return undefined; // a \n may follow in the next piece
        p += p + 1 < n && s.charCodeAt(p + 1) === LF ? 2 : 1;
      } else {
        p++; // LF
      }
      return { row, next: p, lines: lines + 1, blank: isBlank(row, quotedAny) };
    }
  }

  function tokenize(text: string, final: boolean): string[][] {
    const s = carry.length > 0 ? carry + text : text;
    const n = s.length;
    const rows: string[][] = [];
    let p = 0;
    // Positions of the next quote and the next CR at or after p; -1 once there is none.
    let nextQuote = s.indexOf(quote);
    let nextCR = s.indexOf('\r');
    while (p < n) {
      const nl = s.indexOf('\n', p);
      if (nextQuote !== -1 && nextQuote < p) nextQuote = s.indexOf(quote, p);
      if (nextCR !== -1 && nextCR < p) nextCR = s.indexOf('\r', p);
      if (nl !== -1) {
        const end = nl > p && s.charCodeAt(nl - 1) === CR ? nl - 1 : nl;
        const plain = (nextQuote === -1 || nextQuote > nl) && (nextCR === -1 || nextCR >= end);
        if (plain) {
          if (end > p) rows.push(s.slice(p, end).split(delimiter));
          line++;
          p = nl + 1;
          continue;
        }
      } else if (!final && (nextQuote === -1 || nextQuote >= n) && (nextCR === -1 || nextCR >= n - 1)) {
        break; // an unfinished plain row: wait for the rest
      }
      const parsed = parseSlow(s, p, final);
      if (parsed === undefined) break;
      if (!parsed.blank) rows.push(parsed.row);
      line += parsed.lines;
      p = parsed.next;
    }
    carry = p < n ? s.slice(p) : '';
    return rows;
  }

  return {
    push: (text) => tokenize(text, false),
    end: () => (carry.length > 0 ? tokenize('', true) : []),
  };
}

/** Index of the first delimiter, LF or CR at or after p (n when none). */
function scanUnquoted(s: string, p: number, D: number): number {
  const n = s.length;
  let k = p;
  while (k < n) {
    const c = s.charCodeAt(k);
    if (c === D || c === LF || c === CR) break;
    k++;
  }
  return k;
}

function countLineBreaks(text: string): number {
  let count = 0;
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i);
    if (c === LF) count++;
    else if (c === CR && text.charCodeAt(i + 1) !== LF) count++;
  }
  return count;
}

function isBlank(row: string[], quoted: boolean): boolean {
  return !quoted && row.length === 1 && row[0] === '';
}

function unterminated(line: number): string {
  return `unterminated quoted field starting on line ${line}: a quote opens a field that never closes; close it, or write a quote inside a quoted field as two quotes`;
}
