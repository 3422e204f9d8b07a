import { expect } from 'chai';
import path from 'node:path';
import { runRuleTestsCli } from '../../src/rule-tests/cli.js';
import { freshDirPerTest, repoRoot, writeFiles } from '../helpers.js';

const CONFIG = `datasources:
  sensors:
    type: csv
    path: data.csv
    delimiter: ";"
    columns: { value: number }
  events: { type: csv, path: events.csv }
processing_rules:
  - name: high
    datasource: sensors
    threshold_field: value
    threshold_type: greater_than
    threshold_value: 100
    export_targets: [file, screen]
  - name: recent
    datasource: events
    conditions: [{ field: at, operator: within, value: 1h }]
    export_target: file
  - name: parked
    enabled: false
    datasource: sensors
    threshold_field: value
    threshold_type: is_not_null
    export_target: file
export_targets:
  file: { type: file, path: out.ndjson }
  screen: { type: console }
`;

describe('rule tests: running cases against a config', () => {
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  /** Runs the test command from the temp folder, as a user in their project would; the folder is shown as "DIR". */
  async function run(files: Record<string, string>, args: string[] = ['t.test.yaml']) {
    writeFiles(dir, { 'config.yaml': CONFIG, ...files });
    let stdout = '';
    let stderr = '';
    const io = { out: (t: string) => void (stdout += t), err: (t: string) => void (stderr += t) };
    const before = process.cwd();
    process.chdir(dir);
    try {
      const code = await runRuleTestsCli(args, io);
      return { code, stdout: stdout.replaceAll(dir, 'DIR'), stderr: stderr.replaceAll(dir, 'DIR') };
    } finally {
      process.chdir(before);
    }
  }

  it('passes a case whose rules match what it expects, and exits 0', async () => {
    const result = await run({
      't.test.yaml': `tests:
  - name: above 100 pages
    input:
      sensors: [{ id: a, value: 150 }, { id: b, value: 100 }, { id: c, value: "n/a" }]
    expect:
      high: [{ id: a, value: 150, _rule: high, _datasource: sensors }]
`,
    });
    expect(result.stderr).to.equal('');
    expect(result.code).to.equal(0);
    expect(result.stdout).to.equal('t.test.yaml (config: config.yaml)\n  ✔ above 100 pages\n\nrule tests: 1 passed, 0 failed\n');
  });

  it('fails a case with a diff placed at the expectation, and exits 1', async () => {
    const result = await run({
      't.test.yaml': `tests:
  - name: passes
    input: { sensors: [{ id: a, value: 150 }] }
    expect: { high: [{ id: a }] }
  - name: wrong
    input:
      sensors: [{ id: a, value: 150 }, { id: b, value: 200 }, { id: c, value: "x" }]
    expect:
      high:
        - { id: a, value: 151 }
        - { id: z }
`,
    });
    expect(result.code).to.equal(1);
    expect(result.stdout).to.equal(
      [
        't.test.yaml (config: config.yaml)',
        '  ✔ passes',
        '  ✘ wrong',
        '      t.test.yaml:9:7: high: expected 2 matches, got 2 (read 3 records, 1 undecided: a field it needs is missing or not comparable)',
        '        ~ different: expected #1 vs match #1:',
        '            value: expected 151, got 150',
        '        - missing: expected #2 {"id":"z"} matched no record',
        '        + unexpected: match #2 {"id":"b","value":200} was not expected',
        '',
        'rule tests: 1 passed, 1 failed',
        '',
      ].join('\n'),
    );
  });

  it('reads a CSV fixture as the datasource reads its files: its delimiter and column types', async () => {
    const result = await run({
      'fixtures/readings.csv': 'id;value;note\n1;150;hot\n2;50;\n',
      't.test.yaml': `tests:
  - name: typed like production
    input: { sensors: fixtures/readings.csv }
    expect:
      high: [{ id: "1", value: 150, note: hot }]
`,
    });
    expect(result.stdout).to.include('  ✔ typed like production');
    expect(result.code).to.equal(0);
  });

  it('reads JSON and NDJSON fixtures relative to the test file', async () => {
    const result = await run({
      'cases/fixtures/a.json': '\uFEFF[{"id": "j", "value": 500}]', // saved with a byte order mark
      'cases/fixtures/b.ndjson': '{"id": "n1", "value": 5}\n\n{"id": "n2", "value": 700}\n',
      'cases/t.test.yaml': `config: ../config.yaml
tests:
  - name: json
    input: { sensors: fixtures/a.json }
    expect: { high: [{ id: j }] }
  - name: ndjson
    input: { sensors: fixtures/b.ndjson }
    expect: { high: [{ id: n2 }] }
`,
    }, ['cases']);
    expect(result.stdout).to.include('cases/t.test.yaml (config: config.yaml)\n  ✔ json\n  ✔ ndjson\n');
    expect(result.code).to.equal(0);
  });

  it('measures time windows from the case\'s now', async () => {
    const result = await run({
      't.test.yaml': `tests:
  - name: the last hour only
    now: 2026-11-24T12:00:00Z
    input:
      events: [{ id: old, at: "2026-11-24T10:59:59Z" }, { id: edge, at: "2026-11-24T11:00:00Z" }, { id: new, at: "2026-11-24 11:30:00" }]
    expect:
      recent: [{ id: edge }, { id: new }]
`,
    });
    expect(result.stdout).to.include('  ✔ the last hour only');
    expect(result.code).to.equal(0);
  });

  it('says why a rule matched nothing: disabled, or no input for its datasource', async () => {
    const result = await run({
      't.test.yaml': `tests:
  - name: nothing can match
    input: { sensors: [{ id: a, value: 150 }] }
    expect:
      parked: [{ id: a }]
      recent: [{ id: a }]
`,
    });
    expect(result.code).to.equal(1);
    expect(result.stdout).to.include('note: rule "parked" is disabled (enabled: false), so it matches nothing');
    expect(result.stdout).to.include('note: rule "recent" reads events, and this case gives no input for it');
  });

  it('an expectation of no match on a rule that cannot match (disabled, or no input) fails instead of passing vacuously', async () => {
    const result = await run({
      't.test.yaml': `tests:
  - name: proves nothing
    input: { sensors: [{ id: a, value: 150 }] }
    expect:
      parked: []
      recent: []
`,
    });
    expect(result.code).to.equal(1);
    expect(result.stdout).to.include('  ✘ proves nothing');
    expect(result.stdout).to.include('note: rule "parked" is disabled (enabled: false), so it matches nothing');
    expect(result.stdout).to.include('rule tests: 0 passed, 1 failed');
  });

  it('exits 2 for names the config does not have and for a missing fixture, with file:line:col', async () => {
    const result = await run({
      't.test.yaml': `tests:
  - name: typos
    input:
      sensorz: [{ id: a }]
      events: missing.csv
    expect:
      hihg: []
`,
    });
    expect(result.code).to.equal(2);
    expect(result.stderr).to.equal(
      [
        't.test.yaml:4:7: tests[0].input.sensorz: datasource "sensorz" is not defined in the datasources of config.yaml; did you mean "sensors"?',
        't.test.yaml:5:15: tests[0].input.events: fixture file "missing.csv" not found (resolved to DIR/missing.csv); fixture paths are relative to the test file',
        't.test.yaml:7:7: tests[0].expect.hihg: rule "hihg" is not defined in config.yaml or its rule files; did you mean "high"?',
        't.test.yaml: 3 problems; its tests were not run',
        '',
      ].join('\n'),
    );
    expect(result.stdout).to.equal('\nrule tests: 0 passed, 0 failed; 1 test file has problems (listed above)\n');
  });

  it('exits 2 with the config\'s own errors when the config under test is broken', async () => {
    const result = await run({
      'broken.yaml': 'datasources: {}\nexport_targets: {}\nsettings: { concurrency: 0 }\n',
      't.test.yaml': 'config: broken.yaml\ntests: [{ name: a, expect: { high: [] } }]\n',
    });
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include('broken.yaml:3:26: settings.concurrency:');
    expect(result.stderr).to.include('broken.yaml: 1 problem in the config; the tests that use it were not run');
    expect(result.stderr).to.include('t.test.yaml: the config it tests, broken.yaml, does not load (problems listed above); its tests were not run');
  });

  it('exits 2 when a CSV fixture cannot be read, naming the input, and still runs the other cases', async () => {
    const result = await run({
      'bad.csv': 'id;value\n1;"150\n',
      't.test.yaml': `tests:
  - name: unreadable
    input: { sensors: bad.csv }
    expect: { high: [] }
  - name: fine
    input: { sensors: [] }
    expect: { high: [] }
`,
    });
    expect(result.code).to.equal(2);
    expect(result.stderr).to.match(/^t\.test\.yaml:3:23: tests\[0\]\.input\.sensors: input could not be read: .*bad\.csv: unterminated quoted field/);
    expect(result.stdout).to.include('  ✘ unreadable (not run: an input could not be read)\n  ✔ fine\n');
  });

  it('exits 2 when no test file is found or a named one does not exist', async () => {
    const missing = await run({}, ['nope.test.yaml']);
    expect(missing.code).to.equal(2);
    expect(missing.stderr).to.equal('nope.test.yaml: no such file or folder\n');
    const empty = await run({ 'notes.txt': '' }, ['.']);
    expect(empty.code).to.equal(2);
    expect(empty.stderr).to.equal('.: no *.test.yaml or *.test.yml file in this folder\n');
    const none = await run({}, []);
    expect(none.code).to.equal(2);
    expect(none.stderr).to.equal('no rule tests found in rules/ (rules/**/*.test.yaml); write one next to the rules it tests, see docs/rule-tests.md\n');
  });

  it('passes the bundled rule tests against the bundled config', async () => {
    let stdout = '';
    const io = { out: (t: string) => void (stdout += t), err: (t: string) => void (stdout += t) };
    const code = await runRuleTestsCli([path.join(repoRoot, 'rules')], io);
    expect(stdout).to.match(/rule tests: \d+ passed, 0 failed\n$/);
    expect(stdout).not.to.include('✘');
    expect(code).to.equal(0);
  });
});
