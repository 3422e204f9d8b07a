import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { expect } from 'chai';
import { runController } from '../../src/cli/shutdown.js';

/**
 * Runs a script in a node process of its own with exitAfter armed (the deadline ends the
 * process, so it cannot run in this one); returns its exit code and its JSON log lines.
 */
function underDeadline(body: string): { code: number | null; lines: Record<string, unknown>[] } {
  const module = (file: string) => JSON.stringify(new URL(`../../src/${file}`, import.meta.url).href);
  const script = `
    import { exitAfter } from ${module('cli/shutdown.js')};
    import { whileExitHeld } from ${module('delivery/exit-hold.js')};
    const log = { warn: (o, m) => console.log(JSON.stringify({ ...o, msg: m })), error: (o, m) => console.log(JSON.stringify({ ...o, msg: m })) };
    setInterval(() => {}, 1000);
    ${body}`;
  const run = spawnSync(process.execPath, ['--input-type=module', '-e', script], { encoding: 'utf8', cwd: fileURLToPath(new URL('.', import.meta.url)) });
  return { code: run.status, lines: run.stdout.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)) };
}

describe('the run controller', () => {
  it('takes one abort listener per in-flight operation of dozens of targets without a leak warning', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const { signal } = runController();
      const listeners = Array.from({ length: 200 }, () => () => {});
      for (const l of listeners) signal.addEventListener('abort', l);
      await new Promise((r) => setImmediate(r));
      expect(warnings.map((w) => w.name)).not.to.include('MaxListenersExceededWarning');
      for (const l of listeners) signal.removeEventListener('abort', l);
    } finally {
      process.off('warning', onWarning);
    }
  });

  it('still warns of a leak past a thousand listeners', async () => {
    const warnings: Error[] = [];
    const onWarning = (w: Error) => warnings.push(w);
    process.on('warning', onWarning);
    try {
      const { signal } = runController();
      for (let i = 0; i < 1001; i++) signal.addEventListener('abort', () => {});
      await new Promise((r) => setImmediate(r));
      expect(warnings.map((w) => w.name)).to.include('MaxListenersExceededWarning');
    } finally {
      process.off('warning', onWarning);
    }
  });

  describe('the cancel deadline (exitAfter) and output being made visible or undone', () => {
    it('ends the process at the deadline when nothing is being published', () => {
      const { code, lines } = underDeadline(`exitAfter(50, 7, log, 'stuck', 1000);`);
      expect(code).to.equal(7);
      expect(lines.map((l) => l.msg)).to.deep.equal(['stuck; exiting now']);
    });

    it('waits past the deadline while publishing, then gives the run a moment to end by itself before calling it stuck', () => {
      const { code, lines } = underDeadline(`
        whileExitHeld(() => new Promise((resolve) => setTimeout(resolve, 400))).then(() => console.log(JSON.stringify({ msg: 'published' })));
        exitAfter(50, 7, log, 'stuck', 5000, 200);`);
      expect(code).to.equal(7);
      expect(lines.map((l) => l.msg)).to.deep.equal(['waiting for output being made visible or undone before exiting (exiting now would leave part of it)', 'published', 'stuck; exiting now']);
    });

    it('a run that ends by itself after the hold exits as it would, without a "did not stop" error', () => {
      const { code, lines } = underDeadline(`
        whileExitHeld(() => new Promise((resolve) => setTimeout(resolve, 300))).then(() => setTimeout(() => process.exit(0), 150));
        exitAfter(50, 7, log, 'stuck', 5000, 1000);`);
      expect(code).to.equal(0);
      expect(lines.map((l) => l.msg)).to.deep.equal(['waiting for output being made visible or undone before exiting (exiting now would leave part of it)']);
    });

    it('held work that starts while the run is given its moment (another target discarding) is waited for too', () => {
      const { code, lines } = underDeadline(`
        whileExitHeld(() => new Promise((resolve) => setTimeout(resolve, 300)));
        setTimeout(() => whileExitHeld(() => new Promise((resolve) => setTimeout(resolve, 600))).then(() => setTimeout(() => process.exit(0), 100)), 400);
        exitAfter(50, 7, log, 'stuck', 5000, 400);`);
      expect(code).to.equal(0);
      expect(lines.map((l) => l.msg)).to.deep.equal(['waiting for output being made visible or undone before exiting (exiting now would leave part of it)']);
    });

    it('held work that comes and goes within the pause earns the run another pause', () => {
      const { code } = underDeadline(`
        whileExitHeld(() => new Promise((resolve) => setTimeout(resolve, 300)));
        setTimeout(() => whileExitHeld(() => new Promise((resolve) => setTimeout(resolve, 300))).then(() => setTimeout(() => process.exit(0), 150)), 400);
        exitAfter(50, 7, log, 'stuck', 5000, 400);`);
      expect(code).to.equal(0);
    });

    it('held work that ended just before the deadline, or that is still running near the end of the bound, is not cut off', () => {
      const before = underDeadline(`
        whileExitHeld(() => new Promise((resolve) => setTimeout(resolve, 100))).then(() => setTimeout(() => process.exit(0), 150));
        exitAfter(150, 7, log, 'stuck', 5000, 1000);`);
      expect(before.code, 'the run gets its pause').to.equal(0);
      // Past grace + hold (250 ms) but within the bound (1,250 ms): still waited for.
      const late = underDeadline(`
        whileExitHeld(() => new Promise((resolve) => setTimeout(resolve, 600))).then(() => setTimeout(() => process.exit(0), 50));
        exitAfter(50, 7, log, 'stuck', 200, 1000);`);
      expect(late.code, 'held work past the hold but within the bound is waited for').to.equal(0);
    });

    it('waits at most the hold for a publishing that never ends', () => {
      const { code, lines } = underDeadline(`
        whileExitHeld(() => new Promise(() => {}));
        exitAfter(50, 7, log, 'stuck', 300, 100);`);
      expect(code).to.equal(7);
      expect(lines.at(-1)).to.include({ msg: 'stuck; exiting now' });
      expect(lines.at(-1)!.waited_ms).to.be.at.least(450);
    });
  });
});
