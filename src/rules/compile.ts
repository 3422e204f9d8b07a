import type { EvaluationContext } from './context.js';
import { findOperator, OPERATOR_NAMES, type ValueTest } from './operators.js';
import { FALSE, TRUE, UNKNOWN, type Truth } from './truth.js';
import { closest } from '../util/suggest.js';

/** A condition as written in YAML (after the legacy forms are rewritten into it). */
export type ConditionNode =
  | { field: string; operator: string; value?: unknown }
  | { all: ConditionNode[] }
  | { any: ConditionNode[] }
  | { not: ConditionNode };

export type ConfigPath = readonly (string | number)[];

export interface RuleIssue {
  readonly path: ConfigPath;
  readonly message: string;
  /** A second place the message refers to, e.g. where a duplicate name was first defined. */
  readonly related?: { readonly path: ConfigPath; readonly label: string };
}

/** Where a leaf's parts sit in the config, so errors point at the operator or the value. */
export interface LeafSource {
  readonly path: ConfigPath;
  readonly operatorPath: ConfigPath;
  readonly valuePath: ConfigPath;
}

export type PreparedNode =
  | {
      readonly kind: 'leaf';
      readonly field: string;
      readonly operator: string;
      readonly value: unknown;
      readonly test: ValueTest;
      readonly onAbsent: Truth;
    }
  | { readonly kind: 'all' | 'any'; readonly children: readonly PreparedNode[] }
  | { readonly kind: 'not'; readonly child: PreparedNode };

/** Reads one field of a row; rows are arrays for columnar sources and objects for others. */
export type Accessor = (row: any) => unknown;
export type AccessorFactory = (field: string) => Accessor;
/** A rule's condition over one row, with the cycle's context (its "now"). */
export type Predicate = (row: any, ctx: EvaluationContext) => Truth;

/** Checks a leaf's operator and value and prepares its test; pushes an issue and returns undefined when it does not fit. */
export function prepareLeaf(
  leaf: { field: string; operator: string; value?: unknown },
  source: LeafSource,
  issues: RuleIssue[],
): PreparedNode | undefined {
  const spec = findOperator(leaf.operator);
  if (spec === undefined) {
    const hint = closest(leaf.operator, OPERATOR_NAMES);
    issues.push({
      path: source.operatorPath,
      message: `unknown operator "${leaf.operator}"${hint ? `; did you mean "${hint}"?` : `; one of: ${OPERATOR_NAMES.join(', ')}`}`,
    });
    return undefined;
  }
  const prepared = spec.prepare(leaf.value);
  if (typeof prepared === 'string') {
    issues.push({ path: leaf.value === undefined ? source.path : source.valuePath, message: prepared });
    return undefined;
  }
  return { kind: 'leaf', field: leaf.field, operator: leaf.operator, value: leaf.value, ...prepared };
}

/** Checks and prepares a condition tree written in the `{field, operator, value}` / all / any / not form. */
export function prepareCondition(
  node: unknown,
  path: ConfigPath,
  issues: RuleIssue[],
): PreparedNode | undefined {
  if (node === null || typeof node !== 'object' || Array.isArray(node)) {
    issues.push({ path, message: 'a condition must be a mapping: {field, operator, value}, {all: [...]}, {any: [...]} or {not: {...}}' });
    return undefined;
  }
  const record = node as Record<string, unknown>;
  const forms = ['all', 'any', 'not', 'field'].filter((k) => k in record || (k === 'field' && 'operator' in record));
  if (forms.length !== 1) {
    issues.push({
      path,
      message:
        forms.length === 0
          ? 'empty condition: give {field, operator, value}, {all: [...]}, {any: [...]} or {not: {...}}'
          : `a condition is one of {field, operator, value}, all, any or not; this one mixes ${forms.join(' and ')}: nest them under all/any instead`,
    });
    return undefined;
  }
  const form = forms[0]!;
  if (form === 'all' || form === 'any') return prepareGroup(form, record[form], [...path, form], issues);
  if (form === 'not') {
    const child = prepareCondition(record.not, [...path, 'not'], issues);
    return child && { kind: 'not', child };
  }
  if (typeof record.field !== 'string' || record.field.length === 0) {
    issues.push({ path: [...path, 'field'], message: 'a condition needs a field name' });
    return undefined;
  }
  if (typeof record.operator !== 'string') {
    issues.push({ path, message: `condition on "${record.field}" needs an operator` });
    return undefined;
  }
  const leaf = { field: record.field, operator: record.operator, value: record.value };
  return prepareLeaf(leaf, { path, operatorPath: [...path, 'operator'], valuePath: [...path, 'value'] }, issues);
}

function prepareGroup(
  kind: 'all' | 'any',
  items: unknown,
  path: ConfigPath,
  issues: RuleIssue[],
): PreparedNode | undefined {
  if (!Array.isArray(items) || items.length === 0) {
    issues.push({ path, message: `${kind} needs a non-empty list of conditions` });
    return undefined;
  }
  const children = items.map((item, i) => prepareCondition(item, [...path, i], issues));
  if (children.some((c) => c === undefined)) return undefined;
  return { kind, children: children as PreparedNode[] };
}

/**
 * Turns a prepared tree into one plain function over rows of a given shape. Done once per
 * (rule, row shape), never per record: the per-record cost is the closures' calls alone.
 */
export function bindPredicate(node: PreparedNode, accessorFor: AccessorFactory): Predicate {
  switch (node.kind) {
    case 'leaf': {
      const get = accessorFor(node.field);
      const { test, onAbsent } = node;
      return (row, ctx) => {
        const v = get(row);
        return v === undefined || v === null || v === '' ? onAbsent : test(v, ctx);
      };
    }
    case 'not': {
      const child = bindPredicate(node.child, accessorFor);
      return (row, ctx) => {
        const t = child(row, ctx);
        return t === UNKNOWN ? UNKNOWN : t === TRUE ? FALSE : TRUE;
      };
    }
    case 'all':
      return bindAll(node.children.map((c) => bindPredicate(c, accessorFor)));
    case 'any':
      return bindAny(node.children.map((c) => bindPredicate(c, accessorFor)));
  }
}

function bindAll(children: Predicate[]): Predicate {
  if (children.length === 1) return children[0]!;
  if (children.length === 2) {
    const [a, b] = children as [Predicate, Predicate];
    return (row, ctx) => {
      const x = a(row, ctx);
      if (x === FALSE) return FALSE;
      const y = b(row, ctx);
      return y === FALSE ? FALSE : x === UNKNOWN || y === UNKNOWN ? UNKNOWN : TRUE;
    };
  }
  return (row, ctx) => {
    let result: Truth = TRUE;
    for (let i = 0; i < children.length; i++) {
      const t = children[i]!(row, ctx);
      if (t === FALSE) return FALSE;
      if (t === UNKNOWN) result = UNKNOWN;
    }
    return result;
  };
}

function bindAny(children: Predicate[]): Predicate {
  if (children.length === 1) return children[0]!;
  return (row, ctx) => {
    let result: Truth = FALSE;
    for (let i = 0; i < children.length; i++) {
      const t = children[i]!(row, ctx);
      if (t === TRUE) return TRUE;
      if (t === UNKNOWN) result = UNKNOWN;
    }
    return result;
  };
}

/** Why a condition came out as it did, leaf by leaf: what a user asks when a rule fires or not. */
export interface Explanation {
  readonly outcome: Truth;
  readonly field?: string;
  readonly operator?: string;
  readonly expected?: unknown;
  readonly actual?: unknown;
  readonly kind: PreparedNode['kind'];
  readonly children?: readonly Explanation[];
}

export function explain(node: PreparedNode, accessorFor: AccessorFactory, row: unknown, ctx: EvaluationContext): Explanation {
  switch (node.kind) {
    case 'leaf': {
      const actual = accessorFor(node.field)(row);
      const outcome = bindPredicate(node, accessorFor)(row, ctx);
      return { kind: 'leaf', outcome, field: node.field, operator: node.operator, expected: node.value, actual };
    }
    case 'not': {
      const child = explain(node.child, accessorFor, row, ctx);
      const outcome = child.outcome === UNKNOWN ? UNKNOWN : child.outcome === TRUE ? FALSE : TRUE;
      return { kind: 'not', outcome, children: [child] };
    }
    default: {
      const children = node.children.map((c) => explain(c, accessorFor, row, ctx));
      return { kind: node.kind, outcome: bindPredicate(node, accessorFor)(row, ctx), children };
    }
  }
}

/** The first leaf whose outcome was UNKNOWN: the field and value that made a record invalid. */
export function firstUndecidedLeaf(e: Explanation): Explanation | undefined {
  if (e.kind === 'leaf') return e.outcome === UNKNOWN ? e : undefined;
  for (const child of e.children ?? []) {
    const found = firstUndecidedLeaf(child);
    if (found) return found;
  }
  return undefined;
}
