import { expect } from 'chai';
import fc from 'fast-check';
import { CopyTextRows, unescapeCopyText } from '../../connectors/postgres/postgres-copy-reader.js';

/** Every row of COPY text fed in the given pieces, each field as text. */
function rowsOf(pieces: Buffer[], columns: number): unknown[][] {
  const reader = new CopyTextRows(Array.from({ length: columns }, () => (text: string) => text));
  const out: unknown[][] = [];
  for (const piece of pieces) reader.push(piece, out);
  reader.end();
  return out;
}

function cutAt(bytes: Buffer, points: number[]): Buffer[] {
  const cuts = [...new Set(points.map((p) => p % (bytes.length + 1)))].sort((a, b) => a - b);
  return [...cuts, bytes.length].map((end, i) => bytes.subarray(i === 0 ? 0 : cuts[i - 1]!, end));
}

describe('postgresql COPY text reader', () => {
  it('unescapes what COPY escapes, and what it might', () => {
    expect(unescapeCopyText('a\\tb\\nc\\rd\\\\e\\bf\\fg\\vh')).to.equal('a\tb\nc\rd\\e\bf\fg\vh');
    expect(unescapeCopyText('caf\\303\\251 \\xc3\\xa9')).to.equal('café é');
    expect(unescapeCopyText('\\q\\N\\x\\8')).to.equal('qNx8');
    expect(unescapeCopyText('ends with \\')).to.equal('ends with \\');
    expect(unescapeCopyText('\\101\\')).to.equal('A\\');
  });

  it('a row cut anywhere, even inside a UTF-8 character or an escape, reads as it does whole', () => {
    const field = fc.oneof(
      fc.constant('\\N'),
      fc.array(fc.constantFrom('a', 'é', '😀', '日', '\\\\', '\\t', '\\n', '\\r', ' '), { maxLength: 12 }).map((chars) => chars.join('')),
    );
    const text = fc.array(fc.tuple(field, field).map(([a, b]) => `${a}\t${b}\n`), { minLength: 1, maxLength: 6 }).map((lines) => lines.join(''));
    fc.assert(
      fc.property(text, fc.array(fc.nat(200), { maxLength: 12 }), (copyText, points) => {
        const bytes = Buffer.from(copyText, 'utf8');
        expect(rowsOf(cutAt(bytes, points), 2)).to.deep.equal(rowsOf([bytes], 2));
      }),
      { numRuns: 2000 },
    );
  });

  it('a row fed one byte at a time comes back whole', () => {
    const value = 'tab\tnew\nline back\\slash é😀'.repeat(50);
    const escaped = value.replace(/[\\\t\n]/g, (c) => (c === '\\' ? '\\\\' : c === '\t' ? '\\t' : '\\n'));
    const bytes = Buffer.from(`1\t${escaped}\n2\t\\N\n`, 'utf8');
    expect(rowsOf([...bytes].map((b) => Buffer.from([b])), 2)).to.deep.equal([
      ['1', value],
      ['2', null],
    ]);
  });

  it('a stream that stops in the middle of a row is an error, not a short row', () => {
    expect(() => rowsOf([Buffer.from('1\tcomplete\n2\tcut sh')], 2)).to.throw('the COPY output ended in the middle of a row');
  });
});
