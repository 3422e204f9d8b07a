import { expect } from 'chai';
import { bindPredicate, explain, firstUndecidedLeaf, prepareCondition, type RuleIssue } from '../../src/rules/compile.js';
import { ColumnLayout, OBJECT_LAYOUT } from '../../src/records/layout.js';
import { FALSE, TRUE, UNKNOWN } from '../../src/rules/truth.js';

function predicate(tree: unknown, layout = OBJECT_LAYOUT) {
  const issues: RuleIssue[] = [];
  const node = prepareCondition(tree, ['conditions'], issues);
  if (!node) throw new Error(issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; '));
  const bound = bindPredicate(node, (f) => layout.accessor(f));
  return (row: unknown) => bound(row, { now: 0 });
}

function issuesOf(tree: unknown): RuleIssue[] {
  const issues: RuleIssue[] = [];
  prepareCondition(tree, ['conditions'], issues);
  return issues;
}

const hot = { field: 'value', operator: 'greater_than', value: 900 };
const active = { field: 'status', operator: 'equals', value: 'active' };

describe('condition trees', () => {
  it('all / any / not combine as AND / OR / NOT', () => {
    const p = predicate({ all: [hot, { any: [active, { not: { field: 'site', operator: 'in', value: ['test'] } }] }] });
    expect(p({ value: 950, status: 'active', site: 'test' })).to.equal(TRUE);
    expect(p({ value: 950, status: 'idle', site: 'prod' })).to.equal(TRUE);
    expect(p({ value: 950, status: 'idle', site: 'test' })).to.equal(FALSE);
    expect(p({ value: 850, status: 'active', site: 'prod' })).to.equal(FALSE);
  });

  it('nest to any depth', () => {
    let tree: unknown = hot;
    for (let i = 0; i < 50; i++) tree = i % 2 ? { all: [tree] } : { not: { not: tree } };
    const p = predicate(tree);
    expect(p({ value: 901 })).to.equal(TRUE);
    expect(p({ value: 899 })).to.equal(FALSE);
  });

  it('a missing field never matches, even under not', () => {
    const p = predicate({ not: hot });
    expect(p({ value: 100 })).to.equal(TRUE);
    expect(p({})).to.equal(UNKNOWN);
    expect(p({ value: 'n/a' })).to.equal(UNKNOWN);
  });

  it('three-valued AND/OR: a false or true side decides regardless of an unknown one', () => {
    const and = predicate({ all: [hot, active] });
    expect(and({ value: 'n/a', status: 'idle' })).to.equal(FALSE);
    expect(and({ value: 'n/a', status: 'active' })).to.equal(UNKNOWN);
    const or = predicate({ any: [hot, active] });
    expect(or({ value: 'n/a', status: 'active' })).to.equal(TRUE);
    expect(or({ value: 'n/a', status: 'idle' })).to.equal(UNKNOWN);
    const three = predicate({ all: [hot, active, { field: 'site', operator: 'equals', value: 'x' }] });
    expect(three({ value: 1000, status: 'active', site: 'x' })).to.equal(TRUE);
    expect(three({ value: 1000, status: 'active' })).to.equal(UNKNOWN);
  });

  it('gives the same results on columnar rows as on objects', () => {
    const tree = { all: [hot, { any: [active, { field: 'site', operator: 'starts_with', value: 'par' }] }] };
    const layout = new ColumnLayout(['value', 'status', 'site']);
    const onColumns = predicate(tree, layout);
    const onObjects = predicate(tree);
    const rows = [['950', 'active', 'x'], ['950', 'idle', 'paris'], ['100', 'active', 'paris'], ['', 'active', ''], ['950', 'idle', 'rome']];
    for (const row of rows) {
      const object = { value: row[0], status: row[1], site: row[2] };
      expect(onColumns(row), JSON.stringify(row)).to.equal(onObjects(object));
    }
  });

  it('a field absent from the columns is missing, not an error', () => {
    const p = predicate(hot, new ColumnLayout(['other']));
    expect(p(['1000'])).to.equal(UNKNOWN);
  });

  it('reach into nested JSON with dotted fields', () => {
    const p = predicate({ field: 'metrics.cpu', operator: 'greater_than', value: 90 });
    expect(p({ metrics: { cpu: 95 } })).to.equal(TRUE);
    expect(p({ metrics: { cpu: 5 } })).to.equal(FALSE);
    expect(p({ metrics: null })).to.equal(UNKNOWN);
    expect(p({ 'metrics.cpu': 99 })).to.equal(TRUE);
  });

  it('explain names the field that made a record undecidable', () => {
    const issues: RuleIssue[] = [];
    const node = prepareCondition({ all: [active, hot] }, [], issues)!;
    const why = explain(node, (f) => OBJECT_LAYOUT.accessor(f), { status: 'active', value: 'n/a' }, { now: 0 });
    expect(why.outcome).to.equal(UNKNOWN);
    expect(firstUndecidedLeaf(why)).to.include({ field: 'value', operator: 'greater_than', actual: 'n/a' });
  });

  describe('shape errors point at the node', () => {
    it('a node mixing forms', () => {
      const [issue] = issuesOf({ all: [{ field: 'a', operator: 'equals', value: 1, any: [] }] });
      expect(issue!.path).to.deep.equal(['conditions', 'all', 0]);
      expect(issue!.message).to.match(/mixes any and field/);
    });

    it('an empty group', () => {
      const [issue] = issuesOf({ any: [] });
      expect(issue!.message).to.match(/any needs a non-empty list/);
    });

    it('a bad value deep in the tree, at its own path', () => {
      const [issue] = issuesOf({ all: [hot, { not: { field: 'x', operator: 'between', value: [3, 1] } }] });
      expect(issue!.path).to.deep.equal(['conditions', 'all', 1, 'not', 'value']);
    });

    it('an operator without field', () => {
      const [issue] = issuesOf({ operator: 'equals', value: 1 });
      expect(issue!.message).to.match(/needs a field name/);
    });
  });
});
