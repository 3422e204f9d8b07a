import { expect } from 'chai';
import fc from 'fast-check';
import { bindPredicate, prepareCondition, type RuleIssue } from '../../src/rules/compile.js';
import { OBJECT_LAYOUT } from '../../src/records/layout.js';
import { compareDecimals } from '../../src/rules/coerce.js';
import { FALSE, TRUE, UNKNOWN, type Truth } from '../../src/rules/truth.js';

function check(operator: string, value: unknown, fieldValue: unknown): Truth {
  const issues: RuleIssue[] = [];
  const node = prepareCondition({ field: 'x', operator, value }, ['c'], issues);
  if (!node) throw new Error(issues.map((i) => i.message).join('; '));
  return bindPredicate(node, (f) => OBJECT_LAYOUT.accessor(f))({ x: fieldValue }, { now: 0 });
}

/** A decimal as an integer count of 10^-40, so two decimals compare exactly as bigints (the reference). */
function scaled(text: string): bigint {
  const [mantissa, exp = '0'] = text.trim().toLowerCase().split('e');
  const negative = mantissa!.startsWith('-');
  const unsigned = mantissa!.replace(/^[+-]/, '');
  const [whole, fraction = ''] = unsigned.split('.');
  const shift = 40 + Number(exp) - fraction.length;
  const digits = BigInt((whole || '0') + fraction || '0');
  const value = shift >= 0 ? digits * 10n ** BigInt(shift) : digits / 10n ** BigInt(-shift);
  return negative ? -value : value;
}

describe('exact decimal comparison (numbers past what a double holds)', () => {
  it('compares decimals exactly, whatever their notation', () => {
    expect(compareDecimals('12345678901234567890.123', '12345678901234567890')).to.equal(1);
    expect(compareDecimals('12345678901234567891', '12345678901234567890')).to.equal(1);
    expect(compareDecimals('-12345678901234567891', '-12345678901234567890')).to.equal(-1);
    expect(compareDecimals('0012.3400', '1.234e1')).to.equal(0);
    expect(compareDecimals('0', '-0.000')).to.equal(0);
    expect(compareDecimals('1e400', '2e400')).to.equal(-1);
    expect(compareDecimals('-1e-400', '0')).to.equal(-1);
    expect(compareDecimals('0.1000000000000000055511151231257827', '0.1')).to.equal(1);
  });

  it('agrees with an exact bigint reference on random long decimals', () => {
    const digits = fc.stringMatching(/^[0-9]{1,25}$/);
    const decimal = fc.tuple(fc.boolean(), digits, fc.option(fc.stringMatching(/^[0-9]{1,12}$/), { nil: undefined })).map(
      ([neg, whole, fraction]) => `${neg ? '-' : ''}${whole}${fraction === undefined ? '' : '.' + fraction}`,
    );
    fc.assert(
      fc.property(decimal, decimal, (a, b) => {
        const want = scaled(a) === scaled(b) ? 0 : scaled(a) < scaled(b) ? -1 : 1;
        expect(compareDecimals(a, b), `${a} vs ${b}`).to.equal(want);
      }),
      { numRuns: 2000 },
    );
  });

  it('rules decide ties of the nearest double by the exact decimals', () => {
    // Both read as the double 12345678901234567168.
    expect(check('greater_than', '12345678901234567890', '12345678901234567890.123')).to.equal(TRUE);
    expect(check('greater_than', '12345678901234567890', '12345678901234567890')).to.equal(FALSE);
    expect(check('greater_than_or_equal', '12345678901234567890', '12345678901234567890')).to.equal(TRUE);
    expect(check('less_than', '12345678901234567891', '12345678901234567890')).to.equal(TRUE);
    expect(check('less_than_or_equal', '12345678901234567890', '12345678901234567890.001')).to.equal(FALSE);
    expect(check('between', ['12345678901234567890.1', '12345678901234567890.2'], '12345678901234567890.123')).to.equal(TRUE);
    expect(check('between', ['12345678901234567890.1', '12345678901234567890.2'], '12345678901234567890.3')).to.equal(FALSE);
    expect(check('equals', 9007199254740992, '9007199254740993')).to.equal(FALSE);
    expect(check('equals', 9007199254740992, '9007199254740992')).to.equal(TRUE);
    expect(check('equals', 9007199254740992, 9007199254740993n)).to.equal(FALSE);
    expect(check('in', [9007199254740992], '9007199254740993')).to.equal(FALSE);
    expect(check('not_in', [9007199254740992], '9007199254740993')).to.equal(TRUE);
    expect(check('greater_than', '1e400', '2e400')).to.equal(TRUE);
  });

  it('leaves ordinary comparisons as they were', () => {
    expect(check('greater_than', 1000, '1000.5')).to.equal(TRUE);
    expect(check('equals', 1000, '1000.0')).to.equal(TRUE);
    expect(check('equals', 0.1, '0.1')).to.equal(TRUE);
    expect(check('greater_than', 10, 'n/a')).to.equal(UNKNOWN);
    expect(check('in', [1, 2], '2.0')).to.equal(TRUE);
  });
});
