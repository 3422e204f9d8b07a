import { expect } from 'chai';
import fc from 'fast-check';
import { toEpochMillis } from '../../src/rules/coerce.js';

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
