import { expect } from 'chai';
import { freshDirPerTest, runCli, writeFiles } from '../helpers.js';

const CONFIG = `datasources:
  sensors: { type: csv, path: data.csv, columns: { value: number } }
processing_rules:
  - { name: high, threshold_field: value, threshold_type: greater_than, threshold_value: 100, export_target: out }
export_targets:
  out: { type: file, path: out.ndjson }
`;

describe('processor CLI: test command (built, as a child process)', function () {
  this.timeout(30_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('runs the bundled rule tests against the bundled config and exits 0', async () => {
    const result = await runCli(['test']);
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.include('rules/sensors.test.yaml (config: config.yaml)\n  ✔ the sample feed pages exactly these readings\n');
    expect(result.stdout).to.include('rules/sites.test.yaml (config: config.yaml)\n');
    expect(result.stdout).to.match(/\nrule tests: \d+ passed, 0 failed\n$/);
    expect(result.stderr).to.equal('');
  });

  it('prints each case as passed or failed, with a diff, and exits 1 when one fails', async () => {
    writeFiles(dir, {
      'config.yaml': CONFIG,
      'rules/high.test.yaml': `tests:
  - name: above 100 pages
    input:
      sensors: [{ id: a, value: 150 }, { id: b, value: 90 }]
    expect:
      high: [{ id: a }]
  - name: exactly 100 pages too
    input:
      sensors: [{ id: c, value: 100 }, { id: d, value: 101 }]
    expect:
      high:
        - { id: c }
        - { id: d, value: 102 }
`,
    });
    const result = await runCli(['test'], { cwd: dir });
    expect(result.code, result.stderr).to.equal(1);
    expect(result.stdout).to.equal(
      [
        'rules/high.test.yaml (config: config.yaml)',
        '  ✔ above 100 pages',
        '  ✘ exactly 100 pages too',
        '      rules/high.test.yaml:11:7: high: expected 2 matches, got 1 (read 2 records)',
        '        ~ different: expected #2 vs match #1:',
        '            value: expected 102, got 101',
        '        - missing: expected #1 {"id":"c"} matched no record',
        '',
        'rule tests: 1 passed, 1 failed',
        '',
      ].join('\n'),
    );
  });

  it('exits 2 on a broken test file, with FILE:LINE:COL and nothing run', async () => {
    writeFiles(dir, {
      'config.yaml': CONFIG,
      'checks.test.yaml': `tests:
  - name: typo
    input:
      sensors: [{ id: a, value: 150 }]
    expect:
      hgih: [{ id: a }]
`,
    });
    const result = await runCli(['test', 'checks.test.yaml', '--config', 'config.yaml'], { cwd: dir });
    expect(result.code).to.equal(2);
    expect(result.stderr).to.equal(
      'checks.test.yaml:6:7: tests[0].expect.hgih: rule "hgih" is not defined in config.yaml or its rule files; did you mean "high"?\n' +
        'checks.test.yaml: 1 problem; its tests were not run\n',
    );
    expect(result.stdout).to.equal('\nrule tests: 0 passed, 0 failed; 1 test file has problems (listed above)\n');
  });

  it('exits 2 with the config\'s own errors when the config under test is invalid', async () => {
    writeFiles(dir, {
      'config.yaml': CONFIG.replace('greater_than', 'greater_thn'),
      'rules/high.test.yaml': 'tests: [{ name: a, expect: { high: [] } }]\n',
    });
    const result = await runCli(['test'], { cwd: dir });
    expect(result.code).to.equal(2);
    expect(result.stderr).to.include('config.yaml:4:59: processing_rules[0].threshold_type: unknown operator "greater_thn"; did you mean "greater_than"?');
    expect(result.stderr).to.include('rules/high.test.yaml: the config it tests, config.yaml, does not load (problems listed above); its tests were not run');
  });

  it('--help describes the command and exits 0; an unknown flag exits 2', async () => {
    const help = await runCli(['test', '--help']);
    expect(help.code).to.equal(0);
    expect(help.stdout).to.include('Usage: threshold-processor test [FILE | FOLDER ...] [--config FILE]');
    const bad = await runCli(['test', '--frobnicate']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include("Unknown option '--frobnicate'");
  });
});
