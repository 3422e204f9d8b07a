import type { RecordBatch, RowLayout } from '../records/layout.js';
import { TRUE, UNKNOWN } from './truth.js';
import { closest } from '../util/suggest.js';
import {
  bindPredicate,
  prepareCondition,
  prepareLeaf,
  type ConfigPath,
  type PreparedNode,
  type Predicate,
  type RuleIssue,
} from './compile.js';
import type { EvaluationContext } from './context.js';

/** A rule as written in config.yaml or a rule file; the older tool's keys are kept as they were. */
export interface RuleConfig {
  name: string;
  description?: string;
  enabled?: boolean;
  datasource?: string;
  datasources?: string[];
  export_target?: string;
  export_targets?: string[];
  threshold_field?: string;
  threshold_type?: string;
  threshold_value?: unknown;
  conditions?: unknown;
}

export type { EvaluationContext };

/** What a rule made of one batch: the rows that match, and those it could not decide. */
export interface BatchOutcome {
  readonly matched: readonly unknown[];
  readonly invalid: number;
  /** The first few undecidable rows, for the debug log. */
  readonly invalidRows: readonly unknown[];
}

/** Matches a rule reports at the end of a cycle (an aggregate over a window, "no data for 30 minutes"). */
export interface CycleEndMatches {
  readonly datasource: string;
  readonly batch: RecordBatch;
}

/**
 * What the cycle needs of a rule. A rule sees each batch of its datasources as it is read
 * (`evaluate`), and the end of the cycle (`endCycle`). A record rule answers per batch and has
 * nothing left at the end; an aggregate or stateful rule keeps what it needs from the batches
 * and reports at the end, so it fits without changing the cycle.
 */
export interface CycleRule {
  readonly name: string;
  readonly description: string | undefined;
  readonly enabled: boolean;
  readonly datasources: readonly string[];
  readonly targets: readonly string[];
  evaluate(batch: RecordBatch, ctx: EvaluationContext): BatchOutcome;
  endCycle(ctx: EvaluationContext): readonly CycleEndMatches[];
}

/** How many undecidable rows per batch are kept for the debug log. */
const INVALID_ROWS_KEPT = 5;

/**
 * Most row layouts a rule keeps a bound predicate for. A rule lives as long as its config, and a
 * service reading a glob of CSV files meets a new layout with every file whose header differs:
 * kept for each, the predicates (and their keys, the whole header) grew with every cycle.
 */
export const PREDICATES_KEPT = 32;

/** A threshold rule: a condition on each record, prepared once, its predicate bound once per row layout. */
export class Rule implements CycleRule {
  /** Least recently used first. */
  readonly #predicates = new Map<string, Predicate>();

  constructor(
    readonly name: string,
    readonly description: string | undefined,
    readonly enabled: boolean,
    readonly datasources: readonly string[],
    readonly targets: readonly string[],
    readonly condition: PreparedNode,
  ) {}

  predicateFor(layout: RowLayout): Predicate {
    let predicate = this.#predicates.get(layout.key);
    if (predicate !== undefined) {
      // Most recently used last, so the layout forgotten first is the one not met for longest.
      this.#predicates.delete(layout.key);
    } else {
      predicate = bindPredicate(this.condition, (field) => layout.accessor(field));
      if (this.#predicates.size >= PREDICATES_KEPT) this.#predicates.delete(this.#predicates.keys().next().value!);
    }
    this.#predicates.set(layout.key, predicate);
    return predicate;
  }

  /** How many row layouts have a bound predicate (for tests). */
  get layoutsKept(): number {
    return this.#predicates.size;
  }

  evaluate(batch: RecordBatch, ctx: EvaluationContext): BatchOutcome {
    const predicate = this.predicateFor(batch.layout);
    const { rows } = batch;
    const matched: unknown[] = [];
    let invalidRows: unknown[] | undefined;
    let invalid = 0;
    for (let i = 0; i < rows.length; i++) {
      const outcome = predicate(rows[i], ctx);
      if (outcome === TRUE) matched.push(rows[i]);
      else if (outcome === UNKNOWN) {
        if (invalid++ < INVALID_ROWS_KEPT) (invalidRows ??= []).push(rows[i]);
      }
    }
    return { matched, invalid, invalidRows: invalidRows ?? [] };
  }

  endCycle(): readonly CycleEndMatches[] {
    return [];
  }
}

export interface RuleContext {
  readonly datasourceNames: readonly string[];
  readonly targetNames: readonly string[];
}

export interface CompiledRules {
  readonly rules: Rule[];
  readonly issues: RuleIssue[];
}

/** Checks every rule (names, references, conditions) and prepares their conditions, collecting all issues. */
export function compileRules(configs: readonly RuleConfig[], ctx: RuleContext): CompiledRules {
  const rules: Rule[] = [];
  const issues: RuleIssue[] = [];
  const firstByName = new Map<string, number>();
  configs.forEach((config, i) => {
    const path: ConfigPath = ['processing_rules', i];
    const first = firstByName.get(config.name);
    if (first !== undefined) {
      issues.push({
        path: [...path, 'name'],
        message: `duplicate rule name "${config.name}"; rule names must be unique`,
        related: { path: ['processing_rules', first, 'name'], label: 'first defined at' },
      });
    } else {
      firstByName.set(config.name, i);
    }
    const rule = compileRule(config, path, ctx, issues);
    if (rule) rules.push(rule);
  });
  return { rules, issues };
}

function compileRule(config: RuleConfig, path: ConfigPath, ctx: RuleContext, issues: RuleIssue[]): Rule | undefined {
  const before = issues.length;
  const condition = buildCondition(config, path, ctx, issues);
  const datasources = resolveReferences(config, path, 'datasource', ctx.datasourceNames, issues) ?? ctx.datasourceNames;
  const targets = resolveReferences(config, path, 'export_target', ctx.targetNames, issues);
  if (targets === undefined) {
    issues.push({ path, message: `rule "${config.name}" has no export target: add export_target: <name> or export_targets: [<name>, ...]` });
  }
  if (issues.length > before || condition === undefined || targets === undefined) return undefined;
  return new Rule(config.name, config.description, config.enabled !== false, datasources, targets, condition);
}

/** `datasource: x` or `datasources: [x, y]` (likewise export_target/s), each name checked to exist. */
function resolveReferences(
  config: RuleConfig,
  path: ConfigPath,
  singular: 'datasource' | 'export_target',
  known: readonly string[],
  issues: RuleIssue[],
): string[] | undefined {
  const plural = `${singular}s` as const;
  const one = config[singular];
  const many = config[plural];
  if (one !== undefined && many !== undefined) {
    issues.push({ path: [...path, plural], message: `give either ${singular} or ${plural}, not both` });
    return undefined;
  }
  if (one === undefined && many === undefined) return undefined;
  const names = one !== undefined ? [one] : many!;
  const section = singular === 'datasource' ? 'datasources' : 'export_targets';
  names.forEach((name, k) => {
    if (known.includes(name)) return;
    const hint = closest(name, known);
    issues.push({
      path: one !== undefined ? [...path, singular] : [...path, plural, k],
      message:
        `${singular.replace('_', ' ')} "${name}" is not defined in ${section}` +
        (hint ? `; did you mean "${hint}"?` : known.length ? `; defined: ${known.join(', ')}` : ''),
    });
  });
  return names;
}

/**
 * The rule's condition: the older tool's `threshold_*` triple, `conditions` (a list, all of
 * which must hold, or a tree of all/any/not), or both, in which case both must hold.
 */
function buildCondition(config: RuleConfig, path: ConfigPath, ctx: RuleContext, issues: RuleIssue[]): PreparedNode | undefined {
  const parts: (PreparedNode | undefined)[] = [];
  const hasThreshold = config.threshold_field !== undefined || config.threshold_type !== undefined || config.threshold_value !== undefined;
  if (hasThreshold) parts.push(prepareThreshold(config, path, ctx, issues));
  if (config.conditions !== undefined) {
    const conditionsPath = [...path, 'conditions'];
    parts.push(
      Array.isArray(config.conditions)
        ? prepareConditionList(config.conditions, conditionsPath, ctx, issues)
        : prepareCondition(config.conditions, conditionsPath, issues),
    );
  }
  if (parts.length === 0) {
    issues.push({
      path,
      message: `rule "${config.name}" has no condition: give threshold_field, threshold_type and threshold_value, or conditions`,
    });
    return undefined;
  }
  if (parts.some((p) => p === undefined)) return undefined;
  return parts.length === 1 ? parts[0] : { kind: 'all', children: parts as PreparedNode[] };
}

/** The older form: a list of conditions that must all hold; each item keeps its own path for errors. */
function prepareConditionList(list: unknown[], path: ConfigPath, ctx: RuleContext, issues: RuleIssue[]): PreparedNode | undefined {
  if (list.length === 0) {
    issues.push({ path, message: 'conditions is an empty list; give at least one {field, operator, value}' });
    return undefined;
  }
  const children = list.map((item, i) => prepareCondition(item, [...path, i], issues));
  if (children.some((c) => c === undefined)) return undefined;
  return children.length === 1 ? children[0] : { kind: 'all', children: children as PreparedNode[] };
}

function prepareThreshold(config: RuleConfig, path: ConfigPath, ctx: RuleContext, issues: RuleIssue[]): PreparedNode | undefined {
  if (config.threshold_field === undefined || config.threshold_type === undefined) {
    const missing = [config.threshold_field === undefined && 'threshold_field', config.threshold_type === undefined && 'threshold_type']
      .filter(Boolean)
      .join(' and ');
    issues.push({ path, message: `rule "${config.name}" needs ${missing} alongside the other threshold_* keys` });
    return undefined;
  }
  return prepareLeaf(
    { field: config.threshold_field, operator: config.threshold_type, value: config.threshold_value },
    { path, operatorPath: [...path, 'threshold_type'], valuePath: [...path, 'threshold_value'] },
    issues,
  );
}
