import { isDeepStrictEqual } from 'node:util';
import { METADATA_FIELDS } from '../records/export-record.js';
import type { PlainRecord } from '../records/layout.js';
import { closest } from '../util/suggest.js';

/** One field of an expected match that the actual match does not have. */
export interface FieldDifference {
  readonly field: string;
  readonly expected: unknown;
  /** undefined when the actual record has no such field. */
  readonly actual: unknown;
  readonly present: boolean;
  /** For a field the record lacks, the record's field closest in spelling (a typo in the test). */
  readonly closestField?: string;
}

/** Positions are 1-based, as a person counts the matches of a rule. */
export type Difference =
  | { readonly kind: 'missing'; readonly expectedAt: number; readonly expected: PlainRecord }
  | { readonly kind: 'unexpected'; readonly actualAt: number; readonly actual: PlainRecord }
  | { readonly kind: 'different'; readonly expectedAt: number; readonly actualAt: number; readonly fields: readonly FieldDifference[] }
  | { readonly kind: 'out_of_order'; readonly expectedAt: number; readonly actualAt: number; readonly expected: PlainRecord };

/**
 * How the expected record's fields differ from the actual record. Only the fields the test
 * lists are compared; `null` stands for "no value", so it also accepts a missing field.
 */
export function fieldDifferences(expected: PlainRecord, actual: PlainRecord): FieldDifference[] {
  const differences: FieldDifference[] = [];
  for (const [field, want] of Object.entries(expected)) {
    const present = Object.hasOwn(actual, field);
    const got = present ? actual[field] : undefined;
    const same = want === null ? got === null || got === undefined : present && isDeepStrictEqual(want, got);
    if (same) continue;
    const closestField = present ? undefined : closest(field, Object.keys(actual));
    differences.push({ field, expected: want, actual: got, present, closestField });
  }
  return differences;
}

export function satisfies(expected: PlainRecord, actual: PlainRecord): boolean {
  return fieldDifferences(expected, actual).length === 0;
}

/**
 * Compares a rule's expected matches with its actual ones as ordered lists: the longest run of
 * expected records met in order is lined up first, then what is left is explained as records
 * out of order, records that differ in a few fields, missing records and unexpected records.
 * An empty result means the rule did what the test says.
 */
export function compareMatches(expected: readonly PlainRecord[], actual: readonly PlainRecord[]): Difference[] {
  const aligned = longestInOrderAlignment(expected, actual);
  const lonelyExpected = expected.map((_, i) => i).filter((i) => !aligned.has(i));
  const usedActual = new Set(aligned.values());
  const lonelyActual = actual.map((_, j) => j).filter((j) => !usedActual.has(j));
  const differences: Difference[] = [];

  for (const i of [...lonelyExpected]) {
    const j = lonelyActual.find((k) => satisfies(expected[i]!, actual[k]!));
    if (j === undefined) continue;
    differences.push({ kind: 'out_of_order', expectedAt: i + 1, actualAt: j + 1, expected: expected[i]! });
    remove(lonelyExpected, i);
    remove(lonelyActual, j);
  }
  for (const i of [...lonelyExpected]) {
    const j = lonelyActual.find((k) => isNearMiss(expected[i]!, actual[k]!));
    if (j === undefined) continue;
    differences.push({ kind: 'different', expectedAt: i + 1, actualAt: j + 1, fields: fieldDifferences(expected[i]!, actual[j]!) });
    remove(lonelyExpected, i);
    remove(lonelyActual, j);
  }
  for (const i of lonelyExpected) differences.push({ kind: 'missing', expectedAt: i + 1, expected: expected[i]! });
  for (const j of lonelyActual) differences.push({ kind: 'unexpected', actualAt: j + 1, actual: actual[j]! });
  return differences;
}

/** Expected index -> actual index for the longest subsequence of expected records matched in order (a longest common subsequence). */
function longestInOrderAlignment(expected: readonly PlainRecord[], actual: readonly PlainRecord[]): Map<number, number> {
  const n = expected.length;
  const m = actual.length;
  const fits = expected.map((e) => actual.map((a) => satisfies(e, a)));
  const longest = Array.from({ length: n + 1 }, () => new Array<number>(m + 1).fill(0));
  for (let i = n - 1; i >= 0; i--) {
    for (let j = m - 1; j >= 0; j--) {
      longest[i]![j] = fits[i]![j] ? longest[i + 1]![j + 1]! + 1 : Math.max(longest[i + 1]![j]!, longest[i]![j + 1]!);
    }
  }
  const aligned = new Map<number, number>();
  for (let i = 0, j = 0; i < n && j < m; ) {
    if (fits[i]![j]) aligned.set(i++, j++);
    else if (longest[i + 1]![j]! >= longest[i]![j + 1]!) i++;
    else j++;
  }
  return aligned;
}

/**
 * The actual record is the expected one with a few fields off (a wrong value, a number
 * exported as text), rather than another record: at least one of its own fields reads the
 * same, and no more differ than read the same. Metadata fields say nothing about which record it is.
 */
function isNearMiss(expected: PlainRecord, actual: PlainRecord): boolean {
  const fields = Object.keys(expected).filter((f) => !(METADATA_FIELDS as readonly string[]).includes(f));
  const alike = fields.filter((f) => readsTheSame(expected[f], actual[f])).length;
  return alike > 0 && alike >= fields.length - alike;
}

/** 150 and "150" read the same: the same record, exported with another type than the test says. */
function readsTheSame(expected: unknown, actual: unknown): boolean {
  if (isDeepStrictEqual(expected, actual)) return true;
  const scalar = (v: unknown) => typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean';
  return scalar(expected) && scalar(actual) && String(expected) === String(actual);
}

function remove(list: number[], item: number): void {
  list.splice(list.indexOf(item), 1);
}
