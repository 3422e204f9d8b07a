import { METADATA_FIELDS } from '../records/export-record.js';
import type { PlainRecord } from '../records/layout.js';
import { toEpochMillis } from '../rules/coerce.js';
import type { RuleStats } from '../pipeline/stats.js';
import type { Difference, FieldDifference } from './compare.js';

/** How one rule of one case turned out. */
export interface RuleOutcome {
  readonly rule: string;
  /** FILE:LINE:COL of the rule's expectation in the test file. */
  readonly location: string;
  readonly expectedCount: number;
  readonly actualCount: number;
  readonly differences: readonly Difference[];
  readonly stats: RuleStats | undefined;
  /** Why the rule may have matched nothing: disabled, or no input for its datasources. */
  readonly notes: readonly string[];
}

export interface CaseOutcome {
  readonly name: string;
  readonly rules: readonly RuleOutcome[];
}

/** A rule that cannot match anything in the case (disabled, or no input for it) fails too: its expectation proves nothing. */
export function casePassed(outcome: CaseOutcome): boolean {
  return outcome.rules.every(rulePassed);
}

function rulePassed(rule: RuleOutcome): boolean {
  return rule.differences.length === 0 && rule.notes.length === 0;
}

const LONGEST_RECORD = 200;

/** `✔ name`, or `✘ name` followed by what each failing rule did differently. */
export function formatCase(outcome: CaseOutcome): string {
  if (casePassed(outcome)) return `  ✔ ${outcome.name}\n`;
  let out = `  ✘ ${outcome.name}\n`;
  for (const rule of outcome.rules) if (!rulePassed(rule)) out += formatRuleFailure(rule);
  return out;
}

function formatRuleFailure(rule: RuleOutcome): string {
  let out = `      ${rule.location}: ${rule.rule}: expected ${plural(rule.expectedCount, 'match', 'matches')}, got ${rule.actualCount}${statsNote(rule.stats)}\n`;
  for (const difference of rule.differences) out += formatDifference(difference);
  for (const note of rule.notes) out += `        note: ${note}\n`;
  return out;
}

function statsNote(stats: RuleStats | undefined): string {
  if (stats === undefined) return '';
  const undecided = stats.invalid > 0 ? `, ${stats.invalid} undecided: a field it needs is missing or not comparable` : '';
  return ` (read ${plural(stats.read, 'record', 'records')}${undecided})`;
}

export function formatDifference(difference: Difference): string {
  switch (difference.kind) {
    case 'missing':
      return `        - missing: expected #${difference.expectedAt} ${formatRecord(difference.expected)} matched no record\n`;
    case 'unexpected':
      return `        + unexpected: match #${difference.actualAt} ${formatRecord(withoutMetadata(difference.actual))} was not expected\n`;
    case 'out_of_order':
      return (
        `        ↕ out of order: expected #${difference.expectedAt} ${formatRecord(difference.expected)} came as match #${difference.actualAt}` +
        ` (matches come out in input order)\n`
      );
    case 'different':
      return (
        `        ~ different: expected #${difference.expectedAt} vs match #${difference.actualAt}:\n` +
        difference.fields.map((f) => `            ${formatFieldDifference(f)}\n`).join('')
      );
  }
}

export function formatFieldDifference(d: FieldDifference): string {
  if (!d.present) {
    const hint = d.closestField ? `; did you mean "${d.closestField}"?` : '';
    return `${d.field}: expected ${formatValue(d.expected)}, but the record has no field "${d.field}"${hint}`;
  }
  return `${d.field}: expected ${formatValue(d.expected)}, got ${formatValue(d.actual)}${typeHint(d.expected, d.actual)}`;
}

/** The usual reasons a value that looks right is not equal: its type, or how a timestamp is written. */
function typeHint(expected: unknown, actual: unknown): string {
  if (typeof expected === 'number' && typeof actual === 'string' && Number(actual) === expected) {
    return ' (exported as text: untyped CSV columns are text; quote the expected value, or type the column under the datasource\'s columns)';
  }
  if (typeof expected === 'string' && typeof actual !== 'string' && String(actual) === expected) {
    return ` (exported as a ${typeof actual}; write the expected value without quotes)`;
  }
  if (typeof expected === 'string' && typeof actual === 'string') {
    const same = toEpochMillis(expected);
    if (same !== undefined && same === toEpochMillis(actual)) return ' (the same instant, exported in this form; expect it as exported)';
  }
  return '';
}

export function formatValue(value: unknown): string {
  return value === undefined ? 'nothing' : JSON.stringify(value);
}

export function formatRecord(record: PlainRecord): string {
  const text = JSON.stringify(record);
  return text.length <= LONGEST_RECORD ? text : `${text.slice(0, LONGEST_RECORD - 2)}…}`;
}

function withoutMetadata(record: PlainRecord): PlainRecord {
  const copy = { ...record };
  for (const field of METADATA_FIELDS) delete copy[field];
  return copy;
}

export function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

export interface Tally {
  passed: number;
  failed: number;
  /** Test files that could not be run: broken YAML, unknown names, a broken config. */
  broken: number;
}

export function summaryLine(tally: Tally): string {
  const broken = tally.broken > 0 ? `; ${plural(tally.broken, 'test file has', 'test files have')} problems (listed above)` : '';
  return `rule tests: ${tally.passed} passed, ${tally.failed} failed${broken}\n`;
}
