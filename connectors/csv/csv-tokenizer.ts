/**
 * Streaming RFC 4180 tokenizer for the CSV hot path.
 *
 * Rows without the quote character are cut with native indexOf searches and never looked at one
 * character at a time; only a row holding a quote goes field by field. Every piece of text is
 * scanned once: an unfinished field is carried over as its value so far, never re-parsed, so a
 * huge quoted field (or a stray quote that swallows the rest of the file) stays linear.
 *
 * Semantics are csv-parse's with escape = quote, relax_quotes, relax_column_count and
 * skip_empty_lines, and one deliberate difference: every line break (\r\n, \n or a lone \r) ends
 * a row, as with csv-parse's `record_delimiter: ['\r\n', '\n', '\r']`. By default csv-parse fixes
 * the record delimiter on the first line break it meets and then keeps other breaks inside
 * values, which glues the rows of a file with mixed line endings together. On text that uses a
 * single line-ending style the two agree.
 *
 * As in csv-parse with relax_quotes, text after a closing quote turns the field back into plain
 * text, quotes included: `"ab"c` reads `"ab"c` (doubled quotes before it are already undoubled:
 * `"a""b"c` reads `"a"b"c`).
 */

export interface CsvDialect {
  readonly delimiter: string;
  readonly quote: string;
}

export interface CsvTokenizer {
  /**
   * Feeds the next piece of decoded text (any split point, even inside a quoted field or between
   * \r and \n); returns the rows it completed, each a string[] of raw field values.
   */
  push(text: string): string[][];
  /**
   * End of input: returns the last row if the text did not end with a newline. Throws
   * CsvSyntaxError if a quoted field is still open.
   */
  end(): string[][];
}

export class CsvSyntaxError extends Error {
  /** 1-based line where the unterminated quoted field started. */
  readonly line: number;

  constructor(message: string, line: number) {
    super(message);
    this.name = 'CsvSyntaxError';
    this.line = line;
  }
}

/**
 * How large a record may grow while the tokenizer waits for its end. A record is kept whole until
 * its line break comes; without a cap, one enormous line (or a quote left open that swallows the
 * rest of a large file) was held entirely in memory, at over ten times its size when cut into
 * many short fields (a 100 MB line of `abc,` peaked at 1.28 GB RSS), and past V8's longest
 * string ended in an "Invalid string length" that named neither the file nor the line.
 */
export interface CsvRecordLimits {
  /** Characters of a record, fields and delimiters (a single field may hold most of them). */
  readonly maxRecordChars: number;
  /** Fields of a record: each costs far more memory than its text when fields are short. */
  readonly maxRecordFields: number;
}

export const DEFAULT_RECORD_LIMITS: CsvRecordLimits = { maxRecordChars: 64 * 1024 * 1024, maxRecordFields: 1_000_000 };

/** For text this process wrote itself, whose records were already whole in memory. */
export const NO_RECORD_LIMITS: CsvRecordLimits = { maxRecordChars: Infinity, maxRecordFields: Infinity };

export function createCsvTokenizer(dialect: CsvDialect, limits: CsvRecordLimits = DEFAULT_RECORD_LIMITS): CsvTokenizer {
  assertUsableDialect(dialect);
  return new StreamingCsvTokenizer(dialect.delimiter, dialect.quote, limits);
}

const LF = 10;
const CR = 13;

/** Where the tokenizer stands inside the current field. */
const FIELD_START = 0;
/** Inside a field that did not open with a quote; its text so far is in `field`, never empty. */
const UNQUOTED = 1;
/** Inside a quoted field; its value so far (doubled quotes undoubled) is in `field`. */
const QUOTED = 2;

/** A dialect problem, under the config key it concerns (`delimiter` or `quote`). */
export interface CsvDialectProblem {
  readonly key: 'delimiter' | 'quote';
  readonly message: string;
}

const SUGGESTED = { delimiter: '",", ";", "|" or "\\t" (tab)', quote: `'"' or "'"` } as const;

/**
 * Why the tokenizer could not work with this dialect, in words for the config's author; empty
 * when it can. Lengths count UTF-16 units, as the tokenizer does: JSON Schema's maxLength counts
 * code points, so an emoji (two units) passes the schema and is refused here.
 */
export function csvDialectProblems(dialect: { delimiter?: string; quote?: string }): CsvDialectProblem[] {
  const problems: CsvDialectProblem[] = [];
  const delimiter = dialect.delimiter ?? ',';
  const quote = dialect.quote ?? '"';
  for (const [key, value] of [['delimiter', delimiter], ['quote', quote]] as const) {
    if (typeof value !== 'string' || value.length !== 1) {
      const units = typeof value === 'string' ? `; ${JSON.stringify(value)} is ${value.length} UTF-16 units (an emoji or other character beyond U+FFFF is two)` : '';
      problems.push({ key, message: `must be a single character${units}; use one such as ${SUGGESTED[key]}` });
    } else if (value === '\r' || value === '\n') {
      problems.push({ key, message: `cannot be a line break (${JSON.stringify(value)}): line breaks end rows; use a character such as ${SUGGESTED[key]}` });
    }
  }
  if (problems.length === 0 && delimiter === quote) {
    // Name the key the user wrote: the quote if they set it, else the delimiter that hit the default quote.
    problems.push(
      dialect.quote !== undefined
        ? { key: 'quote', message: `is the same character as the delimiter (${JSON.stringify(quote)}), so a field could not be told from a separator; use another quote, such as ${SUGGESTED.quote}` }
        : { key: 'delimiter', message: `is the default quote character ("); to split on it, also set quote to another character, such as "'"` },
    );
  }
  return problems;
}

function assertUsableDialect(dialect: CsvDialect): void {
  const [problem] = csvDialectProblems(dialect);
  if (problem) throw new RangeError(`CSV ${problem.key} ${problem.message}`);
}

function unterminatedQuoteMessage(line: number, quote: string): string {
  return (
    `unterminated quoted field starting on line ${line}: a quote (${quote}) opens a field that never closes; ` +
    `close it or escape quotes inside as ${quote}${quote}`
  );
}

class StreamingCsvTokenizer implements CsvTokenizer {
  private readonly delimiterCode: number;
  private readonly quoteCode: number;

  private mode = FIELD_START;
  private field = '';
  private row: string[] = [];
  /** A quote that ended the previous piece inside a quoted field: closing, or the first of "". */
  private pending = '';
  /** The last character consumed was \r, so an \n opening the next piece completes a \r\n. */
  private crBefore = false;
  private line = 1;
  private quoteLine = 0;
  /** Line where the record being read started, and the characters of its finished fields. */
  private rowLine = 1;
  private rowChars = 0;
  private ended = false;

  // Next position of each character at or after the last place it was searched from, in the
  // current text (its length when there is none). Still exact for any later position up to
  // it, so no stretch of text is searched twice; -1 means not searched yet.
  private nextDelimiter = -1;
  private nextQuote = -1;
  private nextLf = -1;
  private nextCr = -1;

  constructor(
    private readonly delimiter: string,
    private readonly quote: string,
    private readonly limits: CsvRecordLimits,
  ) {
    this.delimiterCode = delimiter.charCodeAt(0);
    this.quoteCode = quote.charCodeAt(0);
  }

  push(text: string): string[][] {
    if (this.ended) throw new Error('CSV tokenizer: push() after end()');
    const rows: string[][] = [];
    this.scan(this.pending === '' ? text : this.pending + text, rows);
    this.checkRecordLength();
    return rows;
  }

  /** A record still open after a piece of text may not have grown past the limits. */
  private checkRecordLength(): void {
    if (this.mode === FIELD_START && this.row.length === 0) return;
    const { maxRecordChars, maxRecordFields } = this.limits;
    if (this.row.length > maxRecordFields) {
      throw new CsvSyntaxError(`the record starting on line ${this.rowLine} has more than ${maxRecordFields} fields; no record may have more`, this.rowLine);
    }
    if (this.rowChars + this.field.length <= maxRecordChars) return;
    const limit = `${maxRecordChars} characters${maxRecordChars % (1024 * 1024) === 0 ? ` (${maxRecordChars / 1024 / 1024} Mi)` : ''}`;
    if (this.mode === QUOTED) {
      throw new CsvSyntaxError(
        `the quoted field starting on line ${this.quoteLine} goes on past ${limit} without closing: a quote (${this.quote}) left open? ` +
          `close it or escape quotes inside as ${this.quote}${this.quote}`,
        this.quoteLine,
      );
    }
    throw new CsvSyntaxError(`the record starting on line ${this.rowLine} goes on past ${limit} without a line break; no record may be longer`, this.rowLine);
  }

  end(): string[][] {
    if (this.ended) return [];
    this.ended = true;
    const rows: string[][] = [];
    if (this.mode === QUOTED) {
      if (this.pending === '') {
        throw new CsvSyntaxError(unterminatedQuoteMessage(this.quoteLine, this.quote), this.quoteLine);
      }
      this.endField(this.field); // the text ended right on the closing quote
      this.endRow(rows);
    } else if (this.mode === UNQUOTED || this.row.length > 0) {
      // A field with no line break after it, or the empty field after a trailing delimiter.
      this.endField(this.field);
      this.endRow(rows);
    }
    this.pending = '';
    return rows;
  }

  private scan(text: string, rows: string[][]): void {
    this.pending = '';
    this.forgetSearches();
    const length = text.length;
    let pos = 0;
    if (this.crBefore && this.mode !== QUOTED && text.charCodeAt(0) === LF) pos = 1; // rest of a split \r\n
    while (pos < length) {
      if (this.mode === FIELD_START && this.row.length === 0 && text.charCodeAt(pos) !== this.quoteCode) {
        pos = this.scanPlainRows(text, pos, rows);
        if (pos >= length) break;
      }
      pos = this.mode === QUOTED ? this.scanQuoted(text, pos, rows) : this.scanUnquoted(text, pos, rows);
    }
    const consumed = length - this.pending.length;
    if (consumed > 0) this.crBefore = text.charCodeAt(consumed - 1) === CR;
  }

  /**
   * The fast path: whole rows without a quote, cut at delimiters found by indexOf (measured
   * about 1.7x faster than slicing the line and calling split()). Stops at the first row that
   * holds a quote or is not complete yet.
   */
  private scanPlainRows(text: string, pos: number, rows: string[][]): number {
    const length = text.length;
    const delimiter = this.delimiter;
    const nextQuote = this.quoteFrom(text, pos);
    let nextCr = this.crFrom(text, pos);
    let nextDelimiter = this.delimiterFrom(text, pos);
    let lines = 0;
    while (pos < length) {
      let lineEnd = text.indexOf('\n', pos);
      if (lineEnd === -1) lineEnd = length;
      this.nextLf = lineEnd;
      if (nextCr < pos) {
        nextCr = text.indexOf('\r', pos);
        if (nextCr === -1) nextCr = length;
      }
      if (nextCr < lineEnd) lineEnd = nextCr;
      if (lineEnd === length || nextQuote < lineEnd) break;
      if (lineEnd > pos) {
        const row: string[] = [];
        let start = pos;
        while (nextDelimiter < lineEnd) {
          row.push(text.slice(start, nextDelimiter));
          start = nextDelimiter + 1;
          nextDelimiter = text.indexOf(delimiter, start);
          if (nextDelimiter === -1) nextDelimiter = length;
        }
        row.push(text.slice(start, lineEnd));
        rows.push(row);
      }
      pos = lineEnd === nextCr && text.charCodeAt(lineEnd + 1) === LF ? lineEnd + 2 : lineEnd + 1;
      lines++;
    }
    this.nextCr = nextCr;
    this.nextDelimiter = nextDelimiter;
    this.line += lines;
    return pos;
  }

  /** One unquoted field (or the start of a quoted one) from `pos`; returns where to go on. */
  private scanUnquoted(text: string, pos: number, rows: string[][]): number {
    if (this.mode === FIELD_START && this.row.length === 0) this.rowLine = this.line;
    if (this.mode === FIELD_START && text.charCodeAt(pos) === this.quoteCode) {
      this.mode = QUOTED;
      this.field = '';
      this.quoteLine = this.line;
      return pos + 1;
    }
    const end = Math.min(this.delimiterFrom(text, pos), this.lfFrom(text, pos), this.crFrom(text, pos));
    if (end === text.length) {
      this.field += text.slice(pos);
      this.mode = UNQUOTED;
      return end;
    }
    const value = this.field + text.slice(pos, end);
    if (text.charCodeAt(end) === this.delimiterCode) {
      this.endField(value);
      return end + 1;
    }
    // An empty line. The fast path takes those first; this keeps the slow path complete on its own.
    if (value === '' && this.row.length === 0) {
      this.mode = FIELD_START;
    } else {
      this.endField(value);
      this.endRow(rows);
    }
    return this.skipLineBreak(text, end);
  }

  /** Continues a quoted field from `pos`; returns where to go on. */
  private scanQuoted(text: string, pos: number, rows: string[][]): number {
    const length = text.length;
    let from = pos;
    for (;;) {
      const quoteAt = text.indexOf(this.quote, from);
      const to = quoteAt === -1 ? length : quoteAt;
      this.line += this.countLineBreaks(text, from, to);
      if (to > from) this.field += text.slice(from, to);
      if (quoteAt === -1) return length;
      if (quoteAt + 1 === length) {
        // Closing quote or the first of "": only the next piece can tell.
        this.pending = this.quote;
        return length;
      }
      if (text.charCodeAt(quoteAt + 1) === this.quoteCode) {
        this.field += this.quote;
        from = quoteAt + 2;
        continue;
      }
      return this.afterClosingQuote(text, quoteAt + 1, rows);
    }
  }

  private afterClosingQuote(text: string, pos: number, rows: string[][]): number {
    const c = text.charCodeAt(pos);
    if (c === this.delimiterCode) {
      this.endField(this.field);
      return pos + 1;
    }
    if (c === LF || c === CR) {
      this.endField(this.field);
      this.endRow(rows);
      return this.skipLineBreak(text, pos);
    }
    // Text after the closing quote: like csv-parse (relax_quotes), the quotes were not field
    // quotes after all and the rest of the field is read as plain text.
    this.field = this.quote + this.field + this.quote;
    this.mode = UNQUOTED;
    return pos;
  }

  private skipLineBreak(text: string, pos: number): number {
    this.line++;
    return text.charCodeAt(pos) === CR && text.charCodeAt(pos + 1) === LF ? pos + 2 : pos + 1;
  }

  private endField(value: string): void {
    this.rowChars += value.length + 1;
    this.row.push(value);
    this.field = '';
    this.mode = FIELD_START;
  }

  private endRow(rows: string[][]): void {
    rows.push(this.row);
    this.row = [];
    this.rowChars = 0;
  }

  /** Line breaks in text[from, to) (\r\n counts once), for the line number of a syntax error. */
  private countLineBreaks(text: string, from: number, to: number): number {
    let count = 0;
    for (let i = this.crFrom(text, from); i < to; i = this.crFrom(text, i + 1)) count++;
    for (let i = this.lfFrom(text, from); i < to; i = this.lfFrom(text, i + 1)) {
      const afterCr = i > 0 ? text.charCodeAt(i - 1) === CR : this.crBefore;
      if (!afterCr) count++;
    }
    return count;
  }

  private forgetSearches(): void {
    this.nextDelimiter = this.nextQuote = this.nextLf = this.nextCr = -1;
  }

  private delimiterFrom(text: string, pos: number): number {
    if (this.nextDelimiter < pos) this.nextDelimiter = indexOrLength(text, this.delimiter, pos);
    return this.nextDelimiter;
  }

  private quoteFrom(text: string, pos: number): number {
    if (this.nextQuote < pos) this.nextQuote = indexOrLength(text, this.quote, pos);
    return this.nextQuote;
  }

  private lfFrom(text: string, pos: number): number {
    if (this.nextLf < pos) this.nextLf = indexOrLength(text, '\n', pos);
    return this.nextLf;
  }

  private crFrom(text: string, pos: number): number {
    if (this.nextCr < pos) this.nextCr = indexOrLength(text, '\r', pos);
    return this.nextCr;
  }
}

function indexOrLength(text: string, search: string, pos: number): number {
  const i = text.indexOf(search, pos);
  return i === -1 ? text.length : i;
}
