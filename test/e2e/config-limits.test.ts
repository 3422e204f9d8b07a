import { expect } from 'chai';
import { closeSync, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { freshDirPerTest, runCli, writeFiles } from '../helpers.js';

const HEAD = `datasources:\n  s: {type: csv, path: d.csv}\nexport_targets:\n  f: {type: file, path: out.ndjson}\n`;

describe('processor CLI, config limits (built, as a child process)', function () {
  this.timeout(30_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('150 rules sharing one `<<: *base` load (the yaml library alone stops at 100 uses of an anchor)', async () => {
    const rules = Array.from({ length: 150 }, (_, i) => `  - <<: *base\n    name: r${i}\n    threshold_value: ${i}\n`).join('');
    writeFiles(dir, {
      'c.yaml': `${HEAD}x-base: &base {threshold_field: v, threshold_type: greater_than, export_target: f}\nprocessing_rules:\n${rules}`,
    });
    // x-base is an unknown key: the config must still reach schema validation, not die in the YAML stage.
    const invalid = await runCli(['--config', 'c.yaml', '--validate'], { cwd: dir });
    expect(invalid.stderr).to.include('unknown key "x-base"');
    writeFiles(dir, {
      'c.yaml': `${HEAD}processing_rules:\n  - &base {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: f}\n${rules}`,
    });
    const result = await runCli(['--config', 'c.yaml', '--validate'], { cwd: dir });
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stdout).to.include('151 rules');
  });

  it('an alias before its anchor is a config error at the alias: exit 2', async () => {
    writeFiles(dir, {
      'c.yaml': `${HEAD}processing_rules:\n  - <<: *base\n    name: a\n  - &base {name: b, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: f}\n`,
    });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir });
    expect(result.code, result.stderr).to.equal(2);
    expect(result.stderr).to.include('c.yaml:6:9: alias *base comes before its anchor &base');
    expect(result.stderr).not.to.include('internal error');
  });

  it('an alias bomb is refused quickly as a config error: exit 2', async () => {
    let bomb = 'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n';
    let prev = 'a';
    for (const k of 'bcdefghij') {
      bomb += `${k}: &${k} [${Array(9).fill(`*${prev}`).join(',')}]\n`;
      prev = k;
    }
    writeFiles(dir, { 'c.yaml': `${HEAD}${bomb}processing_rules: []\n` });
    const started = Date.now();
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir });
    expect(result.code, result.stderr).to.equal(2);
    expect(result.stderr).to.match(/c\.yaml:\d+:\d+: alias \*\w expands to more than 1,000,000 values/);
    expect(Date.now() - started).to.be.below(5_000);
  });

  it('nesting deep enough to crash the YAML parser is a config error: exit 2', async () => {
    writeFiles(dir, { 'c.yaml': `${HEAD}processing_rules: ${'['.repeat(20_000)}${']'.repeat(20_000)}\n` });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir });
    expect(result.code, result.stderr).to.equal(2);
    expect(result.stderr).to.include('c.yaml:5:1019: YAML nested more than 1000 levels deep');
  });

  it('a 40 MB config is refused by its size, naming the limit: exit 2 (not out of memory)', async () => {
    const file = path.join(dir, 'c.yaml');
    const fd = openSync(file, 'w');
    writeSync(fd, `${HEAD}processing_rules:\n`);
    const rule = '  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: f}\n';
    const chunk = rule.repeat(10_000);
    for (let written = 0; written < 40e6; written += chunk.length) writeSync(fd, chunk);
    closeSync(fd);
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir });
    expect(result.code, result.stderr).to.equal(2);
    expect(result.stderr).to.match(/c\.yaml:1:1: the file is 38\.\d MiB; a config or rule file may hold at most 4 MiB/);
  });

  it('a rule file over the limit is refused the same way', async () => {
    writeFiles(dir, { 'c.yaml': `${HEAD}processing_rules: []\n`, 'rules/big.yaml': `# ${'x'.repeat(5 * 1024 * 1024)}\n[]\n` });
    const result = await runCli(['--config', 'c.yaml', '--validate'], { cwd: dir });
    expect(result.code, result.stderr).to.equal(2);
    expect(result.stderr).to.match(/rules\/big\.yaml:1:1: the file is 5\.0 MiB; a config or rule file may hold at most 4 MiB/);
  });
});
