import { expect } from 'chai';
import fc from 'fast-check';
import { parse } from 'csv-parse/sync';
import { createCsvTokenizer, CsvSyntaxError, type CsvDialect } from '../../connectors/csv/csv-tokenizer.js';

const COMMA: CsvDialect = { delimiter: ',', quote: '"' };

function reference(text: string, dialect: CsvDialect = COMMA): string[][] {
  return parse(text, {
    delimiter: dialect.delimiter,
    quote: dialect.quote,
    escape: dialect.quote,
    relax_quotes: true,
    relax_column_count: true,
    skip_empty_lines: true,
    bom: false,
    // Any line break ends a row; by default csv-parse would fix on the first one it meets.
    record_delimiter: ['\r\n', '\n', '\r'],
  });
}

function tokenize(pieces: string[], dialect: CsvDialect = COMMA): string[][] {
  const tokenizer = createCsvTokenizer(dialect);
  const rows = pieces.flatMap((piece) => tokenizer.push(piece));
  return [...rows, ...tokenizer.end()];
}

/** The text cut at every position into two pieces, and into single characters. */
function everySplit(text: string): string[][] {
  const splits = [[text], [...text]];
  for (let cut = 0; cut <= text.length; cut++) splits.push([text.slice(0, cut), text.slice(cut)]);
  return splits;
}

const CORPUS: Record<string, { text: string; dialect?: CsvDialect; expected?: string[][] }> = {
  'plain rows': { text: 'a,b,c\n1,2,3\n', expected: [['a', 'b', 'c'], ['1', '2', '3']] },
  'no trailing newline': { text: 'a,b\n1,2', expected: [['a', 'b'], ['1', '2']] },
  'CRLF': { text: 'a,b\r\n1,2\r\n', expected: [['a', 'b'], ['1', '2']] },
  'lone CR': { text: 'a,b\r1,2\r', expected: [['a', 'b'], ['1', '2']] },
  'quoted delimiter': { text: 'a,"b,c",d\n', expected: [['a', 'b,c', 'd']] },
  'doubled quotes': { text: '"say ""hi""",x\n', expected: [['say "hi"', 'x']] },
  'embedded LF and CRLF kept verbatim': { text: 'a,"l1\nl2\r\nl3"\r\nb,c\n', expected: [['a', 'l1\nl2\r\nl3'], ['b', 'c']] },
  'empty fields and trailing delimiter': { text: ',a,,\n,,\n', expected: [['', 'a', '', ''], ['', '', '']] },
  'empty lines skipped': { text: '\n\na\r\n\r\n\nb\n\n', expected: [['a'], ['b']] },
  'ragged rows': { text: 'a,b,c\n1\n1,2,3,4\n', expected: [['a', 'b', 'c'], ['1'], ['1', '2', '3', '4']] },
  'quote inside an unquoted field is literal': { text: 'ab"c,d\n', expected: [['ab"c', 'd']] },
  'text after a closing quote is read as written': { text: 'x,"ab"c,d\n', expected: [['x', '"ab"c', 'd']] },
  'quoted empty field': { text: '"",a\n""\n', expected: [['', 'a'], ['']] },
  'only a header': { text: 'id,name', expected: [['id', 'name']] },
  'semicolon': { text: 'a;"b;c"\n', dialect: { delimiter: ';', quote: '"' }, expected: [['a', 'b;c']] },
  'tab': { text: 'a\tb\n1\t\n', dialect: { delimiter: '\t', quote: '"' }, expected: [['a', 'b'], ['1', '']] },
  "single-quote quoting": { text: "a,'b,''c'''\n", dialect: { delimiter: ',', quote: "'" }, expected: [['a', "b,'c'"]] },
  'unicode': { text: 'ville,temp\nZürich,"🌡 -3,5"\n', expected: [['ville', 'temp'], ['Zürich', '🌡 -3,5']] },
  'quote at chunk end before a closing quote': { text: '"a""","b"\n' },
};

describe('csv tokenizer', () => {
  for (const [name, { text, dialect, expected }] of Object.entries(CORPUS)) {
    it(`${name}: same rows as csv-parse at every split point`, () => {
      const want = reference(text, dialect);
      if (expected) expect(want).to.deep.equal(expected);
      for (const pieces of everySplit(text)) expect(tokenize(pieces, dialect), JSON.stringify(pieces)).to.deep.equal(want);
    });
  }

  it('matches csv-parse on random CSV, dialects and chunkings (property)', () => {
    const dialects = fc.constantFrom<CsvDialect>(COMMA, { delimiter: ';', quote: '"' }, { delimiter: '\t', quote: "'" }, { delimiter: '|', quote: '"' });
    const atom = fc.constantFrom('a', 'b', 'Z', '1', ' ', ',', ';', '\t', '|', '"', "'", '\n', '\r', '\r\n', 'é', '');
    const field = fc.array(atom, { maxLength: 6 }).map((parts) => parts.join(''));
    const row = fc.array(field, { minLength: 1, maxLength: 5 });
    const input = fc.record({
      dialect: dialects,
      rows: fc.array(fc.tuple(row, fc.constantFrom('\n', '\r\n', '\r')), { minLength: 1, maxLength: 8 }),
      quoteAll: fc.boolean(),
      cuts: fc.array(fc.nat(), { maxLength: 6 }),
      trailingBreak: fc.boolean(),
    });
    fc.assert(
      fc.property(input, ({ dialect, rows, quoteAll, cuts, trailingBreak }) => {
        const q = dialect.quote;
        const encode = (f: string) =>
          quoteAll || /[\r\n]/.test(f) || f.includes(dialect.delimiter) || f.startsWith(q) ? q + f.split(q).join(q + q) + q : f;
        let text = rows.map(([cells, eol]) => cells.map(encode).join(dialect.delimiter) + eol).join('');
        if (!trailingBreak) text = text.replace(/(\r\n|\r|\n)$/, '');
        const points = [...new Set(cuts.map((c) => c % (text.length + 1)))].sort((a, b) => a - b);
        const pieces: string[] = [];
        let last = 0;
        for (const point of points) {
          pieces.push(text.slice(last, point));
          last = point;
        }
        pieces.push(text.slice(last));
        expect(tokenize(pieces, dialect)).to.deep.equal(reference(text, dialect));
      }),
      { numRuns: 2000 },
    );
  });

  it('a long file in 64 KiB pieces gives every row once', () => {
    let text = 'id,note\n';
    for (let i = 0; i < 30000; i++) text += i % 5 ? `${i},plain ${i}\n` : `${i},"quoted, ""${i}""\nsecond line"\n`;
    const pieces = [];
    for (let i = 0; i < text.length; i += 65536) pieces.push(text.slice(i, i + 65536));
    const rows = tokenize(pieces);
    expect(rows).to.have.length(30001);
    expect(rows[5]).to.deep.equal(['4', 'plain 4']);
    expect(rows[6]).to.deep.equal(['5', 'quoted, "5"\nsecond line']);
    expect(rows).to.deep.equal(reference(text));
  });

  it('an unterminated quoted field fails at end of input with the line it opened on', () => {
    const tokenizer = createCsvTokenizer(COMMA);
    expect(tokenizer.push('a,b\n1,2\n3,"open\n4,5\n')).to.deep.equal([['a', 'b'], ['1', '2']]);
    try {
      tokenizer.end();
      expect.fail('should have thrown');
    } catch (err) {
      expect(err).to.be.instanceOf(CsvSyntaxError);
      expect((err as CsvSyntaxError).line).to.equal(3);
      expect((err as Error).message).to.match(/unterminated quoted field starting on line 3/);
    }
  });

  it('refuses a delimiter or quote longer than one character', () => {
    expect(() => createCsvTokenizer({ delimiter: '::', quote: '"' })).to.throw(/single characters/);
  });
});
