import { expect } from 'chai';
import { compareMatches } from '../../src/rule-tests/compare.js';
import { formatDifference } from '../../src/rule-tests/report.js';

/** The diff lines a user reads for a rule's expected and actual matches. */
function diff(expected: Record<string, unknown>[], actual: Record<string, unknown>[]): string[] {
  return compareMatches(expected, actual).flatMap((d) => formatDifference(d).trimEnd().split('\n').map((l) => l.trim()));
}

const META = { _rule: 'r', _datasource: 's', _run_id: '20261124T120000Z-abcd', _matched_at: '2026-11-24T12:00:00.000Z' };

describe('rule tests: comparing expected and actual matches', () => {
  it('passes when each expected record names a subset of the fields of the match at its position', () => {
    expect(diff([{ id: '1' }, { id: '2', value: 5 }], [{ id: '1', value: 3, ...META }, { id: '2', value: 5, ...META }])).to.deep.equal([]);
  });

  it('compares metadata fields only when the test lists them', () => {
    expect(diff([{ id: '1', _rule: 'r' }], [{ id: '1', ...META }])).to.deep.equal([]);
    expect(diff([{ id: '1', _rule: 'other' }], [{ id: '1', ...META }])).to.deep.equal([
      '~ different: expected #1 vs match #1:',
      '_rule: expected "other", got "r"',
    ]);
  });

  it('names the expected record that matched nothing and the match nobody expected', () => {
    expect(diff([{ id: '1' }, { id: '3' }], [{ id: '1', ...META }, { id: '2', v: 'x', ...META }])).to.deep.equal([
      '- missing: expected #2 {"id":"3"} matched no record',
      '+ unexpected: match #2 {"id":"2","v":"x"} was not expected',
    ]);
  });

  it('shows which field differs when a match is the expected record with a value off', () => {
    expect(diff([{ id: '4', status: 'error' }], [{ id: '4', status: 'critical' }])).to.deep.equal([
      '~ different: expected #1 vs match #1:',
      'status: expected "error", got "critical"',
    ]);
  });

  it('explains a number exported as text, and the same instant written another way', () => {
    expect(diff([{ id: 2, at: '2026-11-24T08:00:05Z' }], [{ id: '2', at: '2026-11-24T08:00:05.000Z' }])).to.deep.equal([
      '~ different: expected #1 vs match #1:',
      "id: expected 2, got \"2\" (exported as text: untyped CSV columns are text; quote the expected value, or type the column under the datasource's columns)",
      'at: expected "2026-11-24T08:00:05Z", got "2026-11-24T08:00:05.000Z" (the same instant, exported in this form; expect it as exported)',
    ]);
  });

  it('suggests the field meant when the test names one the records do not have', () => {
    expect(diff([{ id: '1', stauts: 'active' }], [{ id: '1', status: 'active' }])).to.deep.equal([
      '~ different: expected #1 vs match #1:',
      'stauts: expected "active", but the record has no field "stauts"; did you mean "status"?',
    ]);
  });

  it('reports records out of order, since matches come out in input order', () => {
    expect(diff([{ id: '2' }, { id: '1' }], [{ id: '1' }, { id: '2' }])).to.deep.equal([
      '↕ out of order: expected #1 {"id":"2"} came as match #2 (matches come out in input order)',
    ]);
  });

  it('uses each match once, however many expected records it would satisfy', () => {
    expect(diff([{ site: 'paris' }, { site: 'paris' }], [{ id: '1', site: 'paris' }])).to.deep.equal([
      '- missing: expected #2 {"site":"paris"} matched no record',
    ]);
    expect(diff([{ site: 'paris' }, { site: 'paris' }], [{ id: '1', site: 'paris' }, { id: '2', site: 'paris' }])).to.deep.equal([]);
  });

  it('takes null as "no value": it accepts a null or missing field, and nothing else', () => {
    expect(diff([{ id: '1', message: null }], [{ id: '1', message: null }])).to.deep.equal([]);
    expect(diff([{ id: '1', message: null }], [{ id: '1' }])).to.deep.equal([]);
    expect(diff([{ id: '1', message: null }], [{ id: '1', message: 'ok' }])).to.deep.equal([
      '~ different: expected #1 vs match #1:',
      'message: expected null, got "ok"',
    ]);
  });

  it('expects no match with an empty list', () => {
    expect(diff([], [])).to.deep.equal([]);
    expect(diff([], [{ id: '9', ...META }])).to.deep.equal(['+ unexpected: match #1 {"id":"9"} was not expected']);
  });
});

describe('rule tests: field names are data', () => {
  it('an expected null for a field named like an Object property accepts a record without it', async () => {
    const { fieldDifferences } = await import('../../src/rule-tests/compare.js');
    expect(fieldDifferences({ constructor: null, toString: null }, { id: '1' })).to.deep.equal([]);
    const [diff] = fieldDifferences({ constructor: 'x' }, { id: '1' });
    expect(diff!.present).to.equal(false);
    expect(diff!.actual).to.equal(undefined);
  });
});
