import { expect } from 'chai';
import fc from 'fast-check';
import { bindPredicate, prepareCondition, type RuleIssue } from '../../src/rules/compile.js';
import { OBJECT_LAYOUT } from '../../src/records/layout.js';
import { OPERATOR_NAMES } from '../../src/rules/operators.js';
import { FALSE, TRUE, UNKNOWN, type Truth } from '../../src/rules/truth.js';

const NOW = Date.parse('2026-11-24T12:00:00Z');

/** Evaluates `{field: 'x', operator, value}` against a record whose x is `fieldValue` (absent when undefined). */
function check(operator: string, value: unknown, fieldValue: unknown, now = NOW): Truth {
  const issues: RuleIssue[] = [];
  const node = prepareCondition({ field: 'x', operator, value }, ['c'], { now }, issues);
  if (!node) throw new Error(issues.map((i) => i.message).join('; '));
  const row = fieldValue === undefined ? {} : { x: fieldValue };
  return bindPredicate(node, (f) => OBJECT_LAYOUT.accessor(f))(row);
}

function configError(operator: string, value: unknown): string {
  const issues: RuleIssue[] = [];
  const node = prepareCondition({ field: 'x', operator, value }, ['c'], { now: NOW }, issues);
  expect(node, `expected ${operator} ${JSON.stringify(value)} to be refused`).to.equal(undefined);
  return issues.map((i) => i.message).join('; ');
}

describe('operators', () => {
  it('lists every operator the docs promise', () => {
    expect(OPERATOR_NAMES).to.have.members([
      'greater_than', 'greater_than_or_equal', 'less_than', 'less_than_or_equal', 'equals', 'not_equals', 'between',
      'in', 'not_in', 'contains', 'starts_with', 'ends_with', 'matches', 'is_null', 'is_not_null',
      'within_hours', 'within', 'older_than',
    ]);
  });

  describe('numeric comparisons', () => {
    it('compare numbers and numeric strings alike', () => {
      expect(check('greater_than', 1000, 1000.5)).to.equal(TRUE);
      expect(check('greater_than', 1000, '1000.5')).to.equal(TRUE);
      expect(check('greater_than', 1000, ' 1001 ')).to.equal(TRUE);
      expect(check('greater_than', 1000, 1000)).to.equal(FALSE);
      expect(check('greater_than_or_equal', 1000, '1000')).to.equal(TRUE);
      expect(check('less_than', 10, '9.99')).to.equal(TRUE);
      expect(check('less_than', 10, 10)).to.equal(FALSE);
      expect(check('less_than_or_equal', 10, '1e1')).to.equal(TRUE);
      expect(check('greater_than', '1000', 1500)).to.equal(TRUE);
      expect(check('less_than', 0, -3)).to.equal(TRUE);
    });

    it('do not match a value that is not a number, and say it is undecidable', () => {
      expect(check('greater_than', 1000, 'n/a')).to.equal(UNKNOWN);
      expect(check('less_than', 1000, 'n/a')).to.equal(UNKNOWN);
      expect(check('greater_than', 1000, true)).to.equal(UNKNOWN);
      expect(check('greater_than', 1000, { a: 1 })).to.equal(UNKNOWN);
      expect(check('less_than', 10, '   ')).to.equal(UNKNOWN);
    });

    it('treat missing, null and empty as undecidable, never as zero', () => {
      expect(check('less_than', 10, undefined)).to.equal(UNKNOWN);
      expect(check('less_than', 10, null)).to.equal(UNKNOWN);
      expect(check('less_than', 10, '')).to.equal(UNKNOWN);
    });

    it('compare instants when the threshold is a timestamp', () => {
      expect(check('greater_than', '2026-01-01', '2026-06-01T00:00:00Z')).to.equal(TRUE);
      expect(check('less_than', '2026-01-01T00:00:00+01:00', '2025-12-31T23:30:00Z')).to.equal(FALSE);
      expect(check('less_than', '2026-01-01T00:00:00+01:00', '2025-12-31T22:59:59Z')).to.equal(TRUE);
      expect(check('greater_than', '2026-01-01', 'yesterday')).to.equal(UNKNOWN);
    });

    it('refuse a threshold that is neither number nor timestamp', () => {
      expect(configError('greater_than', 'high')).to.match(/greater_than needs a number or a timestamp/);
      expect(configError('less_than', [1])).to.match(/needs a number or a timestamp/);
    });
  });

  describe('between', () => {
    it('is inclusive at both ends', () => {
      expect(check('between', [10, 20], 10)).to.equal(TRUE);
      expect(check('between', [10, 20], '20')).to.equal(TRUE);
      expect(check('between', [10, 20], 20.0001)).to.equal(FALSE);
      expect(check('between', [10, 20], 9.99)).to.equal(FALSE);
      expect(check('between', [10, 20], 'x')).to.equal(UNKNOWN);
    });

    it('works on timestamps', () => {
      expect(check('between', ['2026-11-01', '2026-11-30'], '2026-11-24T08:00:00Z')).to.equal(TRUE);
      expect(check('between', ['2026-11-01', '2026-11-30'], '2026-12-01')).to.equal(FALSE);
    });

    it('needs [low, high] in order', () => {
      expect(configError('between', 5)).to.match(/needs a list \[low, high\]/);
      expect(configError('between', [1, 2, 3])).to.match(/needs a list \[low, high\]/);
      expect(configError('between', [20, 10])).to.match(/low <= high/);
      expect(configError('between', ['a', 'b'])).to.match(/two numbers or two timestamps/);
    });
  });

  describe('equals and not_equals', () => {
    it('compare numerically when the value is a number', () => {
      expect(check('equals', 1000, '1000.0')).to.equal(TRUE);
      expect(check('equals', 1000, 1000)).to.equal(TRUE);
      expect(check('equals', 1000, '1e3')).to.equal(TRUE);
      expect(check('equals', 1000, '1000.1')).to.equal(FALSE);
      expect(check('equals', 1000, 'abc')).to.equal(UNKNOWN);
    });

    it('compare exactly when the value is a string', () => {
      expect(check('equals', 'active', 'active')).to.equal(TRUE);
      expect(check('equals', 'active', 'Active')).to.equal(FALSE);
      expect(check('equals', 'active', 'active ')).to.equal(FALSE);
      expect(check('equals', '1000', '1000.0')).to.equal(FALSE);
      expect(check('equals', '1000', 1000)).to.equal(TRUE);
    });

    it('compare booleans with their usual spellings', () => {
      expect(check('equals', true, 'true')).to.equal(TRUE);
      expect(check('equals', true, 'YES')).to.equal(TRUE);
      expect(check('equals', false, 0)).to.equal(TRUE);
      expect(check('equals', true, 'maybe')).to.equal(UNKNOWN);
    });

    it('not_equals negates, but a missing field still does not match', () => {
      expect(check('not_equals', 'ok', 'error')).to.equal(TRUE);
      expect(check('not_equals', 'ok', 'ok')).to.equal(FALSE);
      expect(check('not_equals', 5, '5.0')).to.equal(FALSE);
      expect(check('not_equals', 'ok', undefined)).to.equal(UNKNOWN);
      expect(check('not_equals', 'ok', null)).to.equal(UNKNOWN);
    });

    it('point to is_null for a null value', () => {
      expect(configError('equals', null)).to.match(/is_null/);
      expect(configError('not_equals', null)).to.match(/is_not_null/);
    });
  });

  describe('in and not_in', () => {
    it('test membership with equals semantics for each item', () => {
      expect(check('in', ['error', 'critical'], 'error')).to.equal(TRUE);
      expect(check('in', ['error', 'critical'], 'ok')).to.equal(FALSE);
      expect(check('in', [1, 2, 3], '2.0')).to.equal(TRUE);
      expect(check('in', [1, 2, 3], 4)).to.equal(FALSE);
      expect(check('in', ['1'], 1)).to.equal(TRUE);
      expect(check('in', [true], 'yes')).to.equal(TRUE);
      expect(check('in', ['a'], undefined)).to.equal(UNKNOWN);
    });

    it('not_in is the complement for present values only', () => {
      expect(check('not_in', ['test', 'staging'], 'prod')).to.equal(TRUE);
      expect(check('not_in', ['test', 'staging'], 'test')).to.equal(FALSE);
      expect(check('not_in', ['test'], '')).to.equal(UNKNOWN);
    });

    it('a list of numbers compares numerically: a value that is no number is undecided, as with equals', () => {
      expect(check('not_in', [5], 'n/a')).to.equal(UNKNOWN);
      expect(check('in', [5], 'n/a')).to.equal(UNKNOWN);
      expect(check('not_in', [5], '6')).to.equal(TRUE);
      expect(check('not_in', [5], '5.0')).to.equal(FALSE);
    });

    it('need a non-empty list of scalars', () => {
      expect(configError('in', 'error')).to.match(/non-empty list/);
      expect(configError('in', [])).to.match(/non-empty list/);
      expect(configError('not_in', [{ a: 1 }])).to.match(/numbers, strings and booleans only/);
    });
  });

  describe('text operators', () => {
    it('contains tests a substring of the value as text, or an item of a list', () => {
      expect(check('contains', 'timeout', 'sensor timeout after 30s')).to.equal(TRUE);
      expect(check('contains', 'timeout', 'Timeout')).to.equal(FALSE);
      expect(check('contains', '00', 1005)).to.equal(TRUE);
      expect(check('contains', 'b', ['a', 'b'])).to.equal(TRUE);
      expect(check('contains', 'c', ['a', 'b'])).to.equal(FALSE);
      expect(check('contains', 'x', undefined)).to.equal(UNKNOWN);
    });

    it('starts_with and ends_with', () => {
      expect(check('starts_with', 'db-', 'db-17')).to.equal(TRUE);
      expect(check('starts_with', 'db-', 'web-1')).to.equal(FALSE);
      expect(check('ends_with', '.internal', 'a.internal')).to.equal(TRUE);
      expect(check('ends_with', '.internal', 'a.com')).to.equal(FALSE);
    });

    it('matches a regular expression, with flags in /.../ form', () => {
      expect(check('matches', '^db-[0-9]+$', 'db-42')).to.equal(TRUE);
      expect(check('matches', '^db-[0-9]+$', 'db-x')).to.equal(FALSE);
      expect(check('matches', '/TIMEOUT/i', 'a timeout')).to.equal(TRUE);
      expect(check('matches', 'TIMEOUT', 'a timeout')).to.equal(FALSE);
    });

    it('a global flag does not make matches stateful across records', () => {
      expect(check('matches', '/a/g', 'a')).to.equal(TRUE);
      expect(check('matches', '/a/g', 'a')).to.equal(TRUE);
    });

    it('an invalid regular expression is a config error', () => {
      expect(configError('matches', '([a-z')).to.match(/invalid regular expression/);
    });

    it('a pattern that backtracks exponentially in V8 runs in linear time, and does not match', () => {
      expect(check('matches', '(a+)+$', 'a'.repeat(50_000) + 'b')).to.equal(FALSE);
      expect(check('matches', '(a+)+$', 'a'.repeat(50_000))).to.equal(TRUE);
      expect(check('matches', '/^(\\w+\\s?)*$/i', 'An input that is long enough to hang a backtracking engine!')).to.equal(FALSE);
    });

    it('lookaround and backreferences are config errors naming what is unsupported', () => {
      expect(configError('matches', 'db(?=-[0-9])')).to.match(/matches: .*lookahead "\(\?=\.\.\.\)" is not supported/);
      expect(configError('matches', '/db(?!-test)/i')).to.match(/negative lookahead/);
      expect(configError('matches', '(?<=db-)[0-9]+')).to.match(/lookbehind "\(\?<=/);
      expect(configError('matches', '(?<!x)y')).to.match(/negative lookbehind/);
      expect(configError('matches', '(a)\\1')).to.match(/backreference "\\1"/);
      expect(configError('matches', '(?<q>a)\\k<q>')).to.match(/named backreference/);
      // Inside a class or escaped, the same characters are literals.
      expect(check('matches', '[(?=]', '=')).to.equal(TRUE);
      expect(check('matches', '\\(\\?=', '(?=')).to.equal(TRUE);
    });

    it('flags: i, m and s work; g, y, d and u are accepted; others are config errors', () => {
      expect(check('matches', '/^b$/m', 'a\nb')).to.equal(TRUE);
      expect(check('matches', '/^b$/', 'a\nb')).to.equal(FALSE);
      expect(check('matches', '/a.b/s', 'a\nb')).to.equal(TRUE);
      expect(check('matches', '/a.b/', 'a\nb')).to.equal(FALSE);
      expect(check('matches', '/A/gyud', 'a')).to.equal(FALSE);
      expect(configError('matches', '/a/v')).to.match(/flag "v" is not supported; use i, m or s/);
      expect(configError('matches', '/a/x')).to.match(/flag "x" is not supported/);
    });

    it('JavaScript escapes and named groups keep working', () => {
      expect(check('matches', '^\\u0041\\x42\\d\\/$', 'AB1/')).to.equal(TRUE);
      expect(check('matches', '^(?<site>[a-z]+)-[0-9]+$', 'paris-1')).to.equal(TRUE);
      expect(check('matches', '\\bdb\\b', 'a db here')).to.equal(TRUE);
    });
  });

  describe('is_null and is_not_null', () => {
    it('treat missing, null and empty as null', () => {
      for (const v of [undefined, null, '']) {
        expect(check('is_null', undefined, v)).to.equal(TRUE);
        expect(check('is_not_null', undefined, v)).to.equal(FALSE);
      }
      for (const v of [0, 'x', false, ' ']) {
        expect(check('is_null', undefined, v)).to.equal(FALSE);
        expect(check('is_not_null', undefined, v)).to.equal(TRUE);
      }
    });

    it('take no value', () => {
      expect(configError('is_null', 5)).to.match(/takes no value/);
    });
  });

  describe('time windows', () => {
    it('within_hours: at or after now minus N hours', () => {
      expect(check('within_hours', 1, '2026-11-24T11:30:00Z')).to.equal(TRUE);
      expect(check('within_hours', 1, '2026-11-24T11:00:00Z')).to.equal(TRUE);
      expect(check('within_hours', 1, '2026-11-24T10:59:59Z')).to.equal(FALSE);
      expect(check('within_hours', 0.5, '2026-11-24T11:45:00Z')).to.equal(TRUE);
      expect(check('within_hours', 24, 'not a date')).to.equal(UNKNOWN);
    });

    it('within: a duration', () => {
      expect(check('within', '15m', '2026-11-24T11:50:00Z')).to.equal(TRUE);
      expect(check('within', '15m', '2026-11-24T11:40:00Z')).to.equal(FALSE);
      expect(check('within', '30s', NOW - 10_000)).to.equal(TRUE);
      expect(check('within', '7d', new Date(NOW - 6 * 86_400_000))).to.equal(TRUE);
      expect(check('within', '1h30m', '2026-11-24T10:31:00Z')).to.equal(TRUE);
    });

    it('older_than: before now minus the duration', () => {
      expect(check('older_than', '30m', '2026-11-24T11:00:00Z')).to.equal(TRUE);
      expect(check('older_than', '30m', '2026-11-24T11:45:00Z')).to.equal(FALSE);
      expect(check('older_than', '1h', undefined)).to.equal(UNKNOWN);
    });

    it('read timestamps in every supported form', () => {
      const inside = NOW - 60_000;
      const forms = [
        new Date(inside).toISOString(), // with zone
        new Date(inside).toISOString().replace('Z', ''), // no zone: UTC
        new Date(inside).toISOString().replace('T', ' ').replace('Z', ''), // space separator
        '2026-11-24T12:59:00+01:00', // offset
        Math.floor(inside / 1000), // epoch seconds
        String(Math.floor(inside / 1000)), // epoch seconds as text
        inside, // epoch milliseconds
        new Date(inside), // Date object
      ];
      for (const form of forms) expect(check('within', '5m', form), String(form)).to.equal(TRUE);
    });

    it('a timestamp without a zone is read as UTC', () => {
      expect(check('within', '1m', '2026-11-24T11:59:30')).to.equal(TRUE);
      expect(check('within', '1m', '2026-11-24T12:59:30+01:00')).to.equal(TRUE);
      expect(check('within', '1m', '2026-11-24T12:59:30+02:00')).to.equal(FALSE);
    });

    it('a number beyond the range of dates is not a timestamp', () => {
      expect(check('within', '1h', '99999999999999999')).to.equal(UNKNOWN);
      expect(check('within', '1h', Infinity)).to.equal(UNKNOWN);
      expect(check('older_than', '1h', 1e300)).to.equal(UNKNOWN);
    });

    it('an impossible date is not a timestamp', () => {
      expect(check('within', '1000d', '2026-02-31T00:00:00Z')).to.equal(UNKNOWN);
      expect(check('within', '1000d', '2026-11-24T25:00:00Z')).to.equal(UNKNOWN);
    });

    it('need a duration or a number of hours', () => {
      expect(configError('within', 60)).to.match(/duration such as "30s"/);
      expect(configError('within', '15 minutes')).to.match(/duration/);
      expect(configError('older_than', '-1h')).to.match(/duration/);
      expect(configError('within_hours', 'two')).to.match(/positive number of hours/);
    });
  });

  it('an unknown operator suggests the closest one', () => {
    expect(configError('greater_thn', 5)).to.match(/unknown operator "greater_thn"; did you mean "greater_than"\?/);
  });
});

describe('timestamp reading', () => {
  it('the fast path for the common shape agrees with the general parser', async () => {
    const { toEpochMillis } = await import('../../src/rules/coerce.js');
    const fc = (await import('fast-check')).default;
    const pad = (n: number, w: number) => String(n).padStart(w, '0');
    fc.assert(
      fc.property(
        fc.integer({ min: 1970, max: 2200 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }),
        fc.integer({ min: 0, max: 24 }), fc.integer({ min: 0, max: 60 }), fc.integer({ min: 0, max: 60 }),
        fc.constantFrom('', '.5', '.123', '.123456', '.1234567890'), fc.constantFrom('Z', '', 'z'), fc.constantFrom('T', ' '),
        (y, mo, d, h, mi, s, frac, zone, sep) => {
          const text = `${pad(y, 4)}-${pad(mo, 2)}-${pad(d, 2)}${sep}${pad(h, 2)}:${pad(mi, 2)}:${pad(s, 2)}${frac}${zone}`;
          const valid = frac.length <= 10 && mo >= 1 && mo <= 12 && d >= 1 && d <= new Date(Date.UTC(y, mo, 0)).getUTCDate() && h < 24 && mi < 60 && s < 60;
          const expected = valid ? Date.UTC(y, mo - 1, d, h, mi, s, frac ? Math.floor(Number('0' + frac) * 1000 + 1e-9) : 0) : undefined;
          expect(toEpochMillis(text), text).to.equal(expected);
          // The same instant with an explicit offset goes through the general parser.
          if (valid) expect(toEpochMillis(text.replace(/[Zz]?$/, '+00:00')), text).to.equal(expected);
        },
      ),
      { numRuns: 3000 },
    );
  });

  it('leap days and month ends', async () => {
    const { toEpochMillis } = await import('../../src/rules/coerce.js');
    expect(toEpochMillis('2024-02-29T00:00:00Z')).to.equal(Date.UTC(2024, 1, 29));
    expect(toEpochMillis('2023-02-29T00:00:00Z')).to.equal(undefined);
    expect(toEpochMillis('2000-02-29 12:00:00')).to.equal(Date.UTC(2000, 1, 29, 12));
    expect(toEpochMillis('1900-02-29T00:00:00Z')).to.equal(undefined);
    expect(toEpochMillis('2026-04-31T00:00:00Z')).to.equal(undefined);
    expect(toEpochMillis('2026-11-24T13:05:12.345Zjunk')).to.equal(undefined);
  });
});

describe('number reading', () => {
  it('the digit-by-digit path gives exactly what Number() gives on decimal notation, and other text is no number', async () => {
    const { toNumber } = await import('../../src/rules/coerce.js');
    const fc = (await import('fast-check')).default;
    const decimalText = fc
      .tuple(fc.constantFrom('', '-', '+'), fc.stringMatching(/^[0-9]{0,9}$/), fc.constantFrom('', '.'), fc.stringMatching(/^[0-9]{0,9}$/))
      .map(([sign, a, dot, b]) => sign + a + dot + b);
    fc.assert(
      fc.property(fc.oneof(decimalText, fc.double({ noNaN: true }).map(String), fc.string({ maxLength: 8 })), (text) => {
        // Number() also reads "0x10", "0b1", "Infinity"; those are not numbers here (see toNumber).
        const expected = /^\s*[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?\s*$/.test(text) ? Number(text) : undefined;
        expect(toNumber(text), JSON.stringify(text)).to.equal(expected);
      }),
      { numRuns: 20000 },
    );
    expect(toNumber('912.44')).to.equal(912.44);
    expect(toNumber('-0.1')).to.equal(-0.1);
    expect(toNumber('.5')).to.equal(0.5);
    expect(toNumber('5.')).to.equal(5);
    expect(toNumber('.')).to.equal(undefined);
    expect(toNumber('-')).to.equal(undefined);
    expect(toNumber('1.2.3')).to.equal(undefined);
    expect(toNumber('123456789012345.6')).to.equal(123456789012345.6);
  });
});

describe('in and not_in, as equals over the items', () => {
  const item = fc.oneof(
    fc.integer({ min: -3, max: 3 }),
    fc.constantFrom(0.5, -0, 1e3),
    fc.boolean(),
    fc.constantFrom('a', 'abc', '1', '1.0', '0', 'yes', 'no', 'true', 'false', '', ' 2 ', '1e3'),
  );
  const fieldValue = fc.oneof(item, fc.constantFrom(undefined, null, 'n/a', '0x1', [1], { a: 1 }, new Date(0)));

  /** OR over the items in three-valued logic. */
  function anyOf(truths: Truth[]): Truth {
    return truths.includes(TRUE) ? TRUE : truths.includes(UNKNOWN) ? UNKNOWN : FALSE;
  }
  function negated(t: Truth): Truth {
    return t === UNKNOWN ? UNKNOWN : t === TRUE ? FALSE : TRUE;
  }

  it('in is the OR of equals over the items, and not_in its negation', () => {
    fc.assert(
      fc.property(fc.array(item, { minLength: 1, maxLength: 5 }), fieldValue, (list, v) => {
        const expected = anyOf(list.map((i) => check('equals', i, v)));
        expect(check('in', list, v), `in ${JSON.stringify(list)} ${String(v)}`).to.equal(expected);
        expect(check('not_in', list, v), `not_in ${JSON.stringify(list)} ${String(v)}`).to.equal(negated(expected));
      }),
      { numRuns: 5000 },
    );
  });

  it('adding an item to not_in never makes more records match', () => {
    fc.assert(
      fc.property(fc.array(item, { minLength: 1, maxLength: 5 }), item, fieldValue, (list, extra, v) => {
        if (check('not_in', [...list, extra], v) === TRUE) expect(check('not_in', list, v)).to.equal(TRUE);
      }),
      { numRuns: 5000 },
    );
  });

  it('a value that cannot be compared to an item leaves not_in undecided, unless another item equals it', () => {
    expect(check('not_in', ['x', 5], 'abc')).to.equal(UNKNOWN);
    expect(check('not_in', ['abc', 5], 'abc')).to.equal(FALSE);
    expect(check('in', ['abc', 5], 'abc')).to.equal(TRUE);
    expect(check('not_in', [true], 'maybe')).to.equal(UNKNOWN);
    expect(check('not_in', [true, 'maybe'], 'maybe')).to.equal(FALSE);
    expect(check('not_in', ['x', 5], '6')).to.equal(TRUE);
  });
});
