import { expect } from 'chai';
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { closeSync, constants, openSync, writeSync } from 'node:fs';
import path from 'node:path';
import { cliPath, freshDirPerTest, runCli, startCli, writeFiles, type CliResult } from '../helpers.js';

const CONFIG = `datasources:\n  s: {type: csv, path: d.csv}\nprocessing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: f}\nexport_targets:\n  f: {type: file, path: "out/{run_id}.ndjson"}\n`;
const BROKEN_SOURCE = `datasources:\n  s: {type: csv, path: missing.csv}\nprocessing_rules:\n  - {name: r, threshold_field: v, threshold_type: greater_than, threshold_value: 1, export_target: f}\nexport_targets:\n  f: {type: file, path: out.ndjson}\n`;

function bigCsv(rows: number): string {
  return 'id,v\n' + Array.from({ length: rows }, (_, i) => `${i},${i % 10}`).join('\n') + '\n';
}

// Runs the CLI with stderr on a pseudo-terminal (stdout stays a pipe), as a person at a terminal sees it.
const PTY_RUNNER = `
import os, pty, subprocess, sys
m, s = pty.openpty()
p = subprocess.Popen(sys.argv[1:], stdout=subprocess.PIPE, stderr=s, stdin=subprocess.DEVNULL)
os.close(s)
err = b''
while True:
    try:
        chunk = os.read(m, 65536)
    except OSError:
        break
    if not chunk:
        break
    err += chunk
out = p.stdout.read()
code = p.wait()
sys.stdout.buffer.write(out)
sys.stderr.buffer.write(err)
sys.exit(code)
`;
const hasPty = spawnSync('python3', ['-c', 'import pty'], { stdio: 'ignore' }).status === 0;

function runOnTerminal(args: string[], cwd: string): Promise<CliResult> {
  const child = spawn('python3', ['-c', PTY_RUNNER, process.execPath, cliPath, ...args], { cwd, env: { PATH: process.env.PATH ?? '', NO_COLOR: '1' } });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (d) => (stdout += d));
  child.stderr.on('data', (d) => (stderr += d));
  return new Promise((resolve) => child.on('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
}

describe('processor CLI output and signals (built, as a child process)', function () {
  this.timeout(30_000);
  let dir: string;
  freshDirPerTest((d) => (dir = d));

  it('logs JSON lines when stderr is a pipe', async () => {
    writeFiles(dir, { 'c.yaml': BROKEN_SOURCE });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir });
    expect(result.code).to.equal(1);
    const lines = result.stderr.split('\n').filter(Boolean);
    expect(lines.length).to.be.at.least(2);
    for (const line of lines) expect(() => JSON.parse(line), line).not.to.throw();
  });

  it('under journald (JOURNAL_STREAM set) an error line starts with <3>, info lines with <6>', async () => {
    writeFiles(dir, { 'c.yaml': BROKEN_SOURCE });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir, env: { JOURNAL_STREAM: '8:12345' } });
    expect(result.code).to.equal(1);
    const lines = result.stderr.split('\n').filter(Boolean);
    const error = lines.find((l) => l.includes('datasource failed'));
    expect(error).to.match(/^<3>\{"level":"error"/);
    expect(JSON.parse(error!.slice(3)).err.message).to.match(/missing\.csv: no such file/);
    expect(lines.find((l) => l.includes('run summary'))).to.match(/^<6>\{/);
  });

  it('an error line carries the error\'s code, as JSON and as a readable line', async () => {
    writeFiles(dir, { 'c.yaml': CONFIG.replace('"out/{run_id}.ndjson"', 'blocker/x.ndjson'), 'd.csv': 'v\n5\n', blocker: 'a file where a folder should be' });
    const result = await runCli(['--config', 'c.yaml'], { cwd: dir });
    expect(result.code).to.equal(1);
    const error = result.stderr.split('\n').filter(Boolean).map((l) => JSON.parse(l)).find((l) => l.level === 'error');
    expect(error.target).to.equal('f');
    expect(error.err.code).to.match(/^E[A-Z]+$/);
    expect(error.err.message).to.include('blocker');
    const pretty = await runCli(['--config', 'c.yaml', '--log-format', 'pretty'], { cwd: dir });
    expect(pretty.stderr).to.match(/ ERROR export target failed {2}target=f err\.message="[^"]*blocker[^"]*" err\.code=E[A-Z]+/);
  });

  it('--log-format pretty writes readable lines; a bad format exits 2', async () => {
    writeFiles(dir, { 'c.yaml': BROKEN_SOURCE });
    const result = await runCli(['--config', 'c.yaml', '--log-format', 'pretty'], { cwd: dir });
    expect(result.code).to.equal(1);
    expect(result.stderr).to.match(/^\d\d:\d\d:\d\d\.\d{3} ERROR datasource failed; the other datasources go on {2}datasource=s type=csv err\.message="[^"]*missing\.csv: no such file/m);
    expect(result.stderr).to.match(/^rule +read +matched/m);
    expect(result.stderr).not.to.match(/^\{/m);
    const bad = await runCli(['--log-format', 'xml']);
    expect(bad.code).to.equal(2);
    expect(bad.stderr).to.include('--log-format must be one of auto, json, pretty, got "xml"');
  });

  it('--continuous --dry-run prints each cycle\'s report', async () => {
    writeFiles(dir, { 'c.yaml': CONFIG, 'd.csv': 'v\n5\n0\n7\n' });
    const cli = startCli(['--config', 'c.yaml', '--continuous', '--dry-run', '--interval', '0.2'], { cwd: dir });
    await cli.waitForStderr(/run summary[\s\S]*run summary/);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr).to.equal(0);
    const reports = result.stdout.split(/^(?=dry run)/m).filter(Boolean);
    expect(reports.length).to.be.at.least(2);
    // Each cycle counts its own records, not the sum of every cycle so far.
    for (const report of reports) {
      expect(report).to.match(/^dry run \(cycle \d{8}T\d{6}Z-[0-9a-f]{4}\): nothing was exported\n/);
      expect(report).to.include('would export 2 records to "f" (file)');
    }
  });

  it('SIGHUP cancels a single run like SIGINT: exit 130', async () => {
    writeFiles(dir, { 'c.yaml': CONFIG, 'd.csv': bigCsv(300_000).repeat(3) });
    const cli = startCli(['--config', 'c.yaml', '--log-level', 'debug'], { cwd: dir });
    await cli.waitForStderr(/cycle started/);
    cli.child.kill('SIGHUP');
    const result = await cli.done;
    expect(result.code, result.stderr).to.equal(130);
    expect(result.stderr).to.match(/"signal":"SIGHUP".*interrupted: stopping/);
  });

  it('SIGHUP while a --continuous service is still reading its config does not end it (systemd would not restart it)', async () => {
    writeFiles(dir, { 'd.csv': 'v\n5\n' });
    // The config is a named pipe: reading it waits until the test writes, so the signal surely comes mid-start.
    execFileSync('mkfifo', [path.join(dir, 'c.yaml')]);
    const cli = startCli(['--config', 'c.yaml', '--continuous', '--interval', '60', '--log-format', 'json'], { cwd: dir });
    await new Promise((resolve) => setTimeout(resolve, 400));
    cli.child.kill('SIGHUP');
    await new Promise((resolve) => setTimeout(resolve, 100));
    // Written only to a reader that has the pipe open (never blocking the test on a process that died).
    const feed = async () => {
      for (let tries = 0; ; tries++) {
        try {
          const fd = openSync(path.join(dir, 'c.yaml'), constants.O_WRONLY | constants.O_NONBLOCK);
          writeSync(fd, CONFIG);
          closeSync(fd);
          return;
        } catch (err) {
          if ((err as NodeJS.ErrnoException).code !== 'ENXIO' || tries > 50) throw new Error(`nobody reads the config: ${String(err)}; ${cli.child.signalCode ?? ''}`);
          await new Promise((resolve) => setTimeout(resolve, 100));
        }
      }
    };
    await feed();
    // The SIGHUP is taken as a reload right after the start, which reads the config again.
    await cli.waitForStderr(/SIGHUP during start-up/, 15_000);
    await feed();
    await cli.waitForStderr(/run summary/, 15_000);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.signal, result.stderr).to.equal(null);
    expect(result.code, result.stderr).to.equal(0);
  });

  it('SIGHUP in --continuous reloads the config instead of stopping; SIGTERM then stops it with exit 0', async () => {
    writeFiles(dir, { 'c.yaml': CONFIG, 'd.csv': 'v\n5\n' });
    const cli = startCli(['--config', 'c.yaml', '--continuous', '--interval', '60'], { cwd: dir });
    await cli.waitForStderr(/run summary/);
    cli.child.kill('SIGHUP');
    await cli.waitForStderr(/config reloaded/);
    cli.child.kill('SIGTERM');
    const result = await cli.done;
    expect(result.code, result.stderr).to.equal(0);
    expect(result.stderr).to.match(/"reason":"SIGHUP".*reloading the config/);
    expect(result.stderr).to.match(/"signal":"SIGTERM".*stopping after the current cycle/);
  });

  describe('on a terminal', function () {
    before(function () {
      if (!hasPty) this.skip();
    });

    it('--log-level silent writes nothing on stderr, not even the summary table', async () => {
      writeFiles(dir, { 'c.yaml': CONFIG, 'd.csv': 'v\n5\n' });
      const result = await runOnTerminal(['--config', 'c.yaml', '--log-level', 'silent'], dir);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stderr).to.equal('');
      const shown = await runOnTerminal(['--config', 'c.yaml'], dir);
      expect(shown.stderr).to.match(/rule +read +matched/);
    });

    it('a long run shows a progress line refreshed in place, erased before the summary', async () => {
      writeFiles(dir, { 'c.yaml': CONFIG.replace('"out/{run_id}.ndjson"', 'out.ndjson'), 'd.csv': bigCsv(400_000).repeat(4) });
      const result = await runOnTerminal(['--config', 'c.yaml'], dir);
      expect(result.code, result.stderr).to.equal(0);
      expect(result.stderr).to.match(/\r\x1b\[K[\d,]+ rows read, [\d,]+ rows\/s · matches: r [\d,]+/);
      const summaryAt = result.stderr.search(/run \d{8}T\d{6}Z-\w+ finished/);
      // Nothing of the progress line is left on the summary's line: it was erased, by the summary
      // or by a log line printed after it (a warning at the end of the cycle).
      const lineStart = result.stderr.lastIndexOf('\n', summaryAt) + 1;
      const onScreen = result.stderr.slice(lineStart, summaryAt).split('\r').pop()!.replace(/^\x1b\[K/, '');
      expect(onScreen).to.equal('');
      expect(result.stderr.slice(summaryAt)).not.to.include('rows read');
    });
  });
});
