/**
 * How record values become numbers and instants for comparison. Sources disagree on types
 * (CSV gives text, PostgreSQL gives numeric columns as strings, REST gives JSON), so every
 * comparison goes through these and a value that cannot be read returns undefined: the rule
 * then counts it as invalid instead of guessing.
 */
import { asciiDigits } from '../util/ascii-digits.js';

/**
 * What a number is, for every rule and for export: a number value (not NaN), a bigint, or text in
 * decimal notation: an optional sign, digits with an optional fraction ("12.5", ".5", "5."), an
 * optional exponent ("1e3", "2.5E-4"), and spaces around (" 7 "). Nothing else is a number,
 * though Number() reads some of it: "0x10", "0b101", "0o7", "Infinity", "NaN" and "1_000" are
 * text, so an id such as "0x10" neither compares as 16 nor becomes a timestamp in 1970.
 *
 * The result is the nearest double; a decimal beyond the double range reads as +/-Infinity
 * ("1e400" is above every threshold) and one below it as 0. Where two doubles tie, the rules
 * compare the decimals exactly (exactTie), so the 20-digit "12345678901234567891" is above
 * "12345678901234567890" and a PostgreSQL numeric is never rounded by a comparison. Export does
 * not round either: see exactNumber.
 */
export function toNumber(value: unknown): number | undefined {
  if (typeof value === 'number') return Number.isNaN(value) ? undefined : value;
  if (typeof value === 'string') {
    const plain = parsePlainDecimal(value);
    if (plain === plain) return plain;
    // Number('') and Number('  ') are 0, which would make blank cells match "< 10"; the pattern
    // refuses them, and the radix prefixes and words Number() would take.
    return DECIMAL_NOTATION.test(value) ? +value : undefined;
  }
  if (typeof value === 'bigint') return Number(value);
  return undefined;
}

/** Decimal notation with optional surrounding white space (the same \s that Number() trims). */
const DECIMAL_NOTATION = /^\s*[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?\s*$/;

/**
 * The number a text holds when writing that number back (as JSON does) gives the same decimal
 * value, so exporting it as a number rounds nothing; undefined otherwise, and then the text is
 * kept. Not exact: "1e400" (Infinity), "1e-400" (0), integers past 2^53 that a double cannot hold
 * ("12345678901234567891"), and fractions with more digits than a double keeps
 * ("0.1000000000000000055511151231257827"). "-0" is exported as 0: they are equal everywhere,
 * and JSON.stringify writes 0 for both.
 */
export function exactNumber(text: string): number | undefined {
  // Up to 15 significant digits, which is what a plain decimal here has, a double always prints back as written.
  const plain = parsePlainDecimal(text);
  if (plain === plain) return plain === 0 ? 0 : plain;
  const n = toNumber(text);
  if (n === undefined || !Number.isFinite(n)) return undefined;
  if (decimalKey(text.trim()) !== decimalKey(String(n))) return undefined;
  return n === 0 ? 0 : n;
}

/**
 * A decimal's value as its significant digits and the power of ten of the last one, so that
 * "0012.3400", "1.234e1" and "12.34" give the same key ("1234e-2"); every zero gives "0".
 * Only called on text that is decimal notation.
 */
function decimalKey(s: string): string {
  let i = 0;
  const negative = s[0] === '-';
  if (negative || s[0] === '+') i = 1;
  let digits = '';
  let exponent = 0;
  let inFraction = false;
  for (; i < s.length; i++) {
    const c = s[i]!;
    if (c === '.') inFraction = true;
    else if (c === 'e' || c === 'E') {
      exponent += parseInt(s.slice(i + 1), 10);
      break;
    } else {
      digits += c;
      if (inFraction) exponent--;
    }
  }
  let start = 0;
  while (start < digits.length && digits[start] === '0') start++;
  if (start === digits.length) return '0';
  let end = digits.length;
  while (digits[end - 1] === '0') {
    end--;
    exponent++;
  }
  return (negative ? '-' : '') + digits.slice(start, end) + 'e' + exponent;
}

const POWERS_OF_TEN = [1, 10, 100, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15];

/**
 * "-912.44" read digit by digit, or NaN when the text is not that plain shape (the caller then
 * checks the notation and uses Number()). With at most 15 digits both the digits and the power of ten are exact doubles,
 * and one division rounds correctly, so the result is the same as Number()'s, without the call
 * into the runtime that cost more than the comparison on CSV input.
 */
function parsePlainDecimal(s: string): number {
  const n = s.length;
  if (n > 16) return NaN;
  let i = 0;
  let negative = false;
  const first = s.charCodeAt(0);
  if (first === 45 || first === 43) {
    negative = first === 45;
    i = 1;
  }
  let mantissa = 0;
  let digitCount = 0;
  let decimals = -1;
  for (; i < n; i++) {
    const c = s.charCodeAt(i);
    if (c === 46 && decimals < 0) {
      decimals = 0;
      continue;
    }
    const d = c - 48;
    if (d < 0 || d > 9) return NaN;
    mantissa = mantissa * 10 + d;
    digitCount++;
    if (decimals >= 0) decimals++;
  }
  if (digitCount === 0 || digitCount > 15) return NaN;
  const value = decimals > 0 ? mantissa / POWERS_OF_TEN[decimals]! : mantissa;
  return negative ? -value : value;
}

/**
 * Epoch numbers below this are read as seconds, above as milliseconds: 1e11 seconds is the
 * year 5138, and 1e11 milliseconds is March 1973, so real data is never ambiguous.
 */
export const EPOCH_SECONDS_LIMIT = 1e11;

// Date, optional time with fraction, optional zone. A space may stand for the "T" because
// PostgreSQL and most CSV exports write timestamps that way.
const ISO_8601 =
  /^(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?)?\s*(Z|z|[+-]\d{2}(?::?\d{2})?)?$/;

/**
 * Milliseconds since the epoch, from an ISO 8601 string (a missing zone means UTC), epoch
 * seconds or milliseconds (as number or numeric string), or a Date. Undefined otherwise.
 */
export function toEpochMillis(value: unknown): number | undefined {
  return withinDateRange(readEpochMillis(value));
}

/** JavaScript dates end 8.64e15 ms either side of 1970; past that a value is not a timestamp. */
const MAX_EPOCH_MILLIS = 8.64e15;

function withinDateRange(ms: number | undefined): number | undefined {
  return ms !== undefined && Math.abs(ms) <= MAX_EPOCH_MILLIS ? ms : undefined;
}

function readEpochMillis(value: unknown): number | undefined {
  if (typeof value === 'string') return parseTimestampText(value);
  if (typeof value === 'number') return Number.isFinite(value) ? epochToMillis(value) : undefined;
  if (value instanceof Date) {
    const ms = value.getTime();
    return Number.isNaN(ms) ? undefined : ms;
  }
  if (typeof value === 'bigint') return epochToMillis(Number(value));
  return undefined;
}

function epochToMillis(n: number): number {
  return Math.abs(n) < EPOCH_SECONDS_LIMIT ? n * 1000 : n;
}

/**
 * The common shape, `2026-11-24T13:05:12.345Z` (or with a space, without fraction or zone), read
 * digit by digit: the regular expression and the Date it needed cost more than the rule itself
 * when a time window is checked on every row. Undefined means "not this shape", not "invalid".
 */
function parseCanonicalTimestamp(s: string): number | undefined {
  const n = s.length;
  if (n < 19 || n > 30) return undefined;
  const sep = s.charCodeAt(10);
  if (s.charCodeAt(4) !== 45 || s.charCodeAt(7) !== 45 || (sep !== 84 && sep !== 32) || s.charCodeAt(13) !== 58 || s.charCodeAt(16) !== 58) {
    return undefined;
  }
  const year = asciiDigits(s, 0, 4);
  const month = asciiDigits(s, 5, 2);
  const day = asciiDigits(s, 8, 2);
  const hour = asciiDigits(s, 11, 2);
  const minute = asciiDigits(s, 14, 2);
  const second = asciiDigits(s, 17, 2);
  if ((year | month | day | hour | minute | second) < 0) return undefined;
  let millis = 0;
  let i = 19;
  if (i < n && s.charCodeAt(i) === 46) {
    let scale = 100;
    const start = ++i;
    for (; i < n; i++) {
      const d = s.charCodeAt(i) - 48;
      if (d < 0 || d > 9) break;
      millis += d * scale;
      scale /= 10;
    }
    if (i === start || i - start > 9) return undefined;
    millis = Math.floor(millis);
  }
  const zulu = i === n - 1 && (s.charCodeAt(i) === 90 || s.charCodeAt(i) === 122);
  if (i !== n && !zulu) return undefined;
  if (month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month) || hour > 23 || minute > 59 || second > 59) return NaN;
  return utcMillis(year, month - 1, day, hour, minute, second, millis);
}

/** The Gregorian calendar repeats every 400 years, which are exactly 146,097 days. */
const FOUR_CENTURIES_MILLIS = 146_097 * 86_400_000;

/**
 * Date.UTC for any year 0-9999. Date.UTC reads years 0-99 as 1900-1999, so those are computed
 * 400 years later, where weekdays and leap years fall the same, and moved back.
 */
function utcMillis(year: number, month: number, day: number, hour: number, minute: number, second: number, millis: number): number {
  if (year >= 100) return Date.UTC(year, month, day, hour, minute, second, millis);
  return Date.UTC(year + 400, month, day, hour, minute, second, millis) - FOUR_CENTURIES_MILLIS;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  if (month !== 2) return DAYS_IN_MONTH[month - 1]!;
  return (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0 ? 29 : 28;
}

function parseTimestampText(text: string): number | undefined {
  const fast = parseCanonicalTimestamp(text);
  if (fast !== undefined) return Number.isNaN(fast) ? undefined : fast;
  const s = text.trim();
  if (s.length === 0) return undefined;
  const m = ISO_8601.exec(s);
  if (m === null) {
    const n = toNumber(s);
    return n === undefined ? undefined : epochToMillis(n);
  }
  const [, y, mo, d, h, mi, sec, frac, zone] = m;
  const month = +mo! - 1;
  const ms = utcMillis(+y!, month, +d!, h ? +h : 0, mi ? +mi : 0, sec ? +sec : 0, frac ? fractionToMillis(frac) : 0);
  // Date.UTC rolls 2024-02-31 over into March; a calendar-impossible date is not a timestamp.
  const check = new Date(ms);
  if (check.getUTCDate() !== +d! || check.getUTCMonth() !== month) return undefined;
  if ((h && +h > 23) || (mi && +mi > 59) || (sec && +sec > 59)) return undefined;
  return ms - zoneOffsetMillis(zone);
}

function fractionToMillis(frac: string): number {
  return Math.floor(+(frac + '00').slice(0, 3));
}

function zoneOffsetMillis(zone: string | undefined): number {
  if (zone === undefined || zone === 'Z' || zone === 'z') return 0;
  const sign = zone[0] === '-' ? -1 : 1;
  const digits = zone.slice(1).replace(':', '');
  const hours = +digits.slice(0, 2);
  const minutes = digits.length > 2 ? +digits.slice(2, 4) : 0;
  return sign * (hours * 60 + minutes) * 60_000;
}

const TRUE_WORDS = new Set(['true', 't', 'yes', 'y', '1', 'on']);
const FALSE_WORDS = new Set(['false', 'f', 'no', 'n', '0', 'off']);

/** true/false from a boolean, 1/0, or the usual words in any case; undefined otherwise. */
export function toBoolean(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'number') return value === 1 ? true : value === 0 ? false : undefined;
  if (typeof value === 'string') {
    const word = value.trim().toLowerCase();
    if (TRUE_WORDS.has(word)) return true;
    if (FALSE_WORDS.has(word)) return false;
  }
  return undefined;
}

/** Missing, null and the empty string are all "no value" (an empty CSV cell is no value). */
export function isAbsent(value: unknown): boolean {
  return value === undefined || value === null || value === '';
}

/** The text a string operator sees: numbers and booleans as JSON writes them, Dates as ISO (an invalid one has none). */
export function toText(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'bigint') return String(value);
  if (value instanceof Date) return Number.isNaN(value.getTime()) ? undefined : value.toISOString();
  return undefined;
}

/**
 * The decimal text a value stands for, for exact comparison: numeric text as written, a bigint's
 * digits, a number's shortest form (what the config said: `1000`, `0.1`). Undefined otherwise.
 */
export function decimalText(value: unknown): string | undefined {
  if (typeof value === 'string') return DECIMAL_NOTATION.test(value) ? value.trim() : undefined;
  if (typeof value === 'number') return Number.isFinite(value) ? String(value) : undefined;
  if (typeof value === 'bigint') return value.toString();
  return undefined;
}

/**
 * Whether two values whose doubles are equal may still differ as decimals: one has more digits
 * than a double keeps (text longer than 15 characters, a bigint), or the double overflowed to
 * infinity or fell into the range where doubles thin out. Only then is the exact comparison paid for.
 */
export function mayDifferPastDouble(value: unknown, asDouble: number): boolean {
  if (!Number.isFinite(asDouble) || Math.abs(asDouble) < 1e-300) return true;
  return (typeof value === 'string' && value.length > 15) || typeof value === 'bigint';
}

/** Sign, significant digits and the power of ten of the last digit, of decimal notation. */
function decimalParts(s: string): { negative: boolean; digits: string; exponent: number } {
  const key = decimalKey(s);
  if (key === '0') return { negative: false, digits: '', exponent: 0 };
  const negative = key[0] === '-';
  const e = key.lastIndexOf('e');
  return { negative, digits: key.slice(negative ? 1 : 0, e), exponent: Number(key.slice(e + 1)) };
}

/**
 * -1, 0 or 1 as decimal `a` is below, equal to or above `b`, exactly, whatever their digits:
 * "12345678901234567890.123" is above "12345678901234567890". Both must be decimal notation.
 */
export function compareDecimals(a: string, b: string): number {
  const x = decimalParts(a);
  const y = decimalParts(b);
  const signX = x.digits === '' ? 0 : x.negative ? -1 : 1;
  const signY = y.digits === '' ? 0 : y.negative ? -1 : 1;
  if (signX !== signY) return signX < signY ? -1 : 1;
  if (signX === 0) return 0;
  // The power of ten of the leading digit decides, then the digits themselves.
  const magnitudeX = x.digits.length + x.exponent;
  const magnitudeY = y.digits.length + y.exponent;
  let order = magnitudeX === magnitudeY ? 0 : magnitudeX < magnitudeY ? -1 : 1;
  if (order === 0) {
    const width = Math.max(x.digits.length, y.digits.length);
    const dx = x.digits.padEnd(width, '0');
    const dy = y.digits.padEnd(width, '0');
    order = dx === dy ? 0 : dx < dy ? -1 : 1;
  }
  return signX < 0 ? -order : order;
}

/**
 * `value` against a threshold whose double it equals: exactly when either may hold more than a
 * double does, else 0. Undefined when the value has no decimal text (then the doubles decide).
 */
export function exactTie(value: unknown, asDouble: number, threshold: string | undefined, thresholdMayDiffer: boolean): number {
  if (threshold === undefined || !(thresholdMayDiffer || mayDifferPastDouble(value, asDouble))) return 0;
  const text = decimalText(value);
  return text === undefined ? 0 : compareDecimals(text, threshold);
}
