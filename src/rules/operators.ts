import { RE2JS } from 're2js';
import { decimalText, exactTie, mayDifferPastDouble, toBoolean, toEpochMillis, toNumber, toText } from './coerce.js';
import { DURATION_HINT, parseDuration } from './duration.js';
import type { EvaluationContext } from './context.js';
import { FALSE, TRUE, UNKNOWN, negate, truth, type Truth } from './truth.js';

/** Tests one present (not null, not empty) field value. */
export type ValueTest = (value: unknown, ctx: EvaluationContext) => Truth;

export interface PreparedTest {
  readonly test: ValueTest;
  /** What a missing, null or empty field yields: UNKNOWN for every operator but the null checks. */
  readonly onAbsent: Truth;
}

/**
 * An operator is data: its name, what its value must look like, and how to turn that value
 * into a test once per config load. `prepare` returns a message (in the user's words) when the
 * rule's value does not fit, which the config loader reports with the value's position.
 */
export interface OperatorSpec {
  readonly name: string;
  readonly summary: string;
  /** What `value` must be, as said in an error message: "a number or a timestamp". */
  readonly expects: string;
  /** A leaf condition using the operator, for docs and examples. */
  readonly example: { field: string; operator: string; value?: unknown };
  prepare(value: unknown): PreparedTest | string;
}

const unknownWhenAbsent = (test: ValueTest): PreparedTest => ({ test, onAbsent: UNKNOWN });

function describe(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

// ---- comparisons on numbers or instants ------------------------------------------------

type Compare = (a: number, b: number) => boolean;

/** A threshold that is a number compares numerically; one that is a timestamp compares instants. */
function orderedOperator(name: string, summary: string, compare: Compare, example: unknown): OperatorSpec {
  return {
    name,
    summary,
    expects: 'a number or a timestamp',
    example: { field: 'value', operator: name, value: example },
    prepare(value) {
      const threshold = toNumber(value);
      if (threshold !== undefined && typeof value !== 'boolean') {
        const exact = decimalText(value);
        const thresholdMayDiffer = mayDifferPastDouble(value, threshold);
        return unknownWhenAbsent((v) => {
          const n = toNumber(v);
          if (n === undefined) return UNKNOWN;
          // Equal doubles may be unequal decimals (a numeric past 16 digits): then the decimals decide.
          return truth(n === threshold ? compare(exactTie(v, n, exact, thresholdMayDiffer), 0) : compare(n, threshold));
        });
      }
      const instant = typeof value === 'string' ? toEpochMillis(value) : undefined;
      if (instant !== undefined) {
        return unknownWhenAbsent((v) => {
          const t = toEpochMillis(v);
          return t === undefined ? UNKNOWN : truth(compare(t, instant));
        });
      }
      return `${name} needs a number or a timestamp as value, got ${describe(value)}`;
    },
  };
}

const between: OperatorSpec = {
  name: 'between',
  summary: 'Inclusive range: low <= field <= high (numbers or timestamps).',
  expects: 'a list [low, high] of two numbers or two timestamps',
  example: { field: 'value', operator: 'between', value: [100, 500] },
  prepare(value) {
    if (!Array.isArray(value) || value.length !== 2) {
      return `between needs a list [low, high], got ${describe(value)}`;
    }
    const [lo, hi] = value.map(toNumber);
    if (lo !== undefined && hi !== undefined) {
      if (lo > hi) return `between needs low <= high, got [${lo}, ${hi}]; swap them`;
      const [loText, hiText] = value.map(decimalText);
      const loMayDiffer = mayDifferPastDouble(value[0], lo);
      const hiMayDiffer = mayDifferPastDouble(value[1], hi);
      return unknownWhenAbsent((v) => {
        const n = toNumber(v);
        if (n === undefined) return UNKNOWN;
        const aboveLow = n === lo ? exactTie(v, n, loText, loMayDiffer) >= 0 : n > lo;
        const belowHigh = n === hi ? exactTie(v, n, hiText, hiMayDiffer) <= 0 : n < hi;
        return truth(aboveLow && belowHigh);
      });
    }
    const [tlo, thi] = value.map((x) => (typeof x === 'string' ? toEpochMillis(x) : undefined));
    if (tlo !== undefined && thi !== undefined) {
      if (tlo > thi) return `between needs the earlier timestamp first, got ${describe(value)}`;
      return unknownWhenAbsent((v) => {
        const t = toEpochMillis(v);
        return t === undefined ? UNKNOWN : truth(t >= tlo && t <= thi);
      });
    }
    return `between needs two numbers or two timestamps, got ${describe(value)}`;
  },
};

// ---- equality and membership -----------------------------------------------------------

/** equals on a number compares numerically ("1000.0" equals 1000); on a string, exactly. */
function prepareEquality(value: unknown): ValueTest | string {
  if (typeof value === 'number') {
    const exact = decimalText(value);
    const valueMayDiffer = mayDifferPastDouble(value, value);
    return (v) => {
      const n = toNumber(v);
      return n === undefined ? UNKNOWN : truth(n === value && exactTie(v, n, exact, valueMayDiffer) === 0);
    };
  }
  if (typeof value === 'string') {
    return (v) => {
      const text = toText(v);
      return text === undefined ? UNKNOWN : truth(text === value);
    };
  }
  if (typeof value === 'boolean') {
    return (v) => {
      const b = toBoolean(v);
      return b === undefined ? UNKNOWN : truth(b === value);
    };
  }
  if (value === null || value === undefined) return 'to test for a missing value use operator is_null';
  return `needs a number, a string or a boolean as value, got ${describe(value)}`;
}

const equals: OperatorSpec = {
  name: 'equals',
  summary: 'Equal: numerically when the value is a number ("1000.0" equals 1000), exactly when it is a string, as true/false (also yes/no, 1/0, on/off) when it is a boolean.',
  expects: 'a number, a string or a boolean',
  example: { field: 'status', operator: 'equals', value: 'active' },
  prepare(value) {
    const test = prepareEquality(value);
    return typeof test === 'string' ? `equals ${test}` : unknownWhenAbsent(test);
  },
};

const notEquals: OperatorSpec = {
  name: 'not_equals',
  summary: 'Not equal, with the same comparison as equals. A missing field does not match.',
  expects: 'a number, a string or a boolean',
  example: { field: 'status', operator: 'not_equals', value: 'ok' },
  prepare(value) {
    const test = prepareEquality(value);
    if (typeof test === 'string') return `not_equals ${test.replace('is_null', 'is_not_null')}`;
    return unknownWhenAbsent((v, ctx) => negate(test(v, ctx)));
  },
};

/**
 * Membership: the OR of equals over the items, in three-valued logic. TRUE when the value equals
 * one item; otherwise UNKNOWN when some item's comparison is undecided (the value "abc" against
 * an item 5), FALSE only when every item says no. not_in is its negation, so adding an item to
 * not_in can never make more records match. Items are grouped by type so each of the value's
 * readings (text, number, boolean) is made once, not once per item.
 */
function prepareMembership(name: string, value: unknown): ValueTest | string {
  if (!Array.isArray(value) || value.length === 0) {
    return `${name} needs a non-empty list of values, got ${describe(value)}`;
  }
  const texts = new Set<string>();
  const numbers = new Set<number>();
  const booleans = new Set<boolean>();
  for (const item of value) {
    if (typeof item === 'string') texts.add(item);
    else if (typeof item === 'number') numbers.add(item);
    else if (typeof item === 'boolean') booleans.add(item);
    else return `${name} takes numbers, strings and booleans only, got ${describe(item)} in the list`;
  }
  const hasTexts = texts.size > 0;
  const hasNumbers = numbers.size > 0;
  const hasBooleans = booleans.size > 0;
  return (v) => {
    let undecided = false;
    if (hasTexts) {
      const text = toText(v);
      if (text === undefined) undecided = true;
      else if (texts.has(text)) return TRUE;
    }
    if (hasNumbers) {
      const n = toNumber(v);
      if (n === undefined) undecided = true;
      else if (numbers.has(n) && exactTie(v, n, decimalText(n), false) === 0) return TRUE;
    }
    if (hasBooleans) {
      const b = toBoolean(v);
      if (b === undefined) undecided = true;
      else if (booleans.has(b)) return TRUE;
    }
    return undecided ? UNKNOWN : FALSE;
  };
}

const inList: OperatorSpec = {
  name: 'in',
  summary: 'The field equals one of the listed values.',
  expects: 'a list of values',
  example: { field: 'status', operator: 'in', value: ['error', 'critical'] },
  prepare(value) {
    const test = prepareMembership('in', value);
    return typeof test === 'string' ? test : unknownWhenAbsent(test);
  },
};

const notInList: OperatorSpec = {
  name: 'not_in',
  summary: 'The field equals none of the listed values. A missing field does not match.',
  expects: 'a list of values',
  example: { field: 'region', operator: 'not_in', value: ['test', 'staging'] },
  prepare(value) {
    const test = prepareMembership('not_in', value);
    return typeof test === 'string' ? test : unknownWhenAbsent((v, ctx) => negate(test(v, ctx)));
  },
};

// ---- text ------------------------------------------------------------------------------

function textOperator(
  name: string,
  summary: string,
  check: (text: string, needle: string) => boolean,
  example: string,
): OperatorSpec {
  return {
    name,
    summary,
    expects: 'a string',
    example: { field: 'message', operator: name, value: example },
    prepare(value) {
      if (typeof value !== 'string' && typeof value !== 'number') {
        return `${name} needs a string as value, got ${describe(value)}`;
      }
      const needle = String(value);
      return unknownWhenAbsent((v) => {
        const text = toText(v);
        return text === undefined ? UNKNOWN : truth(check(text, needle));
      });
    },
  };
}

const contains: OperatorSpec = {
  name: 'contains',
  summary: 'The field, as text, contains the value; on a list field, one item equals the value.',
  expects: 'a string',
  example: { field: 'message', operator: 'contains', value: 'timeout' },
  prepare(value) {
    if (typeof value !== 'string' && typeof value !== 'number') {
      return `contains needs a string as value, got ${describe(value)}`;
    }
    const needle = String(value);
    return unknownWhenAbsent((v) => {
      if (Array.isArray(v)) return truth(v.some((item) => toText(item) === needle));
      const text = toText(v);
      return text === undefined ? UNKNOWN : truth(text.includes(needle));
    });
  },
};

/**
 * "^err" or, to pass flags, "/^err/i". Patterns run on RE2 (re2js), which matches in time linear
 * in the text: a backtracking engine can spend hours on `(a+)+$` against a long line, and while
 * it does, the process ignores signals. RE2 has no lookaround or backreferences, so patterns
 * using them are refused with a message that names the construct. Flags: i, m and s; u is
 * accepted (RE2 always matches by code point); g, y and d are dropped (they change how a match
 * is reported, not whether there is one); any other flag is refused.
 * Throws an Error whose message says what is wrong, in the user's words.
 */
export function compileRegex(pattern: string): RE2JS {
  const literal = /^\/(.*)\/([a-z]*)$/s.exec(pattern);
  const source = literal ? literal[1]! : pattern;
  let flags = 0;
  for (const flag of literal ? literal[2]! : '') {
    if (flag === 'i') flags |= RE2JS.CASE_INSENSITIVE;
    else if (flag === 'm') flags |= RE2JS.MULTILINE;
    else if (flag === 's') flags |= RE2JS.DOTALL;
    else if (!'gyud'.includes(flag)) throw new Error(`flag "${flag}" is not supported; use i, m or s`);
  }
  const unsupported = unsupportedConstruct(source);
  if (unsupported) throw new Error(`${unsupported} is not supported (the linear-time engine, RE2, has no lookaround or backreferences)`);
  try {
    return RE2JS.compile(RE2JS.translateRegExp(source), flags);
  } catch (err) {
    throw new Error((err as Error).message.replace(/^error parsing regexp: /, ''));
  }
}

/** The first lookaround or backreference in a pattern, described, or undefined. */
function unsupportedConstruct(pattern: string): string | undefined {
  let inClass = false;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '\\') {
      const next = pattern[i + 1] ?? '';
      if (!inClass && next >= '1' && next <= '9') return `backreference "\\${next}"`;
      if (!inClass && next === 'k' && pattern[i + 2] === '<') return 'named backreference "\\k<...>"';
      i++;
    } else if (inClass) {
      if (c === ']') inClass = false;
    } else if (c === '[') {
      inClass = true;
      if (pattern[i + 1] === '^') i++;
      if (pattern[i + 1] === ']') i++; // a leading ] is a literal
    } else if (c === '(' && pattern[i + 1] === '?') {
      const kind = pattern.slice(i + 2, i + 4);
      if (kind[0] === '=') return 'lookahead "(?=...)"';
      if (kind[0] === '!') return 'negative lookahead "(?!...)"';
      if (kind === '<=') return 'lookbehind "(?<=...)"';
      if (kind === '<!') return 'negative lookbehind "(?<!...)"';
    }
  }
  return undefined;
}

const matches: OperatorSpec = {
  name: 'matches',
  summary: 'The field, as text, matches a regular expression ("/.../i" to pass flags). Runs in linear time (RE2): no lookaround or backreferences.',
  expects: 'a regular expression',
  example: { field: 'host', operator: 'matches', value: '^db-[0-9]+$' },
  prepare(value) {
    if (typeof value !== 'string') return `matches needs a regular expression as a string, got ${describe(value)}`;
    let re: RE2JS;
    try {
      re = compileRegex(value);
    } catch (err) {
      return `matches: invalid regular expression ${JSON.stringify(value)}: ${(err as Error).message}`;
    }
    return unknownWhenAbsent((v) => {
      const text = toText(v);
      return text === undefined ? UNKNOWN : truth(re.test(text));
    });
  },
};

// ---- presence --------------------------------------------------------------------------

function presenceOperator(name: string, summary: string, whenAbsent: Truth): OperatorSpec {
  const whenPresent = negate(whenAbsent);
  return {
    name,
    summary,
    expects: 'no value',
    example: { field: 'closed_at', operator: name },
    prepare(value) {
      if (value !== undefined && value !== null) return `${name} takes no value; remove value ${describe(value)}`;
      return { test: () => whenPresent, onAbsent: whenAbsent };
    },
  };
}

// ---- time windows ----------------------------------------------------------------------

function windowTest(windowMillis: number, inside: boolean): ValueTest {
  return (v, ctx) => {
    const t = toEpochMillis(v);
    if (t === undefined) return UNKNOWN;
    const isRecent = t >= ctx.now - windowMillis;
    return truth(isRecent === inside);
  };
}

const withinHours: OperatorSpec = {
  name: 'within_hours',
  summary: 'The timestamp is at or after now minus N hours (N may be fractional).',
  expects: 'a number of hours',
  example: { field: 'created_at', operator: 'within_hours', value: 24 },
  prepare(value) {
    const hours = toNumber(value);
    if (hours === undefined || hours <= 0) return `within_hours needs a positive number of hours, got ${describe(value)}`;
    return unknownWhenAbsent(windowTest(hours * 3_600_000, true));
  },
};

/** A window given as a duration: `inside` true for "within", false for "older than". */
function durationWindow(name: string, summary: string, inside: boolean, example: { field: string; value: string }): OperatorSpec {
  return {
    name,
    summary,
    expects: DURATION_HINT,
    example: { field: example.field, operator: name, value: example.value },
    prepare(value) {
      const ms = parseDuration(value);
      if (ms === undefined || ms <= 0) return `${name} needs ${DURATION_HINT}, got ${describe(value)}`;
      return unknownWhenAbsent(windowTest(ms, inside));
    },
  };
}

const within = durationWindow(
  'within',
  'The timestamp is at or after now minus the duration ("within the last hour").',
  true,
  { field: 'created_at', value: '1h' },
);

const olderThan = durationWindow(
  'older_than',
  'The timestamp is before now minus the duration ("not seen for 30 minutes").',
  false,
  { field: 'last_seen', value: '30m' },
);

/** Every operator, in the order the docs list them. Adding one is adding an entry here. */
export const OPERATORS: readonly OperatorSpec[] = [
  orderedOperator('greater_than', 'field > value', (a, b) => a > b, 1000),
  orderedOperator('greater_than_or_equal', 'field >= value', (a, b) => a >= b, 1000),
  orderedOperator('less_than', 'field < value', (a, b) => a < b, 10),
  orderedOperator('less_than_or_equal', 'field <= value', (a, b) => a <= b, 10),
  equals,
  notEquals,
  between,
  inList,
  notInList,
  contains,
  textOperator('starts_with', 'The field, as text, starts with the value.', (t, n) => t.startsWith(n), 'db-'),
  textOperator('ends_with', 'The field, as text, ends with the value.', (t, n) => t.endsWith(n), '.internal'),
  matches,
  presenceOperator('is_null', 'The field is missing, null or empty.', TRUE),
  presenceOperator('is_not_null', 'The field is present and not empty.', FALSE),
  withinHours,
  within,
  olderThan,
];

export const OPERATOR_NAMES: readonly string[] = OPERATORS.map((op) => op.name);

const BY_NAME = new Map(OPERATORS.map((op) => [op.name, op]));

export function findOperator(name: string): OperatorSpec | undefined {
  return BY_NAME.get(name);
}

