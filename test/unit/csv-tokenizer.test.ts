import { expect } from 'chai';
import fc from 'fast-check';
import { parse, type Options } from 'csv-parse/sync';
import { createCsvTokenizer, csvDialectProblems, CsvSyntaxError, type CsvDialect } from '../../connectors/csv/csv-tokenizer.js';

const COMMA: CsvDialect = { delimiter: ',', quote: '"' };

function csvParseOptions(dialect: CsvDialect): Options {
  return {
    delimiter: dialect.delimiter,
    quote: dialect.quote,
    escape: dialect.quote,
    relax_quotes: true,
    relax_column_count: true,
    skip_empty_lines: true,
    bom: false,
  };
}

/**
 * The reference: csv-parse with every line break ending a row. Its default fixes the record
 * delimiter on the first break it meets, which only differs on mixed line endings (see
 * `csvParseAsConfigured`, and the tokenizer's header comment).
 */
function reference(text: string, dialect: CsvDialect = COMMA): string[][] {
  return parse(text, { ...csvParseOptions(dialect), record_delimiter: ['\r\n', '\n', '\r'] });
}

/** csv-parse with its default record delimiter detection. */
function csvParseAsConfigured(text: string, dialect: CsvDialect = COMMA): string[][] {
  return parse(text, csvParseOptions(dialect));
}

function tokenize(pieces: readonly string[], dialect: CsvDialect = COMMA): string[][] {
  const tokenizer = createCsvTokenizer(dialect);
  const rows = pieces.flatMap((piece) => tokenizer.push(piece));
  return [...rows, ...tokenizer.end()];
}

/** The text whole, one character at a time, and cut in two at every position. */
function everySplit(text: string): string[][] {
  const splits = [[text], [...text]];
  for (let cut = 0; cut <= text.length; cut++) splits.push([text.slice(0, cut), text.slice(cut)]);
  return splits;
}

function cutAt(text: string, cuts: readonly number[]): string[] {
  const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
  const pieces: string[] = [];
  let last = 0;
  for (const point of points) {
    pieces.push(text.slice(last, point));
    last = point;
  }
  pieces.push(text.slice(last));
  return pieces;
}

function inPiecesOf(text: string, size: number): string[] {
  const pieces: string[] = [];
  for (let i = 0; i < text.length; i += size) pieces.push(text.slice(i, i + size));
  return pieces;
}

function usesOneLineEndingStyle(text: string): boolean {
  const styles = new Set(text.match(/\r\n|\r|\n/g) ?? []);
  return styles.size <= 1;
}

function syntaxErrorOf(pieces: readonly string[], dialect: CsvDialect = COMMA): CsvSyntaxError {
  try {
    tokenize(pieces, dialect);
  } catch (err) {
    expect(err).to.be.instanceOf(CsvSyntaxError);
    return err as CsvSyntaxError;
  }
  expect.fail(`expected a CsvSyntaxError for ${JSON.stringify(pieces)}`);
}

interface CorpusCase {
  text: string;
  dialect?: CsvDialect;
  /** Written out by hand for the cases where "same as csv-parse" alone would not say enough. */
  expected?: string[][];
}

const CORPUS: Record<string, CorpusCase> = {
  'plain rows': { text: 'a,b,c\n1,2,3\n', expected: [['a', 'b', 'c'], ['1', '2', '3']] },
  'no trailing newline': { text: 'a,b\n1,2', expected: [['a', 'b'], ['1', '2']] },
  'CRLF': { text: 'a,b\r\n1,2\r\n', expected: [['a', 'b'], ['1', '2']] },
  'lone CR': { text: 'a,b\r1,2\r', expected: [['a', 'b'], ['1', '2']] },
  'only a header': { text: 'id,name', expected: [['id', 'name']] },
  'only a header and its newline': { text: 'id,name\r\n', expected: [['id', 'name']] },
  'empty input': { text: '', expected: [] },
  'only line breaks': { text: '\n\r\n\r\r\n\n', expected: [] },
  'quoted delimiter': { text: 'a,"b,c",d\n', expected: [['a', 'b,c', 'd']] },
  'doubled quotes': { text: '"say ""hi""",x\n', expected: [['say "hi"', 'x']] },
  'doubled quote last in the field': { text: '"a""",b\n"""",c', expected: [['a"', 'b'], ['"', 'c']] },
  'embedded LF and CRLF kept verbatim': {
    text: 'a,"l1\nl2\r\nl3"\r\nb,c\n',
    expected: [['a', 'l1\nl2\r\nl3'], ['b', 'c']],
  },
  'embedded lone CR kept verbatim': { text: '"a\rb"\rc', expected: [['a\rb'], ['c']] },
  'quoted field right before CRLF': { text: '"a"\r\n"b"\r\n', expected: [['a'], ['b']] },
  'empty fields and trailing delimiter': { text: ',a,,\n,,\n', expected: [['', 'a', '', ''], ['', '', '']] },
  'trailing delimiter at end of input': { text: 'a,b,', expected: [['a', 'b', '']] },
  'trailing delimiter before a lone CR': { text: 'a,\r', expected: [['a', '']] },
  'empty lines skipped': { text: '\n\na\r\n\r\n\nb\n\n', expected: [['a'], ['b']] },
  'a line of spaces is not empty': { text: 'a\n \nb\n', expected: [['a'], [' '], ['b']] },
  'quoted empty fields are not an empty line': { text: '"",a\n""\n""', expected: [['', 'a'], [''], ['']] },
  'ragged rows': { text: 'a,b,c\n1\n1,2,3,4\n', expected: [['a', 'b', 'c'], ['1'], ['1', '2', '3', '4']] },
  'quote inside an unquoted field is literal': { text: 'ab"c,d\nx""y\n', expected: [['ab"c', 'd'], ['x""y']] },
  'text after a closing quote is kept as written': { text: 'x,"ab"c,d\n', expected: [['x', '"ab"c', 'd']] },
  'text after a closing quote, doubled quotes undoubled first': {
    text: '"a""b"c,d\n"a"b"c,d"\n',
    expected: [['"a"b"c', 'd'], ['"a"b"c', 'd"']],
  },
  'space after a closing quote': { text: '"ab" ,c\n', expected: [['"ab" ', 'c']] },
  'closing quote at end of input': { text: 'a,"b"', expected: [['a', 'b']] },
  'byte order mark is left to the caller': { text: '\ufeffid,v\n1,2\n', expected: [['\ufeffid', 'v'], ['1', '2']] },
  'semicolon': { text: 'a;"b;c";d\n1;;\n', dialect: { delimiter: ';', quote: '"' }, expected: [['a', 'b;c', 'd'], ['1', '', '']] },
  'tab': { text: 'a\tb\n1\t\n"x\ty"\tz\n', dialect: { delimiter: '\t', quote: '"' }, expected: [['a', 'b'], ['1', ''], ['x\ty', 'z']] },
  'pipe': { text: 'a|"b|c"\n', dialect: { delimiter: '|', quote: '"' }, expected: [['a', 'b|c']] },
  'single-quote quoting': {
    text: "a,'b,''c'''\n\"d\",'e\"f'\n",
    dialect: { delimiter: ',', quote: "'" },
    expected: [['a', "b,'c'"], ['"d"', 'e"f']],
  },
  'unicode': {
    text: 'ville,temp\nZürich,"🌡 -3,5"\n東京,"引用""符"\n',
    expected: [['ville', 'temp'], ['Zürich', '🌡 -3,5'], ['東京', '引用"符']],
  },
  'non-ASCII delimiter': { text: 'a§"b§c"§d\n', dialect: { delimiter: '§', quote: '"' }, expected: [['a', 'b§c', 'd']] },
  'mixed line endings: every break ends a row': {
    text: 'a,b\r\nc,d\ne,f\rg,h\r\n',
    expected: [['a', 'b'], ['c', 'd'], ['e', 'f'], ['g', 'h']],
  },
};

describe('csv tokenizer', () => {
  describe('edge cases, whole and split at every position', () => {
    for (const [name, { text, dialect, expected }] of Object.entries(CORPUS)) {
      it(name, () => {
        const want = reference(text, dialect);
        if (expected) expect(want, 'csv-parse').to.deep.equal(expected);
        if (usesOneLineEndingStyle(text)) expect(csvParseAsConfigured(text, dialect), 'csv-parse, default record delimiter').to.deep.equal(want);
        for (const pieces of everySplit(text)) expect(tokenize(pieces, dialect), JSON.stringify(pieces)).to.deep.equal(want);
      });
    }

    it('mixed line endings are where csv-parse, by default, differs', () => {
      // It fixes the record delimiter on the first break (\r\n here) and keeps the others in values.
      expect(csvParseAsConfigured(CORPUS['mixed line endings: every break ends a row']!.text)).to.deep.equal([
        ['a', 'b'],
        ['c', 'd\ne', 'f\rg', 'h'],
      ]);
    });
  });

  describe('pieces', () => {
    const quoteHeavy = (rows: number): string => {
      let text = 'id,note\r\n';
      for (let i = 0; i < rows; i++) {
        text += i % 5 ? `${i},plain ${i}\r\n` : `${i},"quoted, ""${i}""\nsecond line\r\nthird"\r\n`;
        if (i % 7 === 0) text += '\r\n';
      }
      return text;
    };

    it('a long file gives the same rows in 64 KiB pieces and in odd-sized ones', () => {
      const text = quoteHeavy(30000);
      const want = reference(text);
      expect(want).to.have.length(30001);
      expect(want[6]).to.deep.equal(['5', 'quoted, "5"\nsecond line\r\nthird']);
      for (const size of [65536, 4093, 17, 2, 1]) expect(tokenize(inPiecesOf(text, size)), `pieces of ${size}`).to.deep.equal(want);
    });

    it('ignores empty pieces', () => {
      expect(tokenize(['', 'a,"b', '', '"', '', '\r', '', '\n', 'c', ''])).to.deep.equal([['a', 'b'], ['c']]);
    });

    it('returns each row from the push that completes it', () => {
      const tokenizer = createCsvTokenizer(COMMA);
      expect(tokenizer.push('a,b\nc,"d')).to.deep.equal([['a', 'b']]);
      expect(tokenizer.push('\n"\r')).to.deep.equal([['c', 'd\n']]);
      expect(tokenizer.push('\ne,f')).to.deep.equal([]);
      expect(tokenizer.end()).to.deep.equal([['e', 'f']]);
    });

    it('reads a huge quoted field in small pieces in linear time', () => {
      const content = 'x'.repeat(1023) + '\n';
      const pieces = ['id,blob\n1,"', ...Array.from({ length: 20000 }, () => content), '",end\n'];
      const started = performance.now();
      const rows = tokenize(pieces);
      const elapsed = performance.now() - started;
      expect(rows).to.have.length(2);
      expect(rows[1]![1]).to.have.length(20000 * 1024);
      // Re-reading the open field with every piece would take minutes here.
      expect(elapsed, 'milliseconds').to.be.below(5000);
    });
  });

  describe('property: equal to csv-parse', () => {
    const dialects = fc.record({
      delimiter: fc.constantFrom(',', ';', '\t', '|', '§'),
      quote: fc.constantFrom('"', "'"),
    });
    const atom = fc.constantFrom('a', 'Z', '1', ' ', ',', ';', '\t', '|', '§', '"', "'", '\n', '\r', '\r\n', 'é', '🌡', '');
    const field = fc.array(atom, { maxLength: 6 }).map((parts) => parts.join(''));
    const lineBreak = fc.constantFrom('\n', '\r\n', '\r');

    it('on CSV written from random fields, with random dialect and pieces', () => {
      const input = fc.record({
        dialect: dialects,
        rows: fc.array(fc.tuple(fc.array(field, { minLength: 1, maxLength: 5 }), lineBreak), { minLength: 1, maxLength: 8 }),
        oneLineBreak: fc.option(lineBreak, { nil: undefined }),
        quoteAll: fc.boolean(),
        trailingBreak: fc.boolean(),
        cuts: fc.array(fc.nat(), { maxLength: 8 }),
      });
      fc.assert(
        fc.property(input, ({ dialect, rows, oneLineBreak, quoteAll, trailingBreak, cuts }) => {
          const { delimiter, quote } = dialect;
          const needsQuotes = (f: string) => quoteAll || /[\r\n]/.test(f) || f.includes(delimiter) || f.startsWith(quote);
          const encode = (f: string) => (needsQuotes(f) ? quote + f.split(quote).join(quote + quote) + quote : f);
          let text = rows.map(([cells, eol]) => cells.map(encode).join(delimiter) + (oneLineBreak ?? eol)).join('');
          if (!trailingBreak) text = text.replace(/(\r\n|\r|\n)$/, '');
          const want = reference(text, dialect);
          expect(tokenize(cutAt(text, cuts), dialect)).to.deep.equal(want);
          // Unquoted line breaks come only from row ends here, so with one style the default agrees too.
          if (oneLineBreak !== undefined) expect(want).to.deep.equal(csvParseAsConfigured(text, dialect));
        }),
        { numRuns: 3000 },
      );
    });

    it('on arbitrary text (stray quotes, text after closing quotes, unterminated fields), errors included', () => {
      const soup = fc.array(fc.constantFrom('a', 'b', ' ', ',', ';', '"', "'", '\r', '\n', 'é'), { maxLength: 40 }).map((cs) => cs.join(''));
      const input = fc.record({
        dialect: fc.constantFrom<CsvDialect>(COMMA, { delimiter: ';', quote: "'" }),
        text: soup,
        cuts: fc.array(fc.nat(), { maxLength: 6 }),
      });
      fc.assert(
        fc.property(input, ({ dialect, text, cuts }) => {
          let want: string[][] | 'unterminated';
          try {
            want = reference(text, dialect);
          } catch (err) {
            expect((err as { code?: string }).code).to.equal('CSV_QUOTE_NOT_CLOSED');
            want = 'unterminated';
          }
          if (want === 'unterminated') syntaxErrorOf(cutAt(text, cuts), dialect);
          else expect(tokenize(cutAt(text, cuts), dialect)).to.deep.equal(want);
        }),
        { numRuns: 5000 },
      );
    });
  });

  describe('unterminated quoted field', () => {
    it('fails at end of input with the line the field opened on, and says what to do', () => {
      const tokenizer = createCsvTokenizer(COMMA);
      expect(tokenizer.push('a,b\n1,2\n3,"open\n4,5\n')).to.deep.equal([['a', 'b'], ['1', '2']]);
      let error: unknown;
      try {
        tokenizer.end();
      } catch (err) {
        error = err;
      }
      expect(error).to.be.instanceOf(CsvSyntaxError);
      expect((error as CsvSyntaxError).line).to.equal(3);
      expect((error as Error).message).to.equal(
        'unterminated quoted field starting on line 3: a quote (") opens a field that never closes; close it or escape quotes inside as ""',
      );
    });

    it('counts every kind of line break, inside quotes and split between pieces', () => {
      const text = 'h\r\n\r\n"x\r\ny\rz\nw",1\r2,3\n\n4,"op\nen';
      // Lines: 1 h, 2 (empty), 3 "x, 4 y, 5 z, 6 w",1, 7 2,3, 8 (empty), 9 4,"op
      expect(() => reference(text)).to.throw(/Quote Not Closed/);
      for (const pieces of everySplit(text)) expect(syntaxErrorOf(pieces).line, JSON.stringify(pieces)).to.equal(9);
    });

    it('names the dialect quote', () => {
      const error = syntaxErrorOf(["a;'b;c\n"], { delimiter: ';', quote: "'" });
      expect(error.line).to.equal(1);
      expect(error.message).to.contain("a quote (') opens a field").and.contain("as ''");
    });

    it('is reported for a lone quote, an open doubled quote, and a quote at the very end', () => {
      expect(syntaxErrorOf(['"']).line).to.equal(1);
      expect(syntaxErrorOf(['"a""']).line).to.equal(1);
      expect(syntaxErrorOf(['a\nb,"']).line).to.equal(2);
    });

    it('gives the physical line on random valid CSV followed by an open quote', () => {
      const cell = fc.constantFrom('a', '', '"q,""\r\nx"', '"\n"', '"\r"');
      const line = fc.tuple(fc.array(cell, { minLength: 1, maxLength: 3 }), fc.constantFrom('\n', '\r\n', '\r'));
      fc.assert(
        fc.property(fc.array(line, { maxLength: 6 }), fc.array(fc.nat(), { maxLength: 4 }), (lines, cuts) => {
          const before = lines.map(([cells, eol]) => cells.join(',') + eol).join('');
          const text = `${before}x,"open\nstill open`;
          const physicalLine = before.split(/\r\n|\r|\n/).length;
          expect(syntaxErrorOf(cutAt(text, cuts)).line).to.equal(physicalLine);
        }),
        { numRuns: 1000 },
      );
    });
  });

  describe('use', () => {
    it('refuses a delimiter or quote that is not one character, a line break, or both the same', () => {
      expect(() => createCsvTokenizer({ delimiter: '::', quote: '"' })).to.throw(RangeError, /delimiter must be a single character/);
      expect(() => createCsvTokenizer({ delimiter: ',', quote: '' })).to.throw(RangeError, /quote must be a single character/);
      expect(() => createCsvTokenizer({ delimiter: '\n', quote: '"' })).to.throw(RangeError, /line break/);
      expect(() => createCsvTokenizer({ delimiter: '"', quote: '"' })).to.throw(RangeError, /quote is the same character as the delimiter/);
      expect(() => createCsvTokenizer({ delimiter: '\u{1F600}', quote: '"' })).to.throw(RangeError, /delimiter must be a single character; "\u{1F600}" is 2 UTF-16 units/u);
    });

    it('csvDialectProblems names the key at fault and what to use instead; the defaults are fine', () => {
      expect(csvDialectProblems({})).to.deep.equal([]);
      expect(csvDialectProblems({ delimiter: '\t', quote: "'" })).to.deep.equal([]);
      const keys = (d: { delimiter?: string; quote?: string }) => csvDialectProblems(d).map((p) => p.key);
      expect(keys({ delimiter: '\r' })).to.deep.equal(['delimiter']);
      expect(keys({ quote: '\n' })).to.deep.equal(['quote']);
      expect(keys({ delimiter: ';', quote: ';' })).to.deep.equal(['quote']);
      expect(keys({ delimiter: '"' })).to.deep.equal(['delimiter']); // the default quote: the delimiter is what the user wrote
      expect(keys({ delimiter: '\u{1F600}', quote: '\u{1F600}' })).to.deep.equal(['delimiter', 'quote']);
      for (const { message } of csvDialectProblems({ delimiter: '\n', quote: '\u{1F600}' })) expect(message).to.match(/use/);
    });

    it('refuses more text after end(), and a second end() returns nothing', () => {
      const tokenizer = createCsvTokenizer(COMMA);
      tokenizer.push('a,b');
      expect(tokenizer.end()).to.deep.equal([['a', 'b']]);
      expect(tokenizer.end()).to.deep.equal([]);
      expect(() => tokenizer.push('c')).to.throw(/after end/);
    });
  });
});

describe('csv tokenizer: record length', () => {
  /** Feeds `pieces` in turn; returns the rows, or the error push or end threw and where. */
  function feed(tokenizer: ReturnType<typeof createCsvTokenizer>, pieces: Iterable<string>): { rows: string[][]; error?: CsvSyntaxError; at?: 'push' | 'end' } {
    const rows: string[][] = [];
    try {
      for (const piece of pieces) rows.push(...tokenizer.push(piece));
    } catch (err) {
      return { rows, error: err as CsvSyntaxError, at: 'push' };
    }
    try {
      rows.push(...tokenizer.end());
    } catch (err) {
      return { rows, error: err as CsvSyntaxError, at: 'end' };
    }
    return { rows };
  }

  function* repeated(piece: string, times: number): Iterable<string> {
    for (let i = 0; i < times; i++) yield piece;
  }

  it('a quote left open early in a large input fails as soon as the field passes the cap, naming the line it opened on', () => {
    const chunk = 'x,1,2\n'.repeat(64 * 1024 / 6);
    const tokenizer = createCsvTokenizer(COMMA);
    const { rows, error, at } = feed(tokenizer, ['id,value\n1,2\n3,"never closed\n', ...repeated(chunk, 1100)]);
    expect(at).to.equal('push');
    expect(error).to.be.instanceOf(CsvSyntaxError);
    expect(error!.line).to.equal(3);
    expect(error!.message).to.match(/quoted field starting on line 3 goes on past 67108864 characters \(64 Mi\)/);
    expect(rows).to.deep.equal([['id', 'value'], ['1', '2']]);
  });

  it('one enormous line of short fields fails at the cap instead of being held whole', () => {
    const tokenizer = createCsvTokenizer(COMMA, { maxRecordChars: 1000, maxRecordFields: Infinity });
    const { rows, error, at } = feed(tokenizer, ['a,b\n1,2\n\n', ...repeated('ab,', 400)]);
    expect(at).to.equal('push');
    expect(error!.line).to.equal(4);
    expect(error!.message).to.match(/the record starting on line 4 goes on past 1000 characters without a line break/);
    expect(rows).to.deep.equal([['a', 'b'], ['1', '2']]);
  });

  it('a record of more fields than the cap fails, however short they are', () => {
    const { error, at } = feed(createCsvTokenizer(COMMA), ['a,b\n', ...repeated(',', 1_100_000), '\n']);
    expect(at).to.equal('push');
    expect(error!.message).to.equal('the record starting on line 2 has more than 1000000 fields; no record may have more');
  });

  it('records up to the cap are read as before, in any pieces, and the count starts again with each record', () => {
    const field = 'y'.repeat(498);
    const record = `"${field}",${field}\n`; // 998 characters of fields and delimiters
    const text = `h1,h2\n${record.repeat(5)}`;
    for (const size of [1, 7, 64, 1000, text.length]) {
      const pieces: string[] = [];
      for (let at = 0; at < text.length; at += size) pieces.push(text.slice(at, at + size));
      const { rows, error } = feed(createCsvTokenizer(COMMA, { maxRecordChars: 1000, maxRecordFields: 2 }), pieces);
      expect(error, `pieces of ${size}`).to.equal(undefined);
      expect(rows).to.have.length(6);
      expect(rows[5]).to.deep.equal([field, field]);
    }
  });
});
