import { expect } from 'chai';
import path from 'node:path';
import { formatIssue } from '../../src/config/issues.js';
import { parseRuleTestFile } from '../../src/rule-tests/test-file.js';

const DIR = path.resolve('/tests/rules');

/** The problems a test file is refused with, as the user reads them. */
function problems(text: string): string[] {
  const { testFile, issues } = parseRuleTestFile('t.test.yaml', text, DIR);
  expect(testFile, 'the file should be refused').to.equal(undefined);
  return issues.map(formatIssue);
}

function parse(text: string) {
  const { testFile, issues } = parseRuleTestFile('t.test.yaml', text, DIR);
  expect(issues.map(formatIssue)).to.deep.equal([]);
  return testFile!;
}

describe('rule test files: format', () => {
  it('reads cases with inline records, fixture files, a fixed now and expected matches', () => {
    const file = parse(`config: ../config.yaml
tests:
  - name: low battery pages
    now: 2026-11-24T12:00:00Z
    input:
      sensors:
        - { id: "1", battery: 15 }
      archive: fixtures/archive.csv
      events: fixtures/events.ndjson
    expect:
      low_battery:
        - { id: "1" }
      sensor_faults: []
`);
    expect(file.config).to.equal(path.resolve(DIR, '../config.yaml'));
    const [only] = file.cases;
    expect(only!.name).to.equal('low battery pages');
    expect(only!.now).to.equal(Date.parse('2026-11-24T12:00:00Z'));
    expect(only!.inputs.map((i) => [i.datasource, i.source.kind])).to.deep.equal([
      ['sensors', 'records'],
      ['archive', 'csv'],
      ['events', 'ndjson'],
    ]);
    expect(only!.inputs[1]!.source).to.include({ file: path.join(DIR, 'fixtures', 'archive.csv'), written: 'fixtures/archive.csv' });
    expect(only!.expectations.map((e) => [e.rule, e.records])).to.deep.equal([
      ['low_battery', [{ id: '1' }]],
      ['sensor_faults', []],
    ]);
  });

  it('has no config unless the file names one (the --config flag applies)', () => {
    expect(parse('tests: [{name: a, expect: {r: []}}]\n').config).to.equal(undefined);
  });

  it('places an unknown key at its line and column, with the key meant', () => {
    expect(problems('tests:\n  - name: a\n    inptu: {}\n    expect: {r: []}\n')).to.deep.equal([
      't.test.yaml:3:5: tests[0].inptu: unknown key "inptu"; did you mean "input"?',
    ]);
    expect(problems('test: []\n')).to.deep.equal([
      't.test.yaml:1:1: test: unknown key "test"; did you mean "tests"?',
      't.test.yaml:1:1: missing tests: a list of cases, each with name, input and expect',
    ]);
  });

  it('refuses a case that checks nothing: no expect, or an empty one', () => {
    expect(problems('tests:\n  - name: a\n    input: {s: []}\n')).to.deep.equal([
      't.test.yaml:2:5: tests[0]: missing expect: map each rule to check to the matches it must produce, in input order ([] for no match)',
    ]);
    expect(problems('tests:\n  - name: a\n    expect: {}\n')).to.deep.equal([
      't.test.yaml:3:13: tests[0].expect: expect must name at least one rule: map each rule to check to the matches it must produce, in input order ([] for no match)',
    ]);
  });

  it('says how to write "no match" when a rule is left without a list', () => {
    expect(problems('tests:\n  - name: a\n    expect:\n      low_battery:\n')).to.deep.equal([
      't.test.yaml:4:7: tests[0].expect.low_battery: the expected matches of "low_battery" must be a list: [] for no match, or [{field: value, ...}, ...]',
    ]);
  });

  it('refuses records that are not mappings, an unknown fixture format and a now that is not a timestamp', () => {
    expect(
      problems(`tests:
  - name: a
    now: yesterday
    input:
      sensors: [1, 2]
      other: data.xlsx
    expect:
      r: [id-1]
`),
    ).to.deep.equal([
      't.test.yaml:3:10: tests[0].now: now must be an ISO 8601 timestamp such as "2026-11-24T12:00:00Z", got "yesterday"',
      't.test.yaml:5:17: tests[0].input.sensors[0]: an input record is a mapping of field: value',
      't.test.yaml:6:14: tests[0].input.other: cannot tell the format of "data.xlsx": give a list of records, or the path of a .csv, .json or .ndjson file (relative to the test file)',
      't.test.yaml:8:11: tests[0].expect.r[0]: an expected match is a mapping of the fields to check, e.g. {id: "4"}',
    ]);
  });

  it('refuses two cases with the same name, pointing at the first', () => {
    expect(problems('tests:\n  - {name: same, expect: {r: []}}\n  - {name: same, expect: {r: []}}\n')).to.deep.equal([
      't.test.yaml:3:12: tests[1].name: duplicate case name "same" (first at line 2); give each case its own name',
    ]);
  });

  it('reports YAML syntax errors with their position', () => {
    expect(problems('tests:\n  - name: a\n   bad indent: [\n')[0]).to.match(/^t\.test\.yaml:3:\d+: YAML syntax: /);
  });
});

describe('rule test files: many cases sharing one anchor', () => {
  it('reads 150 cases that all merge `<<: *base` (past the YAML library alias default of 100)', () => {
    const cases = Array.from({ length: 149 }, (_, i) => `  - <<: *base\n    name: case ${i + 1}\n`).join('');
    const file = parse(`config: ../config.yaml
tests:
  - &base
    name: case 0
    input: { sensors: [ { id: "1", battery: 15 } ] }
    expect: { low_battery: [ { id: "1" } ] }
${cases}`);
    expect(file.cases).to.have.length(150);
    expect(file.cases[149]!.name).to.equal('case 149');
  });
});
