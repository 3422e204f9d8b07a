import { expect } from 'chai';
import fc from 'fast-check';
import { ColumnLayout, OBJECT_LAYOUT } from '../../src/records/layout.js';
import { toNdjsonPieces } from '../../src/encoding/ndjson.js';
import { exactNumber, toEpochMillis, toNumber, toText } from '../../src/rules/coerce.js';
import { dedupKeyOf } from '../../src/state/record-key.js';

/** The instant of a UTC calendar date, built without Date.UTC (which reads years 0-99 as 1900-1999). */
function utc(year: number, month: number, day: number, hour = 0, minute = 0, second = 0, millis = 0): number {
  const d = new Date(0);
  d.setUTCFullYear(year, month - 1, day);
  d.setUTCHours(hour, minute, second, millis);
  return d.getTime();
}

describe('timestamps in the years 0000-0099', () => {
  it('are read as those years by the fast and the general parser, not as 1900-1999', () => {
    expect(new Date(toEpochMillis('0042-03-04T05:06:07Z')!).getUTCFullYear()).to.equal(42);
    expect(toEpochMillis('0042-03-04T05:06:07Z')).to.equal(utc(42, 3, 4, 5, 6, 7));
    expect(toEpochMillis('0042-03-04T05:06:07+00:00')).to.equal(utc(42, 3, 4, 5, 6, 7));
    expect(toEpochMillis('0042-03-04')).to.equal(utc(42, 3, 4));
    expect(toEpochMillis('0000-01-01')).to.equal(utc(0, 1, 1));
    expect(toEpochMillis('0000-01-01T00:00:00Z')).to.equal(utc(0, 1, 1));
    expect(toEpochMillis('0099-12-31T23:59:59.999Z')).to.equal(utc(99, 12, 31, 23, 59, 59, 999));
    expect(toEpochMillis('0100-01-01T00:00:00Z')).to.equal(utc(100, 1, 1));
  });

  it('keep the proleptic Gregorian leap years: 0000 and 0004 have a 29 February, 0100 has not', () => {
    expect(toEpochMillis('0000-02-29')).to.equal(utc(0, 2, 29));
    expect(toEpochMillis('0000-02-29T12:00:00Z')).to.equal(utc(0, 2, 29, 12));
    expect(toEpochMillis('0004-02-29T00:00:00Z')).to.equal(utc(4, 2, 29));
    expect(toEpochMillis('0001-02-29')).to.equal(undefined);
    expect(toEpochMillis('0001-02-29T00:00:00Z')).to.equal(undefined);
    expect(toEpochMillis('0100-02-29')).to.equal(undefined);
  });

  it('agree with the calendar for any year, in both parsers', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 9999 }), fc.integer({ min: 1, max: 12 }), fc.integer({ min: 1, max: 28 }),
        fc.integer({ min: 0, max: 23 }), fc.integer({ min: 0, max: 59 }), fc.integer({ min: 0, max: 999 }),
        (y, mo, d, h, mi, ms) => {
          const text = `${String(y).padStart(4, '0')}-${String(mo).padStart(2, '0')}-${String(d).padStart(2, '0')}T${String(h).padStart(2, '0')}:${String(mi).padStart(2, '0')}:30.${String(ms).padStart(3, '0')}`;
          const expected = utc(y, mo, d, h, mi, 30, ms);
          expect(toEpochMillis(text + 'Z'), text).to.equal(expected);
          expect(toEpochMillis(text + '+00:00'), text).to.equal(expected);
        },
      ),
      { numRuns: 2000 },
    );
  });
});

describe('numbers', () => {
  it('are decimal notation only: no radix prefixes, words or digit separators', () => {
    for (const text of ['0x10', '0X1f', '0b101', '0o7', 'Infinity', '-Infinity', '+Infinity', 'NaN', '1_000', '1e', 'e5', '.', '', '  ', '1 2']) {
      expect(toNumber(text), JSON.stringify(text)).to.equal(undefined);
    }
    for (const [text, n] of [['12.5', 12.5], [' 7 ', 7], ['\t-1e3\n', -1000], ['+.5', 0.5], ['5.', 5], ['2.5E-4', 2.5e-4], ['0010', 10], ['-0', -0]] as const) {
      expect(toNumber(text), JSON.stringify(text)).to.equal(n);
    }
  });

  it('a hexadecimal or binary text is not an epoch timestamp', () => {
    expect(toEpochMillis('0x10')).to.equal(undefined);
    expect(toEpochMillis('0b101')).to.equal(undefined);
    expect(toEpochMillis('16')).to.equal(16_000);
  });

  it('toNumber reads what a double cannot hold as the nearest double (rules then break ties exactly), and an overflow as Infinity', () => {
    expect(toNumber('12345678901234567891')).to.equal(12345678901234567000);
    expect(toNumber('1e400')).to.equal(Infinity);
    expect(toNumber('-1e400')).to.equal(-Infinity);
    expect(toNumber('0.1000000000000000055511151231257827')).to.equal(0.1);
  });

  describe('exactNumber, what a number column exports', () => {
    it('is the number when JSON writes it back as the same decimal value', () => {
      for (const [text, n] of [['12.5', 12.5], ['1000.0', 1000], [' 7 ', 7], ['1e3', 1000], ['0.1', 0.1], ['-912.44', -912.44],
        ['9007199254740992', 2 ** 53], ['12345678901234567000', 12345678901234567000], ['1.5e300', 1.5e300], ['123456789012345.6', 123456789012345.6]] as const) {
        expect(exactNumber(text), text).to.equal(n);
      }
    });

    it('is undefined (the text is kept) for what a double would round or cannot hold', () => {
      for (const text of ['1e400', '-1e400', '1e-400', 'Infinity', 'NaN', '0x10', '12345678901234567891', '9007199254740993',
        '0.1000000000000000055511151231257827', '3.14159265358979323846']) {
        expect(exactNumber(text), text).to.equal(undefined);
      }
    });

    it('exports -0 as 0', () => {
      expect(Object.is(exactNumber('-0'), 0)).to.equal(true);
      expect(Object.is(exactNumber('-0.0e5'), 0)).to.equal(true);
    });

    it('is the double itself for any double written as JavaScript prints it, padded or in exponent form', () => {
      fc.assert(
        fc.property(fc.double({ noNaN: true, noDefaultInfinity: true }), (x) => {
          const expected = x === 0 ? 0 : x;
          for (const text of [String(x), x.toExponential(), ` ${String(x).replace(/^(-?)/, '$100')} `]) {
            expect(Object.is(exactNumber(text), expected), text).to.equal(true);
          }
          // One more significant digit than the shortest form is a different decimal: never rounded to x.
          const longer = x.toExponential().replace(/e/, (x.toExponential().includes('.') ? '' : '.') + '1e');
          if (x !== 0) expect(exactNumber(longer), longer).to.not.equal(x);
        }),
        { numRuns: 3000 },
      );
    });
  });

  it('a number column exports inexact numbers as their text, and exact ones as numbers', () => {
    const layout = new ColumnLayout(['id', 'amount'], { id: 'number', amount: 'number' });
    const cases: [string, unknown][] = [
      ['12345678901234567891', '12345678901234567891'],
      ['1e400', '1e400'],
      ['Infinity', 'Infinity'],
      ['0x10', '0x10'],
      ['0.1000000000000000055511151231257827', '0.1000000000000000055511151231257827'],
      ['42', 42],
      ['-0', 0],
      ['2.50', 2.5],
    ];
    for (const [cell, exported] of cases) {
      expect(layout.toRecord([cell, cell]), cell).to.deep.equal({ id: exported, amount: exported });
      const batch = { rule: 'r', datasource: 'd', runId: 'x', matchedAt: '2026-01-01T00:00:00Z', layout, rows: [[cell, cell]] };
      expect(JSON.parse(toNdjsonPieces(batch, false).join('')), cell).to.deep.equal({ id: exported, amount: exported });
    }
  });
});

describe('an invalid Date (pg-types gives one for a timestamp past year 275760)', () => {
  it('has no text for a string operator, and keys deduplication as null, without throwing', () => {
    expect(toText(new Date(Number.NaN))).to.equal(undefined);
    expect(toText(new Date(0))).to.equal('1970-01-01T00:00:00.000Z');
    const key = dedupKeyOf(['at'], 'db', OBJECT_LAYOUT);
    expect(key({ at: new Date(Number.NaN) })).to.equal(key({ at: null }));
  });
});
