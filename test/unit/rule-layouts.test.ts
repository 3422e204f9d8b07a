import { expect } from 'chai';
import { ColumnLayout } from '../../src/records/layout.js';
import { compileRules, PREDICATES_KEPT } from '../../src/rules/rule.js';
import { TRUE } from '../../src/rules/truth.js';

function hotRule() {
  const { rules, issues } = compileRules(
    [{ name: 'hot', datasource: 's', conditions: [{ field: 'value', operator: 'greater_than', value: 900 }], export_targets: ['out'] }],
    { datasourceNames: ['s'], targetNames: ['out'] },
  );
  expect(issues).to.deep.equal([]);
  return rules[0]!;
}

describe('a rule and the row layouts it meets', () => {
  it('keeps a bounded number of bound predicates: a service reading files whose headers differ every cycle does not grow', () => {
    const rule = hotRule();
    for (let cycle = 0; cycle < 1000; cycle++) {
      const layout = new ColumnLayout(['id', `extra_${cycle}`, 'value']);
      const outcome = rule.evaluate({ layout, rows: [['1', 'x', '950'], ['2', 'y', '10']] }, { now: 0 });
      expect(outcome.matched).to.deep.equal([['1', 'x', '950']]);
    }
    expect(rule.layoutsKept).to.be.at.most(PREDICATES_KEPT);
  });

  it('a layout met again after being forgotten is bound again, and one in steady use is not forgotten', () => {
    const rule = hotRule();
    const steady = new ColumnLayout(['value']);
    for (let i = 0; i < 3 * PREDICATES_KEPT; i++) {
      expect(rule.predicateFor(steady)(['901'], { now: 0 })).to.equal(TRUE);
      rule.predicateFor(new ColumnLayout(['id', `c${i}`, 'value']));
    }
    expect(rule.predicateFor(new ColumnLayout(['id', 'c0', 'value']))(['1', 'x', '950'], { now: 0 })).to.equal(TRUE);
    expect(rule.layoutsKept).to.equal(PREDICATES_KEPT);
  });
});
