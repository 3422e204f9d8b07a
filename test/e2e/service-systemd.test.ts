import { expect } from 'chai';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { makeTempDir, repoRoot, runCli } from '../helpers.js';

const UNIT = path.join(repoRoot, 'deploy', 'threshold-processor.service');
const SYSTEMD_ANALYZE = '/usr/bin/systemd-analyze';

/** Runs systemd-analyze, or returns undefined when it cannot run here (not installed, no permission in a sandbox). */
function analyze(args: string[]): { status: number; out: string } | undefined {
  if (!existsSync(SYSTEMD_ANALYZE)) return undefined;
  const result = spawnSync(SYSTEMD_ANALYZE, args, { encoding: 'utf8', timeout: 30_000 });
  if (result.error) return undefined;
  const out = `${result.stdout}${result.stderr}`;
  if (/Operation not permitted|not been booted with systemd|Failed to (initialize|create|connect)/i.test(out) && result.status !== 0) return undefined;
  return { status: result.status ?? -1, out };
}

describe('the systemd unit in deploy/', function () {
  this.timeout(60_000);

  it('passes systemd-analyze verify', function () {
    const result = analyze(['verify', UNIT]);
    if (!result) this.skip();
    expect(result!.status, result!.out).to.equal(0);
    expect(result!.out.trim(), 'verify should report nothing').to.equal('');
  });

  it('has a low exposure score in systemd-analyze security (was 8.7)', function () {
    const result = analyze(['security', '--offline=yes', UNIT]);
    if (!result || /unrecognized option|unknown option/i.test(result.out)) this.skip();
    const score = Number(/Overall exposure level for [^:]+: ([\d.]+)/.exec(result!.out)?.[1]);
    expect(score, result!.out).to.be.below(2);
  });

  it('names the folders systemd creates for it, and reloads by SIGHUP', async () => {
    const { readFileSync } = await import('node:fs');
    const unit = readFileSync(UNIT, 'utf8');
    expect(unit).to.match(/^StateDirectory=threshold-processor$/m);
    expect(unit).to.match(/^ConfigurationDirectory=threshold-processor$/m);
    expect(unit).to.match(/^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
    // A ReadWritePaths= naming a folder nothing creates fails the start with 226/NAMESPACE.
    expect(unit).not.to.match(/^ReadWritePaths=/m);
  });

  it('the service config validates, and keeps its state and output under $STATE_DIRECTORY', async () => {
    const { dir, cleanup } = makeTempDir();
    try {
      const result = await runCli(['--config', path.join(repoRoot, 'deploy', 'config.yaml'), '--validate'], { env: { STATE_DIRECTORY: dir } });
      expect(result.code, result.stderr).to.equal(0);
      const { readFileSync } = await import('node:fs');
      const text = readFileSync(path.join(repoRoot, 'deploy', 'config.yaml'), 'utf8');
      expect(text).to.match(/^  state_dir: \$\{STATE_DIRECTORY\}$/m);
      expect(text).to.match(/^    path: \$\{STATE_DIRECTORY\}\//m);
    } finally {
      cleanup();
    }
  });
});
