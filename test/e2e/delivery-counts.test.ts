import { expect } from 'chai';
import { freshDirPerTest, parseNdjson, runCli, startCli, writeFiles, runSummary } from '../helpers.js';

describe('processor CLI: the summary counts what the targets really received', function () {
  this.timeout(60_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('a console run interrupted part-way reports exported = records printed, failed = matched - exported', async () => {
    const rows: string[] = [];
    for (let i = 0; i < 1_500_000; i++) rows.push(`${i},${i % 10}`);
    writeFiles(dir, {
      'c.yaml':
        'datasources:\n  s: {type: csv, path: big.csv}\n' +
        'processing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: out}\n' +
        'export_targets:\n  out: {type: console}\n',
      'big.csv': `id,v\n${rows.join('\n')}\n`,
    });
    const cli = startCli(['--config', 'c.yaml'], { cwd: dir });
    // Interrupt once records are flowing, well before the end.
    await new Promise<void>((resolve) => {
      let seen = 0;
      const onData = (d: Buffer) => {
        seen += d.length;
        if (seen < 200_000) return;
        cli.child.stdout!.off('data', onData);
        resolve();
      };
      cli.child.stdout!.on('data', onData);
    });
    cli.child.kill('SIGINT');
    const result = await cli.done;
    expect(result.code, result.stderr.slice(-2000)).to.equal(130);
    expect(result.stdout.endsWith('\n'), 'stdout should end with a whole record').to.equal(true);
    const printed = parseNdjson(result.stdout);
    const summary = runSummary(result.stderr).rules.r;
    expect(summary.matched, 'the run should have been interrupted part-way').to.be.below(1_200_000);
    expect(printed.length).to.be.greaterThan(0);
    expect(summary.exported).to.equal(printed.length);
    expect(summary.failed).to.equal(summary.matched - summary.exported);
    expect(new Set(printed.map((r) => r.id)).size, 'no record printed twice').to.equal(printed.length);
  });

  it('a datasource that fails part-way still reports the rows it read, and the run exits 1', async () => {
    const good = Array.from({ length: 5000 }, (_, i) => `${i},${i % 10}`).join('\n');
    writeFiles(dir, {
      'c.yaml':
        'datasources:\n  s: {type: csv, path: broken.csv}\n' +
        'processing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: f}\n' +
        'export_targets:\n  f: {type: file, path: out/r.ndjson}\n',
      // A quote left open near the end: the rest of the file is one unterminated cell.
      'broken.csv': `id,v\n${good}\n5000,"7\n5001,3\n`,
    });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir });
    expect(result.code, result.stderr.slice(-2000)).to.equal(1);
    const summary = runSummary(result.stderr);
    expect(summary.datasources.s.ok).to.equal(false);
    expect(summary.datasources.s.records).to.be.greaterThan(0);
    expect(summary.rules.r.read).to.equal(summary.datasources.s.records);
  });
});
